"""Errors the course raises on purpose.

A ``CourseError`` carries a message that says what went wrong *and what to run to fix it*.
In a notebook, IPython shows only that message (no traceback) thanks to ``_render_traceback_``;
on the command line, ``python -m ftcourse`` prints it and exits with status 1.
"""

from __future__ import annotations


class CourseError(RuntimeError):
    """An error whose message is meant for the learner, with the fix in it."""

    def _render_traceback_(self) -> list[str]:  # IPython hook: show the message, not a stack
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class ModelUnavailableError(CourseError):
    """The course model is not in the cache and could not be fetched."""


class CorruptCacheError(CourseError):
    """A file of the cached model does not match its manifest."""
