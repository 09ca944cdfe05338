"""Your quiz progress: every Check press, kept in one small JSON file.

Where: ``$FTCOURSE_PROGRESS`` if set, else ``~/.ftcourse/progress.json``. The file is an append-only
log of checks, one record per Check press::

    {"format": 1, "checks": [{"lesson": "01", "question": "q01-facts-change", "correct": true,
                             "attempt": 2, "time": "2025-01-31T10:02:11+00:00"}, ...]}

Safety rules:

* every save writes a temporary file next to the real one and renames it into place
  (``os.replace``), under a file lock, so two notebooks saving at once never leave half a file;
* a file that cannot be read is moved aside (``progress.json.corrupt-<time>``) with a warning, and
  a fresh log starts; records that are malformed are dropped with a warning, after a copy of the
  original is kept aside;
* nothing here raises into your notebook: a save that fails (read-only disk, ...) warns instead.

``python -m ftcourse progress`` prints the per-lesson summary; ``show_progress()`` shows it in a
notebook.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..sqlite_files import write_text_atomically
from .quiz_files import available_lessons, load_quiz

PROGRESS_ENV = "FTCOURSE_PROGRESS"
FORMAT = 1
_KEYS = {"lesson": str, "question": str, "correct": bool, "attempt": int, "time": str}


class ProgressWarning(UserWarning):
    """Something went wrong with the progress file; the message says what and where it went."""


def progress_path(path: str | os.PathLike | None = None) -> Path:
    """The progress file: ``path``, else ``$FTCOURSE_PROGRESS``, else ``~/.ftcourse/progress.json``."""
    chosen = path or os.environ.get(PROGRESS_ENV) or Path.home() / ".ftcourse" / "progress.json"
    return Path(chosen).expanduser()


def _warn(message: str) -> None:
    warnings.warn(message, ProgressWarning, stacklevel=3)


def _aside_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return candidate


def _valid_record(rec) -> bool:
    return isinstance(rec, dict) and all(
        isinstance(rec.get(k), t) and not (t is int and isinstance(rec.get(k), bool)) for k, t in _KEYS.items()
    )


def _empty() -> dict:
    return {"format": FORMAT, "checks": []}


def _read(path: Path) -> dict:
    """Read the log; on damage move it (or a copy) aside with a warning and return what is usable."""
    if not path.exists():
        return _empty()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            raise ValueError("it is not a progress log (no 'checks' list)")
    except (ValueError, UnicodeDecodeError) as exc:
        aside = _aside_name(path)
        try:
            os.replace(path, aside)
            where = f"It was moved to {aside}"
        except OSError as move_exc:
            where = f"It could not be moved aside ({move_exc}); it will be overwritten"
        _warn(f"Your progress file {path} could not be read ({exc}). {where}; a fresh progress log starts now.")
        return _empty()
    good = [rec for rec in data["checks"] if _valid_record(rec)]
    if len(good) != len(data["checks"]):
        aside = _aside_name(path)
        with contextlib.suppress(OSError):
            shutil.copy2(path, aside)
        _warn(f"{len(data['checks']) - len(good)} malformed record(s) in {path} were dropped; "
              f"the original file was copied to {aside}.")
    return {"format": FORMAT, "checks": good}


def load_progress(path: str | os.PathLike | None = None) -> list[dict]:
    """All recorded checks, oldest first. Never raises on a damaged file (it warns and starts fresh)."""
    p = progress_path(path)
    try:
        with _locked(p):
            return _read(p)["checks"]
    except OSError as exc:
        _warn(f"Could not read your progress file {p} ({exc}).")
        return []


@contextlib.contextmanager
def _locked(path: Path):
    """Hold a lock file next to ``path`` while we read-modify-write it (other kernels wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from filelock import FileLock, Timeout
    except ImportError:  # pragma: no cover - filelock ships with huggingface_hub
        yield
        return
    try:
        with FileLock(str(path) + ".lock", timeout=10):
            yield
    except Timeout:
        raise OSError(f"{path}.lock is held by another process for more than 10 s") from None


def _write_atomic(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=1) + "\n")


