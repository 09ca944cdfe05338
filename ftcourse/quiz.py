"""Quick-check quizzes: questions are YAML data, shown with plain ipywidgets.

One file a lesson, ``ftcourse/data/quizzes/<lesson>.yaml``; open it to read or edit the questions.
Three kinds of question:

* ``single``: pick one option; exactly one option is correct;
* ``multi``: tick every option that applies; one or more are correct;
* ``match``: pair each situation (an *item*) with one of the *choices*.

Every option and every item carries its own explanation, shown after Check, so a wrong answer
teaches as much as a right one. Every question names its ``source`` (a seed file or a lesson section).

In a notebook::

    from ftcourse.quiz import show_quiz
    show_quiz("01")

The grading is plain functions (:func:`grade`), so tests need no browser. The widgets use core
ipywidgets only (no custom JavaScript) and carry stable CSS classes (``quiz``, ``quiz-question``,
``quiz-check``, ``quiz-retry``, ``quiz-feedback``, ``quiz-score``, ...). Each Check is recorded in your
progress file (see :mod:`ftcourse.progress`).

Check a quiz file you wrote: ``python -m ftcourse.quiz ftcourse/data/quizzes/01.yaml``
(no argument: every quiz file), or ``validate_quiz_file(path)`` in Python.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError

KINDS = ("single", "multi", "match")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_TOP_KEYS = {"lesson", "title", "questions"}
_QUESTION_KEYS = {"single": {"id", "kind", "prompt", "source", "options"},
                  "multi": {"id", "kind", "prompt", "source", "options"},
                  "match": {"id", "kind", "prompt", "source", "choices", "items"}}
_OPTION_KEYS = {"text", "correct", "explain"}
_ITEM_KEYS = {"text", "answer", "explain"}


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
    return Path(__file__).parent / "data" / "quizzes"


def quiz_files() -> list[Path]:
    return sorted(quiz_dir().glob("*.yaml"))


def available_lessons() -> list[str]:
    return [p.stem for p in quiz_files()]


# --------------------------------------------------------------------------- validation
def _text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


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
        texts = []
        for j, opt in enumerate(options):
            ow = f"{where}: options[{j}]"
            if not isinstance(opt, Mapping):
                problems.append(f"{ow}: must be a mapping with text, correct, explain")
                continue
            if set(opt) - _OPTION_KEYS:
                problems.append(f"{ow}: unknown key(s) {sorted(set(opt) - _OPTION_KEYS)} (allowed: text, correct, explain)")
            if not _text(opt.get("text")):
                problems.append(f"{ow}: needs a non-empty 'text'")
            texts.append(opt.get("text"))
            if not isinstance(opt.get("correct"), bool):
                problems.append(f"{ow}: 'correct' must be true or false (got {opt.get('correct')!r})")
            if not _text(opt.get("explain")):
                problems.append(f"{ow}: needs an 'explain' (shown after Check, right or wrong)")
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
        texts = []
        for j, item in enumerate(items):
            iw = f"{where}: items[{j}]"
            if not isinstance(item, Mapping):
                problems.append(f"{iw}: must be a mapping with text, answer, explain")
                continue
            if set(item) - _ITEM_KEYS:
                problems.append(f"{iw}: unknown key(s) {sorted(set(item) - _ITEM_KEYS)} (allowed: text, answer, explain)")
            if not _text(item.get("text")):
                problems.append(f"{iw}: needs a non-empty 'text'")
            texts.append(item.get("text"))
            if choices and item.get("answer") not in choices:
                problems.append(f"{iw}: answer {item.get('answer')!r} is not one of the choices {choices}")
            if not _text(item.get("explain")):
                problems.append(f"{iw}: needs an 'explain' (shown after Check)")
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


# --------------------------------------------------------------------------- grading (plain functions)
@dataclass(frozen=True)
class Feedback:
    """One line of feedback: an option (or item), what was picked, whether that was right, why."""

    text: str
    picked: bool | str | None  # single/multi: ticked or not; match: the choice picked
    right: bool
    explain: str


@dataclass(frozen=True)
class CheckResult:
    correct: bool  # the whole question is right
    score: float  # share of options/items in the right state, 0..1
    feedback: tuple[Feedback, ...]
    summary: str  # one sentence for the learner
    missed: int = 0  # multi: correct options left unticked (not revealed)


class NoAnswer(ValueError):
    """Check was pressed before an answer was given."""


def grade(question: Question, answer) -> CheckResult:
    """Grade ``answer`` to ``question``.

    * single: the index of the picked option;
    * multi: an iterable of the ticked option indices;
    * match: a sequence of choices in item order, or a mapping ``{item_index: choice}``.

    Raises :class:`NoAnswer` when nothing (or, for match, not every item) was answered, and
    ``ValueError`` for an index or choice that does not exist.
    """
    if question.kind == "single":
        if answer is None:
            raise NoAnswer("Pick an option first.")
        idx = int(answer)
        if not 0 <= idx < len(question.options):
            raise ValueError(f"option {idx} does not exist ({len(question.options)} options)")
        opt = question.options[idx]
        return CheckResult(
            correct=opt.correct, score=1.0 if opt.correct else 0.0,
            feedback=(Feedback(opt.text, True, opt.correct, opt.explain),),
            summary="Right." if opt.correct else "Not this one. Read why, then press Retry.",
        )
    if question.kind == "multi":
        ticked = {int(i) for i in (answer or ())}
        if not ticked:
            raise NoAnswer("Tick at least one option first.")
        bad = [i for i in ticked if not 0 <= i < len(question.options)]
        if bad:
            raise ValueError(f"option(s) {bad} do not exist ({len(question.options)} options)")
        right_states = sum((i in ticked) == o.correct for i, o in enumerate(question.options))
        missed = sum(1 for i, o in enumerate(question.options) if o.correct and i not in ticked)
        feedback = tuple(Feedback(o.text, True, o.correct, o.explain)
                         for i, o in enumerate(question.options) if i in ticked)
        correct = right_states == len(question.options)
        if correct:
            summary = "Right: you ticked exactly the options that apply."
        else:
            wrong = sum(1 for f in feedback if not f.right)
            parts = []
            if wrong:
                parts.append(f"{wrong} ticked option{'s do' if wrong > 1 else ' does'} not apply")
            if missed:
                parts.append(f"{missed} option{'s that apply are' if missed > 1 else ' that applies is'} not ticked")
            summary = "Not yet: " + " and ".join(parts) + ". Press Retry to try again."
        return CheckResult(correct, right_states / len(question.options), feedback, summary, missed)
    if question.kind == "match":
        n = len(question.items)
        if isinstance(answer, Mapping):
            picks = [answer.get(i) for i in range(n)]
        else:
            picks = list(answer or ())
            if len(picks) != n:
                raise ValueError(f"expected {n} answers, one per item, got {len(picks)}")
        if any(p is None for p in picks):
            raise NoAnswer("Pick a choice for every item first.")
        unknown = [p for p in picks if p not in question.choices]
        if unknown:
            raise ValueError(f"{unknown} not among the choices {list(question.choices)}")
        feedback = tuple(Feedback(it.text, p, p == it.answer, it.explain)
                         for it, p in zip(question.items, picks, strict=True))
        n_right = sum(f.right for f in feedback)
        summary = ("Right: every pair matches." if n_right == n
                   else f"{n_right} of {n} pairs match. Read the explanations, then press Retry.")
        return CheckResult(n_right == n, n_right / n, feedback, summary)
    raise ValueError(f"unknown question kind {question.kind!r}")


# --------------------------------------------------------------------------- widgets
def _inline(text: str) -> str:
    """Escape ``text`` for HTML, keeping `code` and **bold** from the YAML."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _feedback_html(question: Question, result: CheckResult) -> str:
    mark = "\u2713" if result.correct else "\u2717"
    rows = []
    for f in result.feedback:
        tick = "\u2713" if f.right else "\u2717"
        picked = f" <i>(you picked: {_inline(f.picked)})</i>" if isinstance(f.picked, str) else ""
        rows.append(f'<li class="{"quiz-right" if f.right else "quiz-wrong"}">{tick} <b>{_inline(f.text)}</b>'
                    f"{picked}<br>{_inline(f.explain)}</li>")
    return (f'<div class="quiz-verdict"><b>{mark} {_inline(result.summary)}</b></div>'
            f'<ul class="quiz-explanations">{"".join(rows)}</ul>')


