"""Quiz files: the YAML format of the course's quick checks, its validation, and loading it as plain data.

One file a lesson, ``ftcourse/data/quizzes/<lesson>.yaml``. This module has no widgets and records
nothing, so both the quiz widgets (:mod:`ftcourse.classroom.quiz`) and the progress summary
(:mod:`ftcourse.classroom.progress`) can read the catalogue of lessons and questions from it. Every name here
is also importable from :mod:`ftcourse.classroom.quiz`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import CourseError

KINDS = ("single", "multi", "match")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_TOP_KEYS = {"lesson", "title", "questions"}
_QUESTION_KEYS = {"single": {"id", "kind", "prompt", "source", "options"},
                  "multi": {"id", "kind", "prompt", "source", "options"},
                  "match": {"id", "kind", "prompt", "source", "choices", "items"}}


class QuizFileError(CourseError):
    """A quiz file is missing or breaks the quiz format; the message lists every problem."""


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Option:
    text: str
    correct: bool
    explain: str


@dataclass(frozen=True)
class MatchItem:
    text: str
    answer: str
    explain: str


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    prompt: str
    source: str
    options: tuple[Option, ...] = ()
    choices: tuple[str, ...] = ()
    items: tuple[MatchItem, ...] = ()


@dataclass(frozen=True)
class Quiz:
    lesson: str
    title: str
    questions: tuple[Question, ...]
    path: Path | None = None


def quiz_dir() -> Path:
    """The folder of the course's quiz files."""
    return Path(__file__).resolve().parents[1] / "data" / "quizzes"


def quiz_files() -> list[Path]:
    return sorted(quiz_dir().glob("*.yaml"))


def available_lessons() -> list[str]:
    return [p.stem for p in quiz_files()]


# --------------------------------------------------------------------------- validation
def _text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _check_entries(entries: list, where: str, keys: tuple[str, ...], check, explain_note: str,
                   problems: list[str]) -> list:
    """The checks an option and a match item share; ``check(where, entry)`` adds the kind's own.

    Returns the entries' texts, for the duplicate check.
    """
    texts, allowed = [], ", ".join(keys)
    for j, entry in enumerate(entries):
        ew = f"{where}[{j}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{ew}: must be a mapping with {allowed}")
            continue
        if set(entry) - set(keys):
            problems.append(f"{ew}: unknown key(s) {sorted(set(entry) - set(keys))} (allowed: {allowed})")
        if not _text(entry.get("text")):
            problems.append(f"{ew}: needs a non-empty 'text'")
        texts.append(entry.get("text"))
        check(ew, entry)
        if not _text(entry.get("explain")):
            problems.append(f"{ew}: needs an 'explain' {explain_note}")
    return texts


def _check_question(q, where: str, problems: list[str]) -> None:
    if not isinstance(q, Mapping):
        problems.append(f"{where}: must be a mapping with id, kind, prompt, source, ...")
        return
    kind = q.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: kind must be one of {', '.join(KINDS)} (got {kind!r})")
        return
    unknown = set(q) - _QUESTION_KEYS[kind]
    if unknown:
        problems.append(f"{where}: unknown key(s) {sorted(unknown)} for kind {kind!r} "
                        f"(allowed: {sorted(_QUESTION_KEYS[kind])})")
    for key in ("prompt", "source"):
        if not _text(q.get(key)):
            problems.append(f"{where}: needs a non-empty {key!r}"
                            + (" (a seed file or a lesson section, e.g. 'seed 000, Quick check')"
                               if key == "source" else ""))
    if kind in ("single", "multi"):
        options = q.get("options")
        if not isinstance(options, list) or len(options) < 2:
            problems.append(f"{where}: needs a list of at least 2 options")
            return
        def correct_flag(ow, opt):
            if not isinstance(opt.get("correct"), bool):
                problems.append(f"{ow}: 'correct' must be true or false (got {opt.get('correct')!r})")

        texts = _check_entries(options, f"{where}: options", ("text", "correct", "explain"), correct_flag,
                               "(shown after Check, right or wrong)", problems)
        if len(set(map(str, texts))) != len(texts):
            problems.append(f"{where}: two options have the same text")
        n_correct = sum(1 for o in options if isinstance(o, Mapping) and o.get("correct") is True)
        if kind == "single" and n_correct != 1:
            problems.append(f"{where}: a single-choice question needs exactly one correct option (has {n_correct})")
        if kind == "multi" and n_correct < 1:
            problems.append(f"{where}: a multi-select question needs at least one correct option")
    else:
        choices = q.get("choices")
        if (not isinstance(choices, list) or len(choices) < 2 or not all(_text(c) for c in choices)):
            problems.append(f"{where}: 'choices' must be a list of at least 2 non-empty strings")
            choices = []
        elif len(set(choices)) != len(choices):
            problems.append(f"{where}: 'choices' has duplicates")
        items = q.get("items")
        if not isinstance(items, list) or len(items) < 2:
            problems.append(f"{where}: needs a list of at least 2 items")
            return
        def known_answer(iw, item):
            if choices and item.get("answer") not in choices:
                problems.append(f"{iw}: answer {item.get('answer')!r} is not one of the choices {choices}")

        texts = _check_entries(items, f"{where}: items", ("text", "answer", "explain"), known_answer,
                               "(shown after Check)", problems)
        if len(set(map(str, texts))) != len(texts):
            problems.append(f"{where}: two items have the same text")