def record_check(lesson: str, question: str, correct: bool, attempt: int,
                 path: str | os.PathLike | None = None, when: datetime | None = None) -> bool:
    """Append one Check to the progress log. Returns True when saved; warns (never raises) otherwise."""
    p = progress_path(path)
    stamp = (when or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    rec = {"lesson": str(lesson), "question": str(question), "correct": bool(correct),
           "attempt": int(attempt), "time": stamp}
    try:
        with _locked(p):
            data = _read(p)
            data["checks"].append(rec)
            _write_atomic(p, data)
        return True
    except Exception as exc:  # a notebook must never crash because progress could not be saved
        _warn(f"Your answer was checked but could not be saved to {p} ({type(exc).__name__}: {exc}). "
              f"Set {PROGRESS_ENV} to a writable file to keep your progress.")
        return False


# --------------------------------------------------------------------------- summary
@dataclass
class LessonProgress:
    lesson: str
    title: str
    questions: int | None  # questions in the lesson's quiz file; None when the file is unknown
    answered: int  # distinct questions checked at least once
    solved: int  # distinct questions answered right at least once
    first_try: int  # distinct questions right on their first check
    checks: int
    last: str  # time of the latest check, "" if none


def _quiz_catalogue() -> dict[str, tuple[str, set[str]]]:
    """lesson -> (title, question ids) for every quiz file that loads; broken files are skipped."""
    out = {}
    for lesson in available_lessons():
        try:
            quiz = load_quiz(lesson)
        except Exception:  # a broken quiz file must not break the progress summary
            continue
        out[quiz.lesson] = (quiz.title, {q.id for q in quiz.questions})
    return out


def summarize(checks: list[dict], catalogue: dict[str, tuple[str, set[str]]] | None = None) -> list[LessonProgress]:
    """One row per lesson (every quiz lesson, plus any lesson found only in the log), sorted by lesson."""
    catalogue = _quiz_catalogue() if catalogue is None else catalogue
    by_lesson: dict[str, list[dict]] = {}
    for rec in checks:
        by_lesson.setdefault(rec["lesson"], []).append(rec)
    rows = []
    for lesson in sorted(set(catalogue) | set(by_lesson)):
        recs = by_lesson.get(lesson, [])
        title, ids = catalogue.get(lesson, ("", None))
        first: dict[str, bool] = {}
        solved: set[str] = set()
        for rec in recs:
            first.setdefault(rec["question"], rec["correct"])
            if rec["correct"]:
                solved.add(rec["question"])
        rows.append(LessonProgress(
            lesson=lesson, title=title, questions=len(ids) if ids is not None else None,
            answered=len(first), solved=len(solved), first_try=sum(first.values()),
            checks=len(recs), last=max((r["time"] for r in recs), default=""),
        ))
    return rows


_HEADER = ("lesson", "title", "solved", "first try", "checks", "last check")


def _cells(row: LessonProgress) -> tuple[str, ...]:
    total = "?" if row.questions is None else str(row.questions)
    return (row.lesson, row.title, f"{row.solved}/{total}", str(row.first_try), str(row.checks),
            row.last.replace("T", " ")[:16] if row.checks else "not started")


def format_summary(rows: list[LessonProgress]) -> str:
    """The summary as a plain-text table."""
    table = [_HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _summary_text(path: Path, checks: list[dict], rows: list[LessonProgress]) -> str:
    head = f"Quiz progress ({path})"
    if not checks:
        head += "\nNo answers recorded yet: run a lesson's quiz, e.g. show_quiz(\"01\"), and press Check."
    return head + "\n\n" + format_summary(rows) if rows else head


def cli_progress(args) -> int:
    """``python -m ftcourse progress [--file F]``: print the per-lesson summary."""
    path = progress_path(getattr(args, "file", None))
    checks = load_progress(path)
    print(_summary_text(path, checks, summarize(checks)))
    return 0


def show_progress(path: str | os.PathLike | None = None) -> None:
    """Show the per-lesson summary in a notebook (an HTML table), or print it elsewhere."""
    p = progress_path(path)
    checks = load_progress(p)
    rows = summarize(checks)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(_summary_text(p, checks, rows))
        return
    from html import escape

    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows)
    note = "" if checks else "<p>No answers recorded yet: run a lesson's quiz and press Check.</p>"
    display(HTML(
        f'<div class="quiz-progress"><p>Quiz progress (<code>{escape(str(p))}</code>)</p>{note}'
        f'<table><thead><tr>{"".join(f"<th>{h}</th>" for h in _HEADER)}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    ))
