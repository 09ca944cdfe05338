"""Workshop grading: run every submitted exercise notebook and score its grader cells.

``python -m ftcourse grade SUBMISSIONS [--out grading-out] [--source solutions]
[--cell-timeout 120] [--notebook-timeout 900]`` (``make grade SUBMISSIONS=dir``).

Layout of the submissions folder (choose either; both may be mixed)::

    SUBMISSIONS/alice/00_warmup.ipynb        one folder per learner (recommended)
    SUBMISSIONS/bob__00_warmup.ipynb         or flat: <learner>__<notebook>.ipynb

A submission is matched to its solution notebook by name (``00_warmup``), or else by its number
(``00_...``). Every submission is read into memory before the first one runs. Each notebook then
runs in a kernel of its own (nbclient), in a scratch folder that holds nothing but a copy of it.
A cell that runs longer than ``--cell-timeout`` is interrupted and the notebook goes on; once
``--notebook-timeout`` is used up, the kernel is stopped and the remaining cells count as not run.
A kernel that dies, a syntax error, a file that is not a notebook, or an empty folder is reported
in plain words, never as a crash of the grader.

Scoring: a grader cell (``metadata.grader = {"id", "points"}``) is compared with the solution
notebook's cell of the same id, ignoring trailing spaces and blank lines: an edited grader scores 0
and is flagged ``edited``; a deleted one is flagged ``missing``. An intact grader earns its points
when all of this holds:

1. **It reached the real checker.** Before each grader cell the grading run sends the kernel a
   request that is not part of the notebook (:mod:`ftcourse.classroom.guard`): it puts back what
   learner cells may have changed (builtins, ``sys`` hooks, the IPython shell's error display, hooks
   and transformers, names the course cells defined) and binds the checker's names to a copy of
   ``ftcourse/classroom/check.py`` loaded afresh from a private copy of the file.
2. **The run says it passed.** The cell ended without an error, in its displayed outputs, in any
   message the kernel sent (an error display cleared afterwards still counts) and in the kernel's
   reply; and, for a grader that calls the checker, the checker itself reported a pass, and no
   failure, with that cell's nonce (see :mod:`ftcourse.classroom.guard`).
3. **Nothing it relies on was touched.** A syntax-tree scan of the learner's cells
   (:mod:`ftcourse.classroom.tamper`) finds code that assigns into ``ftcourse``, ``sys``, ``builtins``
   or the IPython shell, rebinds a name a grader reads in a way the guard cannot undo, runs code
   from strings, or reaches into frames. Each finding is listed with its cell and line, and the graders
   it concerns score 0, marked ``tampered``. A top-level rebinding that the guard undoes (say, a
   learner's own ``expect_function``) is listed too, and the grader is scored on the real check.
4. **The run changed nothing it is graded against.** The solution notebooks, the submissions
   folder, the ``ftcourse`` package and the guard's private files are hashed before and after each
   run. A change is an error: that notebook's graders all score 0, the change is named in its
   ``problems``, and ``python -m ftcourse grade`` exits with status 2.

Output in ``--out``: ``gradebook.csv`` (one row per learner and notebook), ``feedback/<learner>.md``
(per grader: pass, fail or tampered, the check's message, the points) and
``executed/<learner>/<notebook>.ipynb`` (the notebook as it ran, to look at the outputs).

Limits: learner code runs in the same process as the guard, so code that digs through frames or
the garbage collector, builds names from strings, or changes the Python installation for later
kernels can still get around it; most of that is visible to the scan. Grade untrusted submissions
in a container (``docs/quizzes-and-grading.md`` has the command).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CourseError
from .cell_markers import Grader, graders
from .tamper import Finding, Protection, checker_names, normalise, protection_of, scan_submission

GRACE_S = 15  # extra seconds for a kernel to react to an interrupt before it is shut down
GUARD_TIMEOUT_S = 60  # the most a hidden request of the grading run may take
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PACKAGE = Path(__file__).resolve().parents[1]  # the whole ftcourse package, which no run may change
KERNEL_FILES = ("classroom/guard.py", "classroom/check.py")  # every kernel loads these by path (private copies)


# --------------------------------------------------------------------------- running one notebook
@dataclass
class CellRun:
    index: int
    status: str  # "ok" | "error" | "timeout" | "not run"
    ename: str = ""
    evalue: str = ""
    seconds: float = 0.0
    note: str = ""  # for a timeout: which limit was hit
    # filled for guarded grader cells only (see GuardPlan)
    guarded: bool = False
    guard_error: str = ""  # the grading run could not restore the kernel before this cell
    reply: str = ""  # the kernel's execute_reply status: "ok" | "error" | "aborted" | "" (none)
    error_seen: bool = False  # an error message went over IOPub, even if the display was cleared
    checked: bool = False  # a pass needs the checker's own report
    passes: int = 0  # checker reports with this cell's nonce
    fails: int = 0

    @property
    def message(self) -> str:
        if self.status == "timeout":
            return f"interrupted after {self.seconds:.0f} s ({self.note or 'time limit'})"
        if self.ename == "CheckFailed":
            return self.evalue
        # "(3902549497.py, line 3)": the kernel's name for a cell means nothing to a learner
        evalue = re.sub(r"\(\d+\.py, line (\d+)\)", r"(line \1 of the cell)", self.evalue)
        return f"{self.ename}: {evalue}".strip(": ")


@dataclass
class NotebookRun:
    nb: object  # the executed notebook (NotebookNode)
    cells: dict[int, CellRun]  # code cells by index
    stopped: str = ""  # why the run ended early, "" if every cell ran
    seconds: float = 0.0


def _cell_error(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", ""), _ANSI.sub("", out.get("evalue", ""))
    return None


@dataclass
class GuardPlan:
    """How the grading run protects the grader cells of one notebook (see :mod:`ftcourse.classroom.guard`).

    ``folder`` holds private copies of ``guard.py`` and ``check.py``: the kernel loads both from
    there, by path, through requests that are not part of the notebook.
    """

    folder: Path
    graders: set[int]  # indices of the intact grader cells
    checked: set[int]  # of those, the ones whose pass needs the checker's own report
    keep: dict[int, list[str]] = field(default_factory=dict)  # course cell -> names to save after it ran
    check_names: dict[str, str] = field(default_factory=dict)  # name -> checker attribute ("" = module)
    shadows: list[str] = field(default_factory=list)  # builtins graders read that no course cell defines


# one expression, evaluated as a user_expression of an empty, silent request: it passes neither through
# the notebook's input and AST transformers nor into its history or namespace
_GUARD_CALL = ("(lambda u: (lambda s: (lambda m: (s.loader.exec_module(m), m.{func}(**{kwargs!r}))[1])"
               "(u.module_from_spec(s)))(u.spec_from_file_location({name!r}, {path!r})))"
               "(__import__('importlib.util').util)")


def _marker(nonce: str) -> re.Pattern:
    return re.compile(r"\n?\[ftcourse-grader " + nonce + r" (pass|fail)\]\n?")


async def _hidden(client, expression: str, timeout: float) -> dict:
    """Evaluate ``expression`` in the kernel outside the notebook (an empty silent request); its result."""
    from queue import Empty

    from nbclient.util import ensure_async

    msg_id = await ensure_async(client.kc.execute("", silent=True, store_history=False, allow_stdin=False,
                                                  stop_on_error=False, user_expressions={"guard": expression}))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ensure_async(client.kc.shell_channel.get_msg(timeout=min(1.0, left)))
        except Empty:
            await client._async_check_alive()
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            content = msg["content"]
            if content.get("status") != "ok":
                return content
            return content.get("user_expressions", {}).get("guard") or {"status": "error", "ename": "no result"}
    raise TimeoutError(f"no answer within {timeout:.0f} s")


async def _guard_call(client, plan: GuardPlan, func: str, timeout: float, **kwargs) -> str:
    """Call ``ftcourse.classroom.guard.<func>`` in the kernel; "" when it answered as it should, else why not."""
    token = secrets.token_hex(8)
    code = _GUARD_CALL.format(name=f"_ftcourse_guard_{token}", path=str(plan.folder / "guard.py"), func=func,
                              kwargs={**kwargs, "token": token})
    try:
        result = await _hidden(client, code, max(1.0, min(GUARD_TIMEOUT_S, timeout)))
    except Exception as exc:  # a dead kernel, a timeout
        return f"{type(exc).__name__}: {exc}"
    if result.get("status") == "ok":
        if result.get("data", {}).get("text/plain") == repr(f"{func} {token}"):
            return ""
        return "the kernel gave an answer the grading run did not send"
    return f"{result.get('ename', 'error')}: {_ANSI.sub('', str(result.get('evalue', '')))}".strip(": ")


def _client_class():
    from nbclient import NotebookClient

    class GuardedClient(NotebookClient):
        """Keeps every IOPub message of the cell being recorded, before any output is cleared."""

        recording: list | None = None

        def process_message(self, msg, cell, cell_index):
            if self.recording is not None:
                self.recording.append(msg)
            return super().process_message(msg, cell, cell_index)

    return GuardedClient


def _judge(run: CellRun, recording: list, reply: str, nonce: str, cell) -> None:
    """Fill the guard fields of ``run`` from what the kernel sent; strip the checker's markers."""
    text = "".join(m["content"].get("text", "") for m in recording if m["msg_type"] == "stream")
    kinds = _marker(nonce).findall(text)
    run.guarded, run.reply = True, reply
    run.passes, run.fails = kinds.count("pass"), kinds.count("fail")
    run.error_seen = any(m["msg_type"] == "error" for m in recording)
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            out["text"] = _marker(nonce).sub("", out["text"])
    cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") != "stream" or o["text"]]


