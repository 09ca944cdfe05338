"""Checks for the graded exercise of lesson 05 (``exercises/05_decide.ipynb``): the decision on the city
library's inbox, and the record that defends it.

The grader cells measure for themselves (``capstone.climb`` on the task's eval cases, greedy decoding)
and hand the numbers to the checks here, so the cells stay short:

* :func:`decision_problems` (and :func:`check_decision_shape`, which fails on them): ``my_decision`` is
  ``{"rung": ..., "evidence": {rung: {"correct", "n"}}, "baseline": {"correct", "n"}}`` for the three
  rungs (checked before the model runs, so a missing answer fails at once);
* :func:`check_decision`: the evidence is the grader's own measurement (within one case a rung), and
  the rung is the one :func:`ftcourse.capstone.decide` draws from it;
* :func:`check_record`: the ``DecisionRecord`` is complete and says what ``my_decision`` says.

Each check goes through :mod:`ftcourse.classroom.check`, imported when it runs (a workshop grading
run swaps in a fresh copy of the checker), and each failure says what is wrong and how to fix it.
"""

from __future__ import annotations

import numbers
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

from ..capstone import RUNG_NAMES, RungReport, Task, decide
from ..record import DecisionRecord
from .exercise_data import shared_phrases

EXERCISE_RUNGS = ("vague", "clear", "few_shot")  # the rungs exercise 2 climbs, cheapest first
TOLERANCE = 1  # cases a rung's count may differ from the grader's run (numerics differ between machines)
MIN_WORDS = 8  # the monitoring signal and the retraining trigger: at least this many words each
COPIED = 0.8  # ... and at most this share of one's 4-word phrases in the other (a trigger may name its signal)
DECISION_KEYS = ("rung", "evidence", "baseline")
# other spellings of a rung in a record: the lesson 01 decision tree's keys and labels, plain words
_ALIASES = {"clear": ("clear_prompt", "clear prompt", "write a clearer prompt"),
            "few_shot": ("few shot", "few-shot", "add 2-3 few-shot examples", "few-shot examples")}
_NO_RUNG = ("none", "no rung")


# --------------------------------------------------------------------------- my_decision
def _count(entry) -> tuple[int, int] | None:
    """``(correct, n)`` of ``{"correct": int, "n": int}`` with ``0 <= correct <= n`` and ``n > 0``; else None."""
    if not isinstance(entry, Mapping) or set(entry) != {"correct", "n"}:
        return None
    correct, n = entry["correct"], entry["n"]
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (correct, n)):
        return None
    correct, n = int(correct), int(n)
    return (correct, n) if 0 <= correct <= n and n > 0 else None


def decision_problems(my_decision, rungs: Sequence[str] = EXERCISE_RUNGS) -> list[str]:
    """What is wrong with the shape of ``my_decision``, one sentence each (empty when it is right)."""
    if my_decision is None:
        return ["my_decision is still None: replace `raise NotImplementedError()` in the exercise 2 cell "
                "with your code, run that cell, then run this one again"]
    if not isinstance(my_decision, Mapping):
        return [f"my_decision must be a dict, not {type(my_decision).__name__}"]
    problems = []
    missing = [k for k in DECISION_KEYS if k not in my_decision]
    extra = sorted(str(k) for k in my_decision if k not in DECISION_KEYS)
    if missing:
        problems.append(f"my_decision lacks the key{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(k) for k in missing)}")
    if extra:
        problems.append(f"my_decision has keys the exercise does not ask for: {', '.join(extra)}")
    rung = my_decision.get("rung")
    if "rung" in my_decision and rung is not None and rung not in rungs:
        problems.append(f"my_decision['rung'] must be one of {', '.join(repr(r) for r in rungs)} (the keys of "
                        f"climb's result), or None when no rung meets the target; got {rung!r}")
    evidence = my_decision.get("evidence")
    if "evidence" in my_decision:
        if not isinstance(evidence, Mapping):
            problems.append(f"my_decision['evidence'] must be a dict {{rung: {{'correct': ..., 'n': ...}}}}, "
                            f"not {type(evidence).__name__}")
        elif set(evidence) != set(rungs):
            problems.append(f"my_decision['evidence'] needs exactly one entry for each rung you measured, "
                            f"keyed {', '.join(repr(r) for r in rungs)}; its keys are "
                            f"{', '.join(repr(k) for k in evidence) or 'none'}")
        else:
            for r in rungs:
                if _count(evidence[r]) is None:
                    problems.append(f"my_decision['evidence'][{r!r}] must be {{'correct': <int>, 'n': <int>}} "
                                    f"with 0 <= correct <= n and n > 0 (a RungReport's .correct and .n); "
                                    f"got {evidence[r]!r}")
    if "baseline" in my_decision and _count(my_decision.get("baseline")) is None:
        problems.append("my_decision['baseline'] must be {'correct': <int>, 'n': <int>}, the .correct and .n "
                        f"of constant_baseline(task); got {my_decision.get('baseline')!r}")
    return problems


