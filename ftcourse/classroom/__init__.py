"""The classroom: what turns the lessons into a course, as opposed to what they teach about models.

Quick checks (``quiz``, with the quiz files read by ``quiz_files``), the learner's record (``progress``,
and ``measurements`` that one lesson leaves for the next), the environment check of lesson 00
(``envcheck``), and the graded exercises: the notebook cell conventions (``cell_markers``), the
generator of ``exercises/`` from ``solutions/`` (``exercises``), the checks grader cells call
(``check``), cases the graders use (``exercise_data``, ``capstone_exercise``), workshop grading
(``grading``, with ``tamper`` and ``guard`` keeping it honest), and nbgrader's cell metadata derived from
the course's own markers (``nbgrader_cells``).

The model side of the package (``ftcourse.models``, ``chat``, ``evals``, ``lora`` ...) never imports
from here; the classroom builds on it. A lesson imports the widgets it shows from here::

    from ftcourse.classroom import show_quiz
    show_quiz("01")

They are loaded on first use, so ``python -m ftcourse.classroom.quiz`` and the grading kernels, which
load ``check`` alone, do not pay for the widgets.
"""

from __future__ import annotations

import importlib

# public name -> the classroom module that defines it
_EXPORTS = {
    "show_quiz": "quiz",
    "show_progress": "progress",
    "show_diagnosis_quiz": "diagnosis_quiz",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