async def _execute(nb, cwd: Path, cell_timeout: float, notebook_timeout: float, kernel_name: str,
                   guard: GuardPlan | None = None, env: dict | None = None) -> NotebookRun:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    t_start = time.monotonic()
    deadline = t_start + notebook_timeout + 3600  # reset once the kernel is up: start-up does not count
    runs: dict[int, CellRun] = {}
    stopped = ""

    def cell_limit(_cell=None) -> int:
        return max(1, int(min(cell_timeout, deadline - time.monotonic()) + 0.999))

    replies: dict[int, str] = {}

    def on_executed(cell, cell_index, execute_reply):
        replies[cell_index] = ((execute_reply or {}).get("content") or {}).get("status", "")

    client = _client_class()(
        nb, kernel_name=kernel_name, allow_errors=True, interrupt_on_timeout=True, timeout=int(cell_timeout),
        timeout_func=cell_limit, shutdown_kernel="immediate", record_timing=False, startup_timeout=60,
        resources={"metadata": {"path": str(cwd)}}, on_cell_executed=on_executed,
    )
    count = 0
    setup = {"stderr": subprocess.DEVNULL}
    if env is not None:
        setup["env"] = env
    try:
        # the kernel's own log lines (not the learner's output, which comes over IOPub) are noise here
        async with client.async_setup_kernel(**setup):
            installed = await _guard_call(client, guard, "install", GUARD_TIMEOUT_S) if guard else ""
            if installed:  # before any learner cell: a problem of the grading machine, not of the notebook
                raise RuntimeError(f"the grading run could not prepare the kernel: {installed}")
            deadline = time.monotonic() + notebook_timeout
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stopped = f"the notebook time limit ({notebook_timeout:.0f} s) was used up before cell {i}"
                    break
                guarded = guard is not None and i in guard.graders
                if guarded:
                    nonce = secrets.token_hex(16)
                    armed = await _guard_call(
                        client, guard, "arm", remaining, check_path=str(guard.folder / "check.py"), nonce=nonce,
                        check_names=guard.check_names, shadows=guard.shadows)
                    remaining = deadline - time.monotonic()
                    client.recording = []
                t0 = time.monotonic()
                limit = cell_limit()
                count += 1
                try:
                    await asyncio.wait_for(client.async_execute_cell(cell, i, execution_count=count),
                                           timeout=max(1.0, remaining) + GRACE_S)
                except (asyncio.TimeoutError, DeadKernelError, CellTimeoutError) as exc:
                    took = time.monotonic() - t0
                    if time.monotonic() >= deadline or not isinstance(exc, DeadKernelError):
                        runs[i] = CellRun(i, "timeout", seconds=took, note="the notebook time limit")
                        stopped = (f"the notebook time limit ({notebook_timeout:.0f} s) was used up in cell {i}; "
                                   "the kernel was stopped")
                    else:
                        runs[i] = CellRun(i, "error", "DeadKernelError", "the kernel died while running this cell",
                                          seconds=took)
                        stopped = f"the kernel died in cell {i} (a crash, os._exit, or out of memory)"
                    break
                finally:
                    recording, client.recording = client.recording, None
                took = time.monotonic() - t0
                err = _cell_error(cell)
                if err is None:
                    runs[i] = CellRun(i, "ok", seconds=took)
                elif err[0] == "KeyboardInterrupt" and took >= limit - 0.5:
                    note = "the time limit per cell" if limit >= cell_timeout else "the notebook time limit"
                    runs[i] = CellRun(i, "timeout", *err, seconds=took, note=note)
                else:
                    runs[i] = CellRun(i, "error", *err, seconds=took)
                if guarded:
                    runs[i].guard_error, runs[i].checked = armed, i in guard.checked
                    _judge(runs[i], recording or [], replies.get(i, ""), nonce, cell)
                elif guard is not None and guard.keep.get(i) and runs[i].status == "ok":
                    await _guard_call(client, guard, "keep", deadline - time.monotonic(), names=guard.keep[i])
    except Exception as exc:  # the kernel would not start, or nbclient failed in a way we did not foresee
        stopped = f"the notebook could not be run ({type(exc).__name__}: {_ANSI.sub('', str(exc)).strip()[:300]})"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip() and i not in runs:
            runs[i] = CellRun(i, "not run")
    return NotebookRun(nb, runs, stopped, time.monotonic() - t_start)