@dataclass
class QuestionView:
    """The widgets of one question. Drive it in tests: ``view.select(1); view.check_button.click()``.

    ``selector`` is a list of checkboxes (single and multi; for single, ticking one unticks the
    others) or a list of dropdowns (match, one per item).
    """

    question: Question
    lesson: str
    record: bool = True
    progress_file: str | Path | None = None
    on_change: object = None  # called with no argument after every Check (updates the score)
    attempts: int = 0
    solved: bool = False
    last: CheckResult | None = None
    inputs: list = field(default_factory=list)

    def __post_init__(self):
        import ipywidgets as w

        q = self.question
        self.prompt = w.HTML(f'<div class="quiz-prompt-text"><b>{_inline(q.prompt)}</b></div>')
        self.prompt.add_class("quiz-prompt")
        hint = {"single": "Pick one.", "multi": "Tick every option that applies.",
                "match": "Pick a choice for each item."}[q.kind]
        self.source = w.HTML(f"<small>{hint} Source: {_inline(q.source)}</small>")
        self.source.add_class("quiz-source")
        if q.kind in ("single", "multi"):
            # A checkbox and an HTML label a row: long option texts wrap (RadioButtons labels do not).
            self.selector = [w.Checkbox(value=False, indent=False, layout=w.Layout(width="auto"))
                             for _ in q.options]
            rows = []
            for box, o in zip(self.selector, q.options, strict=True):
                label = w.HTML(_inline(o.text))
                label.add_class("quiz-option-text")
                box.add_class("quiz-option-box")
                rows.append(w.HBox([box, label]))
                if q.kind == "single":
                    box.observe(self._only_one, names="value")
            self.inputs = list(self.selector)
            body = w.VBox(rows)
        else:
            self.selector = [w.Dropdown(options=[("choose\u2026", None), *((c, c) for c in q.choices)], value=None,
                                        layout=w.Layout(width="auto")) for _ in q.items]
            rows = []
            for dd, it in zip(self.selector, q.items, strict=True):
                label = w.HTML(_inline(it.text), layout=w.Layout(width="55%"))
                label.add_class("quiz-item-text")
                dd.add_class("quiz-match-choice")
                rows.append(w.HBox([label, dd]))
            self.inputs = list(self.selector)
            body = w.VBox(rows)
        body.add_class("quiz-options")
        self.check_button = w.Button(description="Check", button_style="primary", icon="check")
        self.check_button.add_class("quiz-check")
        self.retry_button = w.Button(description="Retry", disabled=True, icon="refresh")
        self.retry_button.add_class("quiz-retry")
        self.feedback = w.HTML("")
        self.feedback.add_class("quiz-feedback")
        self.check_button.on_click(lambda _b: self.check())
        self.retry_button.on_click(lambda _b: self.retry())
        buttons = w.HBox([self.check_button, self.retry_button])
        buttons.add_class("quiz-buttons")
        self.box = w.VBox([self.prompt, self.source, body, buttons, self.feedback],
                          layout=w.Layout(border="1px solid #ccc", padding="6px", margin="6px 0"))
        self.box.add_class("quiz-question")
        self.box.add_class(f"quiz-kind-{q.kind}")

    def _only_one(self, change) -> None:
        """Single choice: ticking one option unticks the others."""
        if change["new"]:
            for box in self.selector:
                if box is not change["owner"] and box.value:
                    box.value = False

    # -- reading and setting the answer (also how tests drive the widget)
    def answer(self):
        q = self.question
        if q.kind == "single":
            return next((i for i, box in enumerate(self.selector) if box.value), None)
        if q.kind == "multi":
            return [i for i, box in enumerate(self.selector) if box.value]
        return [dd.value for dd in self.selector]

    def select(self, answer) -> None:
        """Set the widgets to ``answer`` (same shapes as :func:`grade`)."""
        q = self.question
        if q.kind in ("single", "multi"):
            chosen = {answer} if q.kind == "single" else set(answer)
            for i, box in enumerate(self.selector):
                box.value = i in chosen
        else:
            for dd, choice in zip(self.selector, answer, strict=True):
                dd.value = choice

    def _lock(self, locked: bool) -> None:
        for widget in self.inputs:
            widget.disabled = locked
        self.check_button.disabled = locked
        self.retry_button.disabled = not locked

    def check(self) -> CheckResult | None:
        try:
            result = grade(self.question, self.answer())
        except NoAnswer as exc:
            self.feedback.value = f'<div class="quiz-verdict">{_inline(str(exc))}</div>'
            return None
        self.attempts += 1
        self.last = result
        self.solved = self.solved or result.correct
        self.feedback.value = _feedback_html(self.question, result)
        self.box.remove_class("quiz-correct")
        self.box.remove_class("quiz-incorrect")
        self.box.add_class("quiz-correct" if result.correct else "quiz-incorrect")
        self._lock(True)
        if self.record:
            from .progress import record_check

            record_check(self.lesson, self.question.id, result.correct, self.attempts, path=self.progress_file)
        if callable(self.on_change):
            self.on_change()
        return result

    def retry(self) -> None:
        q = self.question
        if q.kind in ("single", "multi"):
            for box in self.selector:
                box.value = False
        else:
            for dd in self.selector:
                dd.value = None
        self.feedback.value = ""
        self.box.remove_class("quiz-correct")
        self.box.remove_class("quiz-incorrect")
        self._lock(False)