def quiz_problems(data, name: str = "quiz", expected_lesson: str | None = None) -> list[str]:
    """Every problem in parsed quiz data (empty list: the data is a valid quiz)."""
    if not isinstance(data, Mapping):
        return [f"{name}: the file must be a mapping with lesson, title, questions"]
    problems = []
    unknown = set(data) - _TOP_KEYS
    if unknown:
        problems.append(f"{name}: unknown top-level key(s) {sorted(unknown)} (allowed: lesson, title, questions)")
    lesson = data.get("lesson")
    if not _text(lesson):
        problems.append(f"{name}: 'lesson' must be a quoted string like \"01\" (got {lesson!r})")
    elif expected_lesson is not None and lesson != expected_lesson:
        problems.append(f"{name}: lesson {lesson!r} does not match the file name ({expected_lesson}.yaml)")
    if not _text(data.get("title")):
        problems.append(f"{name}: needs a non-empty 'title'")
    questions = data.get("questions")
    if not isinstance(questions, list) or not questions:
        problems.append(f"{name}: 'questions' must be a non-empty list")
        return problems
    seen: set[str] = set()
    for i, q in enumerate(questions):
        qid = q.get("id") if isinstance(q, Mapping) else None
        where = f"{name}: questions[{i}]" + (f" ({qid})" if isinstance(qid, str) else "")
        if not isinstance(qid, str) or not _ID.match(qid):
            problems.append(f"{where}: 'id' must be lower-case letters, digits, '-', '_' or '.' (got {qid!r})")
        elif qid in seen:
            problems.append(f"{where}: id {qid!r} is used twice")
        else:
            seen.add(qid)
        _check_question(q, where, problems)
    return problems


def _read_yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")), []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot be read ({exc})"]
    except yaml.YAMLError as exc:
        return None, [f"{path}: is not valid YAML ({' '.join(str(exc).split())})"]


def validate_quiz_file(path: str | Path) -> list[str]:
    """Every problem in one quiz file, as readable lines; an empty list means the file is valid.

    Checks: YAML parses; lesson matches the file name; ids are well-formed and unique in the file;
    kinds are known; every question has a prompt and a source; single has exactly one correct
    option, multi at least one; match answers are among the choices; every option and item has an
    explanation; no unknown keys (they are usually typos, e.g. ``explanation`` for ``explain``).
    """
    path = Path(path)
    data, problems = _read_yaml(path)
    return problems or quiz_problems(data, name=str(path), expected_lesson=path.stem)


def validate_all_quizzes(paths: Iterable[str | Path] | None = None) -> list[str]:
    """Problems in every quiz file (default: all course quizzes), plus ids used in more than one file."""
    paths = [Path(p) for p in (quiz_files() if paths is None else paths)]
    problems: list[str] = []
    owner: dict[str, Path] = {}
    for path in paths:
        found = validate_quiz_file(path)
        problems += found
        data, _ = _read_yaml(path)
        if not isinstance(data, Mapping) or not isinstance(data.get("questions"), list):
            continue
        for q in data["questions"]:
            qid = q.get("id") if isinstance(q, Mapping) else None
            if not isinstance(qid, str):
                continue
            if qid in owner and owner[qid] != path:
                problems.append(f"{path}: id {qid!r} is already used in {owner[qid]}")
            owner.setdefault(qid, path)
    return problems


# --------------------------------------------------------------------------- loading
def _resolve(lesson: str | int | Path) -> Path:
    if isinstance(lesson, Path) or (isinstance(lesson, str) and lesson.endswith((".yaml", ".yml"))):
        return Path(lesson)
    key = f"{lesson:02d}" if isinstance(lesson, int) else str(lesson).strip()
    m = re.match(r"^(\d+)", key)
    key = m.group(1).zfill(2) if m else key
    return quiz_dir() / f"{key}.yaml"


def _build(data, path: Path) -> Quiz:
    questions = []
    for q in data["questions"]:
        questions.append(Question(
            id=q["id"], kind=q["kind"], prompt=q["prompt"].strip(), source=q["source"].strip(),
            options=tuple(Option(o["text"].strip(), o["correct"], o["explain"].strip()) for o in q.get("options", ())),
            choices=tuple(c.strip() for c in q.get("choices", ())),
            items=tuple(MatchItem(i["text"].strip(), i["answer"].strip(), i["explain"].strip())
                        for i in q.get("items", ())),
        ))
    return Quiz(lesson=data["lesson"], title=data["title"].strip(), questions=tuple(questions), path=path)


def load_quiz(lesson: str | int | Path) -> Quiz:
    """A lesson's quiz (``"01"``, ``1``, ``"01_prompt_vs_weights"``) or a quiz file path.

    Raises :class:`QuizFileError` listing every problem when the file is missing or invalid.
    """
    path = _resolve(lesson)
    if not path.is_file():
        have = ", ".join(available_lessons()) or "none"
        raise QuizFileError(f"No quiz file {path}. Lessons with a quiz: {have}.")
    data, problems = _read_yaml(path)
    problems = problems or quiz_problems(data, name=str(path), expected_lesson=path.stem)
    if problems:
        raise QuizFileError(f"{path} is not a valid quiz:\n  - " + "\n  - ".join(problems))
    return _build(data, path)
