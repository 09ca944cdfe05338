"""Lesson 01's diagnosis section as a quiz: match each failing case with its cause.

The cases and their causes are model-side facts (:mod:`ftcourse.diagnosis`); this module only turns
them into a ``match`` question of :mod:`ftcourse.classroom.quiz` and shows it, with every answer
explained after **Check** and recorded in the progress file like any quiz question.
"""

from __future__ import annotations

from ..diagnosis import CAUSES, _clip, failure_cases
from .quiz import MatchItem, Question, QuestionView


def diagnosis_question(cases=None) -> Question:
    """The cases as a ``match`` question (items: the cases, choices: the causes)."""
    cases = list(cases or failure_cases())
    items = tuple(MatchItem(f"{c.title}: \u201c{_clip(c.request, 120)}\u201d", c.cause, c.explain) for c in cases)
    return Question(id="q01-diagnosis-cases", kind="match",
                    prompt="Which cause explains each failure? (The answers are in the table above.)",
                    source="lesson 01, section 4 (seed 000, Common mistake)", choices=CAUSES, items=items)


def show_diagnosis_quiz(record: bool = True):
    """Match each failing case with its cause; Check shows why, case by case."""
    return QuestionView(diagnosis_question(), lesson="01", record=record).box


__all__ = ["diagnosis_question", "show_diagnosis_quiz"]