def execute_notebook(nb, cwd: str | Path, cell_timeout: float = 120, notebook_timeout: float = 900,
                     kernel_name: str = "python3", guard: GuardPlan | None = None,
                     env: dict | None = None) -> NotebookRun:
    """Run ``nb`` (modified in place) in a fresh kernel started in ``cwd``; never raises on learner errors.

    Errors in cells are recorded and the run goes on; a cell over ``cell_timeout`` seconds is
    interrupted; when ``notebook_timeout`` is used up, or the kernel dies, the remaining cells are
    marked "not run" and ``stopped`` says why. With a ``guard``, the kernel is restored before
    each grader cell and the guard fields of its :class:`CellRun` say what the kernel reported.
    """
    from nbclient.util import run_sync

    return run_sync(_execute)(nb, Path(cwd), cell_timeout, notebook_timeout, kernel_name, guard, env)


# --------------------------------------------------------------------------- grading
def checksum(source: str) -> str:
    return hashlib.sha256(normalise(source).encode("utf-8")).hexdigest()


@dataclass
class GraderResult:
    id: str
    points: float
    earned: float
    status: str  # "pass" | "fail" | "edited" | "missing" | "tampered" | "not run"
    message: str = ""


@dataclass
class NotebookGrade:
    learner: str
    notebook: str  # the solution notebook's stem, e.g. "00_warmup" (or the file name if unmatched)
    path: Path
    graders: list[GraderResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    changed: list[str] = field(default_factory=list)  # files the run changed that it must not touch

    @property
    def earned(self) -> float:
        return sum(g.earned for g in self.graders)

    @property
    def max_points(self) -> float:
        return sum(g.points for g in self.graders)


@dataclass(frozen=True)
class Submission:
    learner: str
    name: str  # notebook name without .ipynb
    path: Path


def find_submissions(folder: Path) -> tuple[list[Submission], list[str]]:
    """Submissions in ``folder`` (both layouts) and notes on what was skipped."""
    subs: list[Submission] = []
    notes: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            notebooks = [p for p in sorted(entry.iterdir()) if p.suffix == ".ipynb" and not p.name.startswith(".")]
            if not notebooks:
                notes.append(f"{entry.name}/: no .ipynb file inside")
            subs += [Submission(entry.name, p.stem, p) for p in notebooks]
            others = [p.name for p in sorted(entry.iterdir())
                      if p.suffix != ".ipynb" and not p.name.startswith(".")]
            if others:
                notes.append(f"{entry.name}/: ignored {', '.join(others)} (not .ipynb)")
        elif entry.suffix == ".ipynb":
            learner, sep, name = entry.stem.partition("__")
            if sep and learner and name:
                subs.append(Submission(learner, name, entry))
            else:
                notes.append(f"{entry.name}: ignored; name flat files <learner>__<notebook>.ipynb, "
                             "e.g. alice__00_warmup.ipynb, or put them in a folder per learner")
        else:
            notes.append(f"{entry.name}: ignored (not a notebook file or a learner folder)")
    return subs, notes


@dataclass
class Source:
    name: str
    graders: list[Grader]
    checksums: dict[str, str]
    protection: Protection | None = None


def load_sources(folder: Path) -> dict[str, Source]:
    """Grader cells, their checksums and what they rely on, from each solution notebook in ``folder``."""
    import nbformat

    checker = checker_names(PACKAGE / "classroom" / "check.py")
    sources = {}
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found = graders(nb, where=str(path))
        sources[path.stem] = Source(path.stem, found, {g.id: checksum(g.source) for g in found},
                                    protection_of(nb, checker))
    return sources


def match_source(name: str, sources: dict[str, Source]) -> Source | None:
    if name in sources:
        return sources[name]
    m = re.match(r"^(\d+)", name)
    if m:
        hits = [s for s in sources.values() if s.name.split("_")[0] == m.group(1)]
        if len(hits) == 1:
            return hits[0]
    return None


def _parse_notebook(raw: bytes):
    """The notebook in ``raw``, or a plain-words reason why it is not one."""
    import nbformat

    if not raw.strip():
        return None, "not a notebook: the file is empty"
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except UnicodeDecodeError:
        return None, "not a notebook: the file is binary, not text (a PDF or a zip renamed to .ipynb?)"
    except Exception as exc:  # JSON errors, wrong schema, ...
        first = " ".join(str(exc).split())[:200]
        return None, f"not a notebook: {type(exc).__name__}: {first}"
    if not isinstance(nb.get("cells"), list):
        return None, "not a notebook: it has no list of cells"
    return nb, ""


def _read_bytes(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _read_notebook(path: Path):
    """The notebook at ``path``, or a plain-words reason why it is not one."""
    raw = _read_bytes(path)
    return (None, raw) if isinstance(raw, str) else _parse_notebook(raw)


def _guard_files(folder: Path) -> dict[Path, bytes]:
    """Private copies of the kernel-side guard and the checker, which every kernel loads by path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {folder / Path(name).name: (PACKAGE / name).read_bytes() for name in KERNEL_FILES}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def _verdict(results: list[CellRun], stopped: str) -> tuple[str, str, str]:
    """``(status, message, tampering)`` for the runs of one grader's cells."""
    bad = next((r for r in results if r.status != "ok"), None)
    if bad is not None and (bad.status in ("not run", "timeout") or bad.ename == "DeadKernelError"):
        return ("not run", stopped or "the cell did not run", "") if bad.status == "not run" else ("fail", bad.message, "")
    for r in results:
        if r.guard_error:
            return "fail", "", (f"the grading run could not restore the checker before this grader "
                                f"({r.guard_error}); a cell changed the kernel")
    if bad is not None:
        return "fail", bad.message, ""
    for r in results:
        if not r.guarded:
            continue
        if r.reply not in ("ok", "") or r.error_seen:
            return "fail", "", ("this grader cell raised an error, but the notebook hid it "
                                "(the error display or the kernel's reply was changed)")
        if r.fails:
            return "fail", "", "the course checker reported a failure that the notebook hid"
        if r.checked and not r.passes:
            return "fail", "", ("this grader cell ran without an error, but the course checker never "
                                "reported a pass: it was replaced or bypassed")
    return "pass", "", ""


def grade_submission(sub: Submission, sources: dict[str, Source], workdir: Path, cell_timeout: float,
                     notebook_timeout: float, executed_dir: Path | None = None, raw: bytes | str | None = None,
                     guard_dir: Path | None = None) -> NotebookGrade:
    """Run one submission on a copy in ``workdir`` and score its grader cells.

    ``raw``: the submission's bytes as read before any notebook ran (read from ``sub.path`` if
    None; a string is the reason it could not be read). ``guard_dir``: a folder with private
    copies of ``guard.py`` and ``check.py`` (see :func:`_guard_files`); without it the grader
    cells run unguarded and no tamper scan is done.
    """
    import nbformat

    source = match_source(sub.name, sources)
    grade = NotebookGrade(sub.learner, source.name if source else sub.name, sub.path)
    if source is None:
        grade.problems.append(f"{sub.path.name}: no solution notebook matches this name "
                              f"(known: {', '.join(sources) or 'none'}); rename it like the exercise")
        return grade
    graded = [GraderResult(g.id, g.points, 0.0, "not run") for g in source.graders]
    grade.graders = graded
    raw = _read_bytes(sub.path) if raw is None else raw
    nb, why = (None, raw) if isinstance(raw, str) else _parse_notebook(raw)
    if nb is None:
        grade.problems.append(why)
        for g in graded:
            g.message = why
        return grade

    by_id: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("grader")
        if cell.get("cell_type") == "code" and isinstance(meta, dict) and isinstance(meta.get("id"), str):
            by_id.setdefault(meta["id"], []).append(i)
    graders_at = {i for idxs in by_id.values() for i in idxs}
    intact = {i for gid, idxs in by_id.items() if gid in source.checksums for i in idxs
              if checksum(nb.cells[i].source) == source.checksums[gid]}
    prot = source.protection
    findings: list[Finding] = []
    plan = None
    env = None
    if guard_dir is not None and prot is not None:
        findings = scan_submission(nb, prot, skip=intact)
        ids = {i: gid for gid, idxs in by_id.items() for i in idxs}
        keep = {i: sorted(prot.course_cells[normalise(c.source)]) for i, c in enumerate(nb.cells)
                if c.get("cell_type") == "code" and i not in intact
                and prot.course_cells.get(normalise(c.source))}
        plan = GuardPlan(guard_dir, intact, {i for i in intact if ids[i] in prot.checked}, keep,
                         dict(prot.check_names), sorted(prot.shadows))
        env = {**os.environ, "IPYTHONDIR": str(workdir / ".ipython")}  # no startup files from $HOME

    run_dir = workdir / sub.learner
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / sub.path.name).write_bytes(raw)  # the scratch folder holds the notebook and nothing else
    run = execute_notebook(nb, run_dir, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout,
                           guard=plan, env=env)
    grade.seconds = run.seconds
    if executed_dir is not None:
        out = executed_dir / sub.learner
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{grade.notebook}.ipynb")

    for i, r in sorted(run.cells.items()):
        if i in graders_at:
            continue
        if r.status == "error" and r.ename != "DeadKernelError":  # a dead kernel is reported once, below
            grade.problems.append(f"cell {i} raised {r.message.splitlines()[0] if r.message else r.ename}")
        elif r.status == "timeout":
            grade.problems.append(f"cell {i} was {r.message}")
    if run.stopped:
        grade.problems.append(run.stopped[0].upper() + run.stopped[1:])
    for extra in sorted(set(by_id) - set(source.checksums)):
        grade.problems.append(f"grader id {extra!r} is not in the solution notebook; ignored")
    zeroed: dict[Finding, list[str]] = {f: [] for f in findings}
    for g in graded:
        cells = by_id.get(g.id, [])
        if not cells:
            g.status, g.message = "missing", "this grader cell was deleted (or its metadata removed); copy it back from the exercise notebook"
            grade.problems.append(f"grader {g.id} is missing (scored 0)")
            continue
        if any(i not in intact for i in cells):
            g.status, g.message = "edited", "this grader cell was changed; copy the original back from the exercise notebook"
            grade.problems.append(f"grader {g.id} was edited (scored 0)")
            continue
        status, message, tampering = _verdict([run.cells.get(i, CellRun(i, "not run")) for i in cells],
                                              run.stopped)
        reads = prot.grader_reads.get(g.id, frozenset()) if prot else frozenset()
        hits = [f for f in findings if f.hits(reads)]
        for f in hits:
            zeroed[f].append(g.id)
        if tampering:
            grade.problems.append(f"grader {g.id}: {tampering} (scored 0)")
        if hits or tampering:
            g.status = "tampered"
            g.message = "scored 0: the notebook changes what this grader relies on:\n" + "\n".join(
                f"- {w}" for w in ([tampering] if tampering else []) + [str(f) for f in hits])
            if not tampering:
                g.message += f"\nThe check itself: {status}" + (f": {message.splitlines()[0]}" if message else "")
            continue
        g.status, g.message = status, message
        if status == "pass":
            g.earned = g.points
    for f, ids in zeroed.items():
        if f.undone:
            grade.problems.append(f"tampering undone before grading: {f} (the graders ran on the original)")
        else:
            grade.problems.append(f"tampering in {f}" + (f" (scored 0: {', '.join(ids)})" if ids else ""))
    return grade


# --------------------------------------------------------------------------- what the run must not change
class _Digests:
    """SHA-256 of every file under some folders; unchanged files are not read again (size, mtime, ctime)."""

    def __init__(self):
        self._cache: dict[Path, tuple[tuple, str]] = {}

    def tree(self, folder: Path) -> dict[str, str]:
        found = {}
        if not folder.is_dir():
            return found
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file() or path.is_symlink():
                continue
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            hit = self._cache.get(path)
            if hit is None or hit[0] != key:
                hit = (key, hashlib.sha256(path.read_bytes()).hexdigest())
                self._cache[path] = hit
            found[str(path.relative_to(folder))] = hit[1]
        return found

    def snapshot(self, folders: dict[str, Path]) -> dict[str, dict[str, str]]:
        return {label: self.tree(folder) for label, folder in folders.items()}


def changed_files(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    """``label/path (changed|added|removed)`` for every difference between two snapshots."""
    changes = []
    for label in before:
        b, a = before[label], after.get(label, {})
        for rel in sorted(set(b) | set(a)):
            if rel not in a:
                changes.append(f"{label}/{rel} (removed)")
            elif rel not in b:
                changes.append(f"{label}/{rel} (added)")
            elif a[rel] != b[rel]:
                changes.append(f"{label}/{rel} (changed)")
    return changes


# --------------------------------------------------------------------------- reports
def _fmt(points: float) -> str:
    return f"{points:g}"


def write_gradebook(grades: list[NotebookGrade], path: Path, sources: dict[str, Source]) -> None:
    ids = [g.id for s in sources.values() for g in s.graders]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["learner", "notebook", "points", "max_points", *ids, "problems"])
        for gr in grades:
            earned = {g.id: (_fmt(g.earned) if g.status in ("pass", "fail") else g.status) for g in gr.graders}
            w.writerow([gr.learner, gr.notebook, _fmt(gr.earned), _fmt(gr.max_points),
                        *(earned.get(i, "") for i in ids), "; ".join(gr.problems)])
    os.replace(tmp, path)


def feedback_markdown(learner: str, grades: list[NotebookGrade]) -> str:
    lines = [f"# Feedback for {learner}", ""]
    for gr in grades:
        lines += [f"## {gr.notebook}: {_fmt(gr.earned)} / {_fmt(gr.max_points)} points", ""]
        for g in gr.graders:
            lines.append(f"- **{g.id}**: {g.status}, {_fmt(g.earned)} / {_fmt(g.points)} points")
            if g.message:
                lines += ["", "  ```text", *(f"  {m}" for m in g.message.splitlines()), "  ```", ""]
        if gr.problems:
            lines += ["", "Also noticed:", ""] + [f"- {p}" for p in gr.problems]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def grade_folder(submissions: str | Path, out: str | Path = "grading-out", source: str | Path = "solutions",
                 cell_timeout: float = 120, notebook_timeout: float = 900, verbose: bool = True) -> list[NotebookGrade]:
    """Grade every submission in ``submissions``; write the gradebook and feedback into ``out``.

    Every submission is read before the first one runs, so a notebook that writes into another
    learner's folder cannot change what that learner is graded on. The solution notebooks, the
    submissions folder, the ``ftcourse`` package and the guard's private files are hashed before
    and after each run; a change is an error on that submission (its graders score 0), and the
    guard's files are put back.
    """
    log = print if verbose else (lambda *a, **k: None)
    submissions, out, source = Path(submissions).resolve(), Path(out).resolve(), Path(source).resolve()
    if not submissions.is_dir():
        raise CourseError(f"No submissions folder {submissions}. Expected {submissions}/<learner>/<notebook>.ipynb.")
    if out == submissions or submissions in out.parents:
        raise CourseError(f"--out {out} is inside the submissions folder, which grading never writes to; "
                          "choose another folder.")
    if not source.is_dir() or not any(source.glob("*.ipynb")):
        raise CourseError(f"No solution notebooks in {source}/ (needed for the grader checksums); "
                          "run from the course root or pass --source.")
    sources = load_sources(source)
    subs, notes = find_submissions(submissions)
    for note in notes:
        log(f"note: {note}")
    out.mkdir(parents=True, exist_ok=True)
    if not subs:
        write_gradebook([], out / "gradebook.csv", sources)
        log(f"No submissions found in {submissions}. Expected {submissions}/<learner>/<notebook>.ipynb "
            f"(or {submissions}/<learner>__<notebook>.ipynb). Nothing was graded.")
        return []
    contents = {sub.path: _read_bytes(sub.path) for sub in subs}
    grades: list[NotebookGrade] = []
    digests = _Digests()
    with tempfile.TemporaryDirectory(prefix="ftcourse-grade-") as tmp:
        guard_dir = Path(tmp) / "guard"
        guard_files = _guard_files(guard_dir)
        watched = {source.name: source, submissions.name: submissions, "ftcourse": PACKAGE,
                   "(grading guard)": guard_dir}
        before = digests.snapshot(watched)
        for n, sub in enumerate(subs, 1):
            log(f"[{n}/{len(subs)}] {sub.learner}: {sub.path.name} ...", end=" ", flush=True)
            gr = grade_submission(sub, sources, Path(tmp) / f"{n:03d}", cell_timeout, notebook_timeout,
                                  executed_dir=out / "executed", raw=contents[sub.path], guard_dir=guard_dir)
            after = digests.snapshot(watched)
            gr.changed = changed_files(before, after)
            if gr.changed:
                for g in gr.graders:
                    g.status, g.earned = "tampered", 0.0
                    g.message = "scored 0: files the grading run must not change were changed while this notebook ran"
                gr.problems.insert(0, "ERROR: while this notebook ran, files it must not touch changed: "
                                   + ", ".join(gr.changed) + "; all its graders score 0")
                for path, data in guard_files.items():
                    path.write_bytes(data)
                after = digests.snapshot(watched)
            before = after
            grades.append(gr)
            log(f"{_fmt(gr.earned)}/{_fmt(gr.max_points)} points ({gr.seconds:.0f} s)"
                + (f"; {len(gr.problems)} problem(s)" if gr.problems else ""))
            if gr.changed:
                log(f"ERROR: the run of {sub.learner}/{sub.path.name} changed: {', '.join(gr.changed)}. "
                    "Put those files back (course files with `git checkout`, submissions from your own copy) "
                    "and grade again: later notebooks may have run against the changed files.")
    write_gradebook(grades, out / "gradebook.csv", sources)
    fb_dir = out / "feedback"
    if fb_dir.exists():
        shutil.rmtree(fb_dir)
    fb_dir.mkdir()
    for learner in sorted({g.learner for g in grades}):
        mine = [g for g in grades if g.learner == learner]
        (fb_dir / f"{learner}.md").write_text(feedback_markdown(learner, mine), encoding="utf-8")
    log(f"\nGradebook: {out / 'gradebook.csv'}\nFeedback:  {fb_dir}/<learner>.md")
    return grades


def cli_grade(args) -> int:
    """``python -m ftcourse grade DIR``: see the module docstring.

    Exit status 1 when nothing was graded, 2 when a run changed files it must not touch.
    """
    grades = grade_folder(args.submissions, out=args.out, source=args.source, cell_timeout=args.cell_timeout,
                          notebook_timeout=args.notebook_timeout)
    if grades:
        width = max(len(g.learner) for g in grades)
        print()
        for g in grades:
            print(f"{g.learner.ljust(width)}  {g.notebook}  {_fmt(g.earned)}/{_fmt(g.max_points)}"
                  + (f"  ({'; '.join(g.problems)})" if g.problems else ""))
    if any(g.changed for g in grades):
        print("\nERROR: at least one run changed files it must not touch (see above); the gradebook says which.")
        return 2
    return 0 if grades else 1
