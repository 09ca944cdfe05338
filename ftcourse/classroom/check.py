"""Checks for grader cells: each failure says what was expected and gives a hint.

A grader cell in an exercise notebook calls these instead of a bare ``assert``::

    from ftcourse.classroom.check import expect_function
    expect_function(label_accuracy, [((["a", "b"], ["a", "a"]), 0.5)],
                    what="label_accuracy", hint="Count matching pairs, divide by len(gold).")

A failed check raises :class:`CheckFailed` (an ``AssertionError``). Its message is the whole
feedback: IPython shows it without a traceback, and workshop grading copies it into the learner's
feedback file. A passed check prints one line starting with a tick.

When the expected value is plain data (numbers, strings, ``None``, and lists, tuples, sets and
dicts of them), the learner's value is first turned into plain data of its own and then compared.
So an object whose ``__eq__`` says "equal" to everything does not pass, while a NumPy integer or
a subclass of ``list`` with the right contents does.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

_MAX_REPR = 300
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, tuple, list, set, frozenset, dict)


class CheckFailed(AssertionError):
    """A grader check did not pass. The message says what was expected, what came out, and a hint."""

    def _render_traceback_(self) -> list[str]:  # IPython hook: show the message, not the stack
        return [f"\x1b[31mCheckFailed\x1b[0m: {self}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 5] + " ...)"


def _fail(what: str, expected: str, got: str | None, hint: str | None) -> CheckFailed:
    lines = [f"{what}: expected {expected}"]
    if got is not None:
        lines.append(f"  got: {got}")
    if hint:
        lines.append(f"  hint: {hint}")
    return CheckFailed("\n".join(lines))


def _is_plain(value: Any) -> bool:
    if type(value) not in _PLAIN_TYPES:
        return False
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    if isinstance(value, tuple | list | set | frozenset):
        return all(_is_plain(v) for v in value)
    return True


class _NotPlain(Exception):
    pass


def _as_plain(value: Any) -> Any:
    """``value`` rebuilt from plain types only (a NumPy int becomes an int); _NotPlain if it cannot be."""
    if value is None or type(value) is bool:
        return value
    if isinstance(value, numbers.Number):
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        return complex(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, dict):
        return {_as_plain(k): _as_plain(v) for k, v in dict.items(value)}
    for kind in (tuple, list, frozenset, set):
        if isinstance(value, kind):
            return kind(_as_plain(v) for v in kind.__iter__(value))
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    raise _NotPlain


def _same(actual: Any, expected: Any) -> bool:
    """``actual == expected``, decided by plain data when ``expected`` is plain data."""
    if _is_plain(expected):
        try:
            actual = _as_plain(actual)
        except (_NotPlain, TypeError, ValueError, OverflowError):
            return False
        if isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
            return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
        return type(expected) is type(actual) and expected == actual or (
            isinstance(expected, int | float) and isinstance(actual, int | float) and expected == actual)
    try:
        return bool(actual == expected)
    except Exception:  # an array compared with a list, say
        return False


def _passed(what: str) -> None:
    print(f"\u2713 {what}")


def expect_equal(actual: Any, expected: Any, what: str = "value", hint: str | None = None) -> None:
    """Pass when ``actual == expected``."""
    if not _same(actual, expected):
        raise _fail(what, _short(expected), _short(actual), hint)
    _passed(what)


def expect_true(condition: Any, what: str = "condition", hint: str | None = None) -> None:
    """Pass when ``condition`` is true. ``what`` states the claim, e.g. "the prompt names the labels"."""
    if not condition:
        raise _fail(what, "this to hold", None, hint)
    _passed(what)


def _number(value: Any, what: str, hint: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(what, "a number", f"{_short(value)} ({type(value).__name__})", hint)
    return float(value)


def expect_close(actual: Any, expected: float, tol: float = 1e-6, what: str = "value",
                 hint: str | None = None) -> None:
    """Pass when ``actual`` is a number within ``tol`` of ``expected``."""
    x = _number(actual, what, hint)
    if math.isnan(x) or abs(x - expected) > tol:
        raise _fail(what, f"{expected!r} (within {tol:g})", _short(actual), hint)
    _passed(what)


def expect_at_least(actual: Any, minimum: float, what: str = "value", hint: str | None = None) -> None:
    """Pass when ``actual`` is a number ``>= minimum``."""
    x = _number(actual, what, hint)
    if math.isnan(x) or x < minimum:
        raise _fail(what, f"at least {minimum!r}", _short(actual), hint)
    _passed(what)


def expect_function(fn: Callable, cases: Iterable[tuple[tuple, Any]], what: str | None = None,
                    hint: str | None = None) -> None:
    """Call ``fn(*args)`` for each ``(args, expected)`` case; pass when every result equals ``expected``.

    A float ``expected`` is compared with a relative tolerance of 1e-9; plain data is compared as
    plain data (see the module docstring). The first failing case is
    reported with its arguments. A function that still raises ``NotImplementedError`` is reported as
    not written yet.
    """
    name = what or getattr(fn, "__name__", "function")
    if not callable(fn):
        raise _fail(name, "a function", f"{_short(fn)} ({type(fn).__name__})", hint)
    cases = list(cases)
    if not cases:
        raise ValueError("expect_function needs at least one case")
    for args, expected in cases:
        if not isinstance(args, tuple):
            args = (args,)
        call = f"{name}({', '.join(_short(a) for a in args)})"
        try:
            actual = fn(*args)
        except NotImplementedError:
            raise _fail(name, "a working function", "NotImplementedError: it is not written yet",
                        "replace `raise NotImplementedError()` with your code, run that cell, "
                        "then run this one again") from None
        except Exception as exc:  # the learner's code crashed: say where, keep the cause
            raise _fail(call, _short(expected), f"it raised {type(exc).__name__}: {exc}", hint) from exc
        if not _same(actual, expected):
            raise _fail(call, _short(expected), _short(actual), hint)
    _passed(f"{name}: {len(cases)} case{'s' if len(cases) != 1 else ''}")