def check_decision_shape(my_decision, rungs: Sequence[str] = EXERCISE_RUNGS) -> None:
    """Fail unless ``my_decision`` has the shape exercise 2 asks for (no model needed)."""
    from .check import expect_true

    problems = decision_problems(my_decision, rungs)
    expect_true(not problems, what="my_decision has the shape exercise 2 asks for",
                hint="; ".join(problems[:3]) + ("" if len(problems) <= 3 else f"; and {len(problems) - 3} more"))


def report_from_count(task: Task, rung: str, entry: Mapping) -> RungReport:
    """A stand-in ``RungReport`` that holds only the count ``{"correct": .., "n": ..}`` (for ``decide``)."""
    correct, n = _count(entry)
    return RungReport(task.name, rung, [""] * n, [True] * correct + [False] * (n - correct), 0.0, 0.0, 0.0)


def _fraction(entry) -> str:
    correct, n = _count(entry)
    return f"{correct}/{n}"


def _rung_text(rung: str | None) -> str:
    return "None (no rung meets the target)" if rung is None else repr(rung)


def check_decision(my_decision, task: Task, reports: Mapping[str, RungReport], baseline: RungReport,
                   tolerance: int = TOLERANCE) -> None:
    """Fail unless ``my_decision`` holds the grader's measurement and the rung that follows from it.

    ``reports`` is the grader's own ``climb`` over the rungs of ``my_decision["evidence"]``, ``baseline``
    its ``constant_baseline``. A rung's count may differ from the grader's by ``tolerance`` cases;
    the rung must be what ``decide`` draws from the grader's numbers or from the learner's (which
    can only differ when a count within the tolerance sits on the target's edge).
    """
    from .check import expect_equal, expect_true

    rungs = tuple(reports)
    if decision_problems(my_decision, rungs):
        check_decision_shape(my_decision, rungs)  # fails, and says why
    evidence = my_decision["evidence"]
    off = []
    for rung, r in reports.items():
        correct, n = _count(evidence[rung])
        if n != r.n or abs(correct - r.correct) > tolerance:
            off.append(f"{rung}: you wrote {correct}/{n}, the grader measured {r.correct}/{r.n}")
    measured = ", ".join(f"{rung} {r.correct}/{r.n}" for rung, r in reports.items())
    expect_true(not off, what=f"your evidence matches the grader's own run ({measured}; "
                              f"a difference of {tolerance} case a rung is allowed)",
                hint="; ".join(off) + ". Copy report.correct and report.n of each rung from climb(model, tok, "
                     f"task, rungs={rungs!r}): the task's eval cases (the default), greedy decoding, the "
                     "course's prompts unchanged")
    expect_equal(_fraction(my_decision["baseline"]), f"{baseline.correct}/{baseline.n}",
                 what="my_decision['baseline'] as correct/n",
                 hint=f"the constant baseline answers {baseline.extra.get('answer', 'one label')!r} every time (a "
                      "most common label of the task's examples): use constant_baseline(task).correct and .n")
    from_grader = decide(task, reports, baseline).rung
    from_yours = decide(task, {rung: report_from_count(task, rung, evidence[rung]) for rung in rungs},
                        report_from_count(task, "constant", my_decision["baseline"])).rung
    chosen = my_decision["rung"]
    rule = (f"walk the rungs cheapest first ({' -> '.join(rungs)}); skip a rung below the {task.target:.0%} target "
            "or whose 95 % interval overlaps the baseline's (report.rate.beats(baseline.rate) is False); the "
            "first one left is the decision, None if there is none. decide(task, reports, baseline).rung "
            "applies the same rule")
    if from_grader == from_yours:
        expect_equal(chosen, from_grader, what="my_decision['rung'], the rung that follows from the evidence",
                     hint=rule)
    else:  # a count within the tolerance sits on the target's edge: either reading is defensible
        expect_true(chosen in (from_grader, from_yours),
                    what=f"my_decision['rung'] is {_rung_text(from_grader)} (from the grader's counts) or "
                         f"{_rung_text(from_yours)} (from yours); you wrote {_rung_text(chosen)}", hint=rule)


# --------------------------------------------------------------------------- my_record
def _words(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(text).strip().lower())


def names_rung(text: str, rung: str | None) -> bool:
    """Whether a record's ``rung_chosen`` names ``rung`` (None: "none", "no rung ...")."""
    said = _words(text).strip(" .:;!")
    if rung is None:
        return said in _NO_RUNG or said.startswith(("no rung", "none "))
    names = {rung, RUNG_NAMES.get(rung, rung), *_ALIASES.get(rung, ())}
    return said in {_words(name) for name in names}