class QuizView:
    """A lesson's quiz as widgets: a title, one :class:`QuestionView` per question, a running score."""

    def __init__(self, quiz: Quiz, record: bool = True, progress_file: str | Path | None = None):
        import ipywidgets as w

        self.quiz = quiz
        self.questions = [QuestionView(q, quiz.lesson, record=record, progress_file=progress_file,
                                       on_change=self._update_score) for q in quiz.questions]
        self.title = w.HTML(f"<h3>Quick check: {_inline(quiz.title)}</h3>")
        self.title.add_class("quiz-title")
        self.score = w.HTML("")
        self.score.add_class("quiz-score")
        self._update_score()
        self.box = w.VBox([self.title, *(v.box for v in self.questions), self.score])
        self.box.add_class("quiz")

    def score_counts(self) -> tuple[int, int, int]:
        """(questions solved, questions, checks so far)."""
        return (sum(v.solved for v in self.questions), len(self.questions), sum(v.attempts for v in self.questions))

    def _update_score(self) -> None:
        solved, total, checks = self.score_counts()
        self.score.value = f"<b>Score: {solved} of {total} right</b> ({checks} check{'s' if checks != 1 else ''})"


def build_quiz(lesson: str | int | Path, record: bool = True, progress_file: str | Path | None = None) -> QuizView:
    """The quiz of ``lesson`` as a :class:`QuizView`, not displayed (``view.box`` is the widget)."""
    return QuizView(load_quiz(lesson), record=record, progress_file=progress_file)


def show_quiz(lesson: str | int | Path, record: bool = True) -> None:
    """Show the quick-check quiz of ``lesson`` in the notebook, e.g. ``show_quiz("01")``."""
    from IPython.display import display

    display(build_quiz(lesson, record=record).box)


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ftcourse.quiz [FILE ...]``: validate quiz files (default: all of them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    paths = [Path(a) for a in argv] if argv else quiz_files()
    problems = validate_all_quizzes(paths)
    for line in problems:
        print(line)
    n_q = 0
    for p in paths:
        data, _ = _read_yaml(p)
        if isinstance(data, Mapping) and isinstance(data.get("questions"), list):
            n_q += len(data["questions"])
    print(f"{len(paths)} quiz file(s), {n_q} question(s): "
          + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
