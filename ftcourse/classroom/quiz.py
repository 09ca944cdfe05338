"""Quick-check quizzes: questions are YAML data, shown with plain ipywidgets.

One file a lesson, ``ftcourse/data/quizzes/<lesson>.yaml``; open it to read or edit the questions.
Three kinds of question:

* ``single``: pick one option; exactly one option is correct;
* ``multi``: tick every option that applies; one or more are correct;
* ``match``: pair each situation (an *item*) with one of the *choices*.

Every option and every item carries its own explanation, shown after Check, so a wrong answer
teaches as much as a right one. Every question names its ``source`` (a seed file or a lesson section).

In a notebook::

    from ftcourse.classroom import show_quiz
    show_quiz("01")

The grading is plain functions (:func:`grade`), so tests need no browser. The widgets use core
ipywidgets only (no custom JavaScript) and carry stable CSS classes (``quiz``, ``quiz-question``,
``quiz-single-choice`` on a single-choice question's radio buttons, ``quiz-option-box``, ``quiz-check``,
``quiz-retry``, ``quiz-feedback``, ``quiz-score``, ...). Each Check is recorded in your progress file
(see :mod:`ftcourse.classroom.progress`).

The file format, its validation and loading are in :mod:`ftcourse.classroom.quiz_files`; their names are
importable from here too.

Check a quiz file you wrote: ``python -m ftcourse.classroom.quiz ftcourse/data/quizzes/01.yaml``
(no argument: every quiz file), or ``validate_quiz_file(path)`` in Python.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .progress import record_check
from .quiz_files import (
    KINDS,
    MatchItem,
    Option,
    Question,
    Quiz,
    QuizFileError,
    _read_yaml,
    available_lessons,
    load_quiz,
    quiz_dir,
    quiz_files,
    quiz_problems,
    validate_all_quizzes,
    validate_quiz_file,
)

# The quiz file format and its loading live in quiz_files (the progress summary reads them too);
# their names stay importable from here.
__all__ = ["KINDS", "MatchItem", "Option", "Question", "Quiz", "QuizFileError", "available_lessons", "load_quiz",
           "quiz_dir", "quiz_files", "quiz_problems", "validate_all_quizzes", "validate_quiz_file",
           "Feedback", "CheckResult", "NoAnswer", "grade", "QuestionView", "QuizView", "build_quiz", "show_quiz",
           "main"]


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
SINGLE_CHOICE_CLASS = "quiz-single-choice"
# RadioButtons give each label a fixed one-line height; under the class above, a long label wraps,
# with its radio button kept at the start of the first line. (Selectors for ipywidgets 8's class
# names, old and new.)
_RADIO = (f".{SINGLE_CHOICE_CLASS} .widget-radio-box", f".{SINGLE_CHOICE_CLASS} .jupyter-widget-radio-box")
QUIZ_STYLE = (
    "<style>"
    f".{SINGLE_CHOICE_CLASS}{{height:auto;max-width:100%}}"
    + ",".join(f"{r} label" for r in _RADIO)
    + "{height:auto;min-height:var(--jp-widgets-radio-item-height,20px);line-height:1.4;white-space:normal;"
    "display:flex;flex-direction:row-reverse;justify-content:flex-end;align-items:flex-start;padding:3px 0}"
    + ",".join(f"{r} input" for r in _RADIO)
    + "{float:none;flex:none;height:auto;margin:3px 8px 0 1px}"
    "</style>"
)


def _plain(text: str) -> str:
    """``text`` for a plain-text label: the YAML's **bold** markers are dropped, `code` stays as typed."""
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text)


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

    ``selector`` is one ``RadioButtons`` (single: its value is the picked option's index, or None),
    a list of checkboxes (multi) or a list of dropdowns (match, one per item).
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
        if q.kind == "single":
            # Radio buttons: the control itself says that only one answer can be picked. Their labels
            # are plain text; the style lets a long one wrap instead of running off the page.
            self.selector = w.RadioButtons(options=[(_plain(o.text), i) for i, o in enumerate(q.options)],
                                           value=None, layout=w.Layout(width="100%"))
            self.selector.add_class(SINGLE_CHOICE_CLASS)
            self.inputs = [self.selector]
            style = w.HTML(QUIZ_STYLE)
            style.add_class("quiz-style")
            body = w.VBox([style, self.selector])
        elif q.kind == "multi":
            # A checkbox and an HTML label a row, so long option texts wrap.
            self.selector = [w.Checkbox(value=False, indent=False, layout=w.Layout(width="auto"))
                             for _ in q.options]
            rows = []
            for box, o in zip(self.selector, q.options, strict=True):
                label = w.HTML(_inline(o.text))
                label.add_class("quiz-option-text")
                box.add_class("quiz-option-box")
                rows.append(w.HBox([box, label]))
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

    # -- reading and setting the answer (also how tests drive the widget)
    def answer(self):
        q = self.question
        if q.kind == "single":
            return self.selector.value
        if q.kind == "multi":
            return [i for i, box in enumerate(self.selector) if box.value]
        return [dd.value for dd in self.selector]

    def select(self, answer) -> None:
        """Set the widgets to ``answer`` (same shapes as :func:`grade`)."""
        q = self.question
        if q.kind == "single":
            self.selector.value = None if answer is None else int(answer)
        elif q.kind == "multi":
            chosen = set(answer)
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
            record_check(self.lesson, self.question.id, result.correct, self.attempts, path=self.progress_file)
        if callable(self.on_change):
            self.on_change()
        return result

    def retry(self) -> None:
        q = self.question
        if q.kind == "single":
            self.selector.value = None
        elif q.kind == "multi":
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
    """``python -m ftcourse.classroom.quiz [FILE ...]``: validate quiz files (default: all of them)."""
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