def states_count(text: str, correct: int, n: int) -> bool:
    """Whether ``text`` holds the count ``correct/n`` (also written ``correct / n`` or ``correct of n``)."""
    return re.search(rf"(?<!\d){correct}\s*(?:/|of)\s*{n}(?!\d)", str(text)) is not None


def _measured_for(measured: Mapping, rung: str) -> str | None:
    names = {_words(rung), _words(RUNG_NAMES.get(rung, rung)), *(_words(a) for a in _ALIASES.get(rung, ()))}
    for key, value in measured.items():
        if _words(key) in names:
            return str(value)
    return None


def check_record(my_record, my_decision, task: Task, folder: str | Path | None = None) -> Path:
    """Fail unless ``my_record`` is a complete ``DecisionRecord`` that says what ``my_decision`` says;
    then save it as markdown (atomically) under ``folder``, a new temporary folder by default, and return
    the file's path."""
    from .check import expect_equal, expect_true

    problems = decision_problems(my_decision)
    expect_true(not problems, what="my_decision from exercise 2 is filled in (the record is checked against it)",
                hint="; ".join(problems[:3]))
    expect_true(isinstance(my_record, DecisionRecord),
                what=f"my_record is a DecisionRecord (it is {type(my_record).__name__})",
                hint="my_record is still None: replace `raise NotImplementedError()` in the exercise 3 cell with "
                     "my_record = DecisionRecord(scenario=..., ...), run that cell, then this one"
                if my_record is None else "build it with DecisionRecord(...) from ftcourse.record")
    # a plain copy of the fields: the real validate() and save() run, whatever the object overrides
    record = DecisionRecord(**{f.name: getattr(my_record, f.name) for f in fields(DecisionRecord)})
    missing = record.validate()
    expect_true(not missing, what="my_record.validate() finds nothing missing",
                hint=" ".join(missing))
    expect_equal(str(record.missing).strip().lower(), task.missing, what="what the library task lacks (my_record.missing)",
                 hint="the four queues are known and the model only has to be told them: "
                      f"task.missing says {task.missing!r}")
    rung = my_decision["rung"]
    expect_true(names_rung(record.rung_chosen, rung),
                what=f"my_record.rung_chosen ({record.rung_chosen!r}) names the rung of my_decision, "
                     f"{_rung_text(rung)}",
                hint=f"write rung_chosen={rung!r}" if rung is not None else
                     "my_decision['rung'] is None: write rung_chosen='none' (or 'no rung meets the target')")
    wrong = []
    for name, entry in my_decision["evidence"].items():
        correct, n = _count(entry)
        value = _measured_for(record.measured if isinstance(record.measured, Mapping) else {}, name)
        if value is None:
            wrong.append(f"no entry for {name!r}")
        elif not states_count(value, correct, n):
            wrong.append(f"{name!r} is {value!r}, which does not hold {correct}/{n}")
    expect_true(not wrong, what="my_record.measured gives every rung's correct/n from my_decision['evidence']",
                hint="; ".join(wrong) + ". Key it by rung and write the rate with its count, e.g. "
                     "measured={'clear': str(Rate.of(correct, n))}, which reads like '75 % (36/48; 95 % CI 61-85 %)'")
    for name in ("monitoring_signal", "retraining_trigger"):
        text = str(getattr(record, name))
        expect_true(len(text.split()) >= MIN_WORDS,
                    what=f"my_record.{name} says enough ({len(text.split())} words, at least {MIN_WORDS})",
                    hint="monitoring_signal: what you will count in production, and how often; retraining_trigger: "
                         "what event or threshold makes you measure the ladder again")
    signal, trigger = str(record.monitoring_signal), str(record.retraining_trigger)
    copied = max(shared_phrases(signal, trigger), shared_phrases(trigger, signal))
    a, b = _words(signal).strip(" ."), _words(trigger).strip(" .")
    expect_true(a not in b and b not in a and copied < COPIED,
                what=f"the monitoring signal and the retraining trigger are two different statements "
                     f"(not one inside the other, {copied:.0%} of 4-word phrases shared, under {COPIED:.0%})",
                hint="the signal is what you watch (a rate, counted regularly); the trigger is when you act on "
                     "it (a threshold on that signal, a new base model, a change in the teams)")
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="decision_record_"))
    return record.save(folder / f"decision_record_{task.name}.md")


__all__ = ["EXERCISE_RUNGS", "TOLERANCE", "MIN_WORDS", "COPIED", "decision_problems", "check_decision_shape",
           "report_from_count", "check_decision", "names_rung", "states_count", "check_record"]
