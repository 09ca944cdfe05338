"""The grader cells of exercises 01, 04 and 05, run without a model: each passes on its solution, fails on the
generated exercise, and fails on the shortcuts it exists to catch.

The cells are executed from the notebooks themselves. Where a grader runs the model
(``evaluate_tickets``, ``lora.train_lora``) a stand-in returns chosen answers, so what is tested is
the grader's logic; ``tests/test_exercises.py -m slow`` runs the real thing.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import nbformat
import pytest

from ftcourse import lora
from ftcourse.classroom import exercises as E
from ftcourse.classroom.exercise_data import (
    copied_from_course,
    format_problem_cases,
    format_problem_examples,
    label_mask_examples,
    unseen_failure_cases,
)
from ftcourse.datasets import TAXONOMY, load_tickets, ticket_json
from ftcourse.evals import check_ticket_format, report_for

ROOT = Path(__file__).resolve().parents[1]
SETUP_LOAD = "model, tok = load_model()"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from ftcourse.models import fetch_model

    return AutoTokenizer.from_pretrained(fetch_model(verbose=False))


def _cells(name: str, exercise: bool = False) -> dict[str, str]:
    nb = nbformat.read(ROOT / "solutions" / name, as_version=4)
    if exercise:
        nb = E.make_exercise(nb, name)
    return {cell.id: cell.source for cell in nb.cells}


def _namespace(cells: dict[str, str], setup_id: str, tok) -> dict:
    """The notebook's setup cell, run without loading the model."""
    setup = cells[setup_id]
    assert SETUP_LOAD in setup
    ns: dict = {}
    exec(setup.replace(SETUP_LOAD, ""), ns)  # noqa: S102 - our own notebook cell
    ns.update(model=None, tok=tok)
    return ns


def _run(ns: dict, *sources: str) -> None:
    for source in sources:
        exec(source, ns)  # noqa: S102 - our own notebook cells


# --------------------------------------------------------------------------- exercise data
def test_format_problem_reasons_agree_with_the_course_checker():
    cases = format_problem_cases()
    assert len(cases) >= 30
    examples = {answer for answer, _ in format_problem_examples()}
    assert len([a for (a,), _ in cases if a not in examples]) >= 25  # most are not shown in the exercise
    for (answer, ), reason in cases:
        assert reason in ("", "not a JSON object", "wrong keys", "unknown label")
        assert (reason == "") == check_ticket_format(answer).ok, answer


def test_unseen_cases_are_new_and_cover_every_cause():
    from ftcourse.diagnosis import CAUSES, failure_cases

    new, shown = unseen_failure_cases(), failure_cases()
    assert not {c.id for c in new} & {c.id for c in shown}
    assert not {c.request for c in new} & {c.request for c in shown}
    causes = [c.cause for c in new]
    assert set(causes) == set(CAUSES) and len(causes) > len(CAUSES)  # no answer by elimination
    assert len({c.id for c in new}) == len(new)


def test_label_mask_examples_have_earlier_turns_and_a_decoy(tok):
    examples = dict(label_mask_examples())
    assert sum(m["role"] == "assistant" for m in examples["a follow-up question"]) == 2
    decoy = examples["an answer that writes the word assistant on its own line"]
    assert "\nassistant\n" in decoy[-1]["content"]
    for _, messages in label_mask_examples():
        encoded = lora.encode_example(tok, messages)
        assert encoded["labels"][-1] == tok.convert_tokens_to_ids("<|im_end|>")


def test_own_words_measure():
    from ftcourse.prompts import ticket_prompt

    text = load_tickets("test")[0].text
    assert copied_from_course(lambda t: ticket_prompt(t, "clear"), text)["the clear prompt"] == 1.0
    assert copied_from_course(lambda t: ticket_prompt(t, "vague"), text)["the vague request"] == 1.0
    own = [{"role": "system", "content": "Label the Tillwise ticket as JSON with a category and an urgency."},
           {"role": "user", "content": text}]
    assert max(copied_from_course(lambda t: own[:1] + [{"role": "user", "content": t}], text).values()) < 0.3


# --------------------------------------------------------------------------- exercise 01
NB01 = "01_prompt_vs_weights.ipynb"


def test_01_label_accuracy_and_diagnosis_graders(tok):
    for exercise in (False, True):
        cells = _cells(NB01, exercise)
        ns = _namespace(cells, "1", tok)
        if not exercise:
            _run(ns, cells["3"], cells["5"], cells["12"], cells["13"])
            continue
        with pytest.raises(NotImplementedError):
            _run(ns, cells["3"], cells["4"])
        with pytest.raises(AssertionError, match="not written yet"):
            _run(ns, cells["5"])
        with pytest.raises(NotImplementedError):
            _run(ns, cells["12"])
        with pytest.raises(AssertionError, match="the case ids you answered"):
            _run(ns, cells["13"])


def test_01_diagnosis_grader_rejects_the_lessons_answers(tok):
    cells = _cells(NB01)
    ns = _namespace(cells, "1", tok)
    lesson_answers = {"vague_printer": "ambiguous instruction", "payout_arrived": "missing tool",
                      "battery_urgency": "unstable desired behaviour", "refund_ten_days": "missing context",
                      "order_total": "weak base capability"}
    ns["my_diagnosis"] = lesson_answers
    with pytest.raises(AssertionError, match="the case ids you answered"):
        _run(ns, cells["13"])
    _run(ns, cells["12"])
    ns["my_diagnosis"]["shop_plan"] = "missing context"
    with pytest.raises(AssertionError, match="5 of 6 right"):
        _run(ns, cells["13"])


def _fake_evaluate(answer_for):
    """A stand-in for evaluate_tickets: ``answer_for(index, ticket, rung, prompts)`` gives each answer."""
    def evaluate_tickets(model, tok, tickets, rung="bare", prompts=None, **_):
        tickets = list(tickets)
        outputs = [answer_for(i, t, rung, prompts) for i, t in enumerate(tickets)]
        return report_for(outputs, tickets, rung=None if prompts is not None else rung)
    return evaluate_tickets


def _reads_some(i, ticket, rung, prompts):
    """The vague rung writes prose; a custom prompt gets every other category right, the rest wrong."""
    if prompts is None:
        return "Sure, I can help with that ticket."
    others = [c for c in TAXONOMY["category"] if c != ticket.category]
    return ticket_json(ticket.category if i % 2 == 0 else others[i % len(others)], ticket.urgency)


def _one_label(i, ticket, rung, prompts):
    return "I am not sure." if prompts is None else ticket_json("payments", "low")


def _two_labels_no_reading(i, ticket, rung, prompts):
    return "No." if prompts is None else ticket_json("billing" if i == 0 else "payments", "low")


@pytest.mark.parametrize("behaviour, message", [
    (_reads_some, None),
    (_one_label, "different categories"),
    (_two_labels_no_reading, "above the majority baseline"),
])
def test_01_prompt_grader_needs_varied_answers_that_beat_the_baseline(tok, behaviour, message):
    cells = _cells(NB01)
    ns = _namespace(cells, "1", tok)
    _run(ns, cells["7"])
    ns["evaluate_tickets"] = _fake_evaluate(behaviour)
    if message is None:
        _run(ns, cells["9"])
    else:
        with pytest.raises(AssertionError, match=message):
            _run(ns, cells["9"])


def test_01_prompt_grader_wants_your_own_words(tok):
    from ftcourse.prompts import ticket_prompt

    cells = _cells(NB01)
    ns = _namespace(cells, "1", tok)
    ns["evaluate_tickets"] = _fake_evaluate(_reads_some)
    for copied in ("clear", "few_shot"):
        ns["my_prompt"] = lambda text, rung=copied: ticket_prompt(text, rung)
        with pytest.raises(AssertionError, match="in your own words"):
            _run(ns, cells["9"])
    exercise = _cells(NB01, exercise=True)
    with pytest.raises(NotImplementedError):
        _run(ns, exercise["7"], exercise["9"])


# --------------------------------------------------------------------------- exercise 04
NB04 = "04_lora_lab.ipynb"


def test_04_graders_pass_on_the_solution_and_fail_on_the_exercise(tok):
    cells = _cells(NB04)
    ns = _namespace(cells, "cell-01", tok)
    _run(ns, cells["cell-03"], cells["cell-04"], cells["cell-05"], cells["cell-06a"], cells["cell-07"],
         cells["cell-08"], cells["cell-09"], cells["cell-11"], cells["cell-12"])
    exercise = _cells(NB04, exercise=True)
    ns = _namespace(exercise, "cell-01", tok)
    for solution, grader in (("cell-03", "cell-05"), ("cell-07", "cell-09"), ("cell-11", "cell-12")):
        _run(ns, exercise[solution])  # defines the stub
        with pytest.raises((AssertionError, NotImplementedError)):
            _run(ns, exercise[grader])


def test_04_format_grader_catches_a_checker_that_misses_repeated_keys(tok):
    cells = _cells(NB04)
    ns = _namespace(cells, "cell-01", tok)
    _run(ns, "def format_problem(answer):\n"
             "    try:\n        d = json.loads(answer)\n    except Exception:\n        return 'not a JSON object'\n"
             "    if not isinstance(d, dict):\n        return 'not a JSON object'\n"
             "    if list(d) != ['category', 'urgency']:\n        return 'wrong keys'\n"
             "    ok = d['category'] in TAXONOMY['category'] and d['urgency'] in TAXONOMY['urgency']\n"
             "    return '' if ok else 'unknown label'\n")
    with pytest.raises(AssertionError, match="wrong keys"):
        _run(ns, cells["cell-05"])


def test_04_label_grader_catches_the_first_header_and_a_text_search(tok):
    cells = _cells(NB04)
    ns = _namespace(cells, "cell-01", tok)
    first = cells["cell-07"].replace("starts[-1]", "starts[0]")
    _run(ns, first)
    with pytest.raises(AssertionError, match="earlier assistant turns"):
        _run(ns, cells["cell-09"])
    no_special = cells["cell-07"].replace('tok("<|im_start|>assistant\\n"', 'tok("assistant\\n"')
    assert no_special != cells["cell-07"]
    _run(ns, no_special)
    with pytest.raises(AssertionError, match="assistant on its own line"):
        _run(ns, cells["cell-09"])


class _FakeRun:
    def __init__(self, settings):
        self.settings, self.model = settings, object()

    def __str__(self):
        return f"fake run: {self.settings.max_steps} steps of {self.settings.batch_size}"


def _fake_lora(seen: list):
    def train_lora(model, tok, train, settings=None, **kwargs):
        seen.append(settings)
        return _FakeRun(settings)
    return types.SimpleNamespace(LoraSettings=lora.LoraSettings, train_lora=train_lora)


@pytest.mark.parametrize("right_every, message", [(2, None), (5, "above the majority baseline")])
def test_04_training_grader_pins_the_batch_and_needs_labels_beyond_the_baseline(tok, right_every, message):
    cells = _cells(NB04)
    ns = _namespace(cells, "cell-01", tok)
    _run(ns, cells["cell-14"])
    ns["my_settings"].batch_size = 32  # what a CUDA machine would pick: the grader must override it
    seen: list = []
    ns["lora"] = _fake_lora(seen)

    def answer(i, ticket, rung, prompts):
        others = [c for c in TAXONOMY["category"] if c != ticket.category]
        return ticket_json(ticket.category if i % right_every == 0 else others[0], ticket.urgency)

    ns["evaluate_tickets"] = _fake_evaluate(answer)
    if message is None:
        _run(ns, cells["cell-15"])
    else:
        with pytest.raises(AssertionError, match=message):
            _run(ns, cells["cell-15"])
    (settings,) = seen
    assert (settings.batch_size, settings.seed, settings.target) == (4, 0, None)
    assert settings.max_steps <= 40


def test_04_training_grader_refuses_a_long_budget(tok):
    cells = _cells(NB04)
    ns = _namespace(cells, "cell-01", tok)
    ns["my_settings"] = lora.LoraSettings(max_steps=200)
    with pytest.raises(AssertionError, match="1 to 40 steps"):
        _run(ns, cells["cell-15"])


# --------------------------------------------------------------------------- exercise 05
NB05 = "05_decide.ipynb"
SETUP05 = "cell-01"


def _library_climb(counts: dict, calls: list | None = None):
    """A stand-in for capstone.climb: each rung gets ``counts[rung]`` of the eval cases right."""
    from ftcourse.capstone import RungReport

    def climb(model, tok, task, rungs=None, cases=None, progress=True, **kwargs):
        n = len(task.split("eval"))
        if calls is not None:
            calls.append(tuple(rungs))
        return {rung: RungReport(task.name, rung, ["x"] * n, [True] * counts[rung] + [False] * (n - counts[rung]),
                                 30.0, 2.0, 0.01) for rung in rungs}
    return climb


def _ns05(cells: dict, counts: dict, calls: list | None = None) -> dict:
    ns = _namespace(cells, SETUP05, None)
    ns["climb"] = _library_climb(counts, calls)
    return ns


SOLVED05 = {"vague": 2, "clear": 30, "few_shot": 42}


@pytest.mark.parametrize("counts, rung", [
    (SOLVED05, "few_shot"),
    ({"vague": 40, "clear": 44, "few_shot": 45}, "vague"),   # the cheapest that meets it, not the best
    ({"vague": 1, "clear": 20, "few_shot": 37}, None),       # 37/48 = 77 %: none meets 80 %
])
def test_05_graders_pass_on_the_solution(counts, rung):
    cells = _cells(NB05)
    calls: list = []
    ns = _ns05(cells, counts, calls)
    _run(ns, *(cells[c] for c in ("cell-03", "cell-04", "cell-05", "cell-07", "cell-08", "cell-09", "cell-11",
                                  "cell-12")))
    assert ns["my_decision"]["rung"] == rung
    assert calls == [("vague", "clear", "few_shot")] * 2   # the learner's climb, then the grader's own
    assert ns["saved"].is_file() and "Monitoring and retraining" in ns["saved"].read_text()


def test_05_graders_fail_clearly_on_the_exercise():
    exercise = _cells(NB05, exercise=True)
    calls: list = []
    ns = _ns05(exercise, SOLVED05, calls)
    _run(ns, exercise["cell-03"], exercise["cell-07"])
    with pytest.raises(AssertionError, match="not written yet"):
        _run(ns, exercise["cell-05"])
    with pytest.raises(NotImplementedError):
        _run(ns, exercise["cell-08"])
    with pytest.raises(AssertionError, match="my_decision is still None"):
        _run(ns, exercise["cell-09"])
    assert calls == []   # the shape check fails before the model runs
    with pytest.raises(NotImplementedError):
        _run(ns, exercise["cell-11"])
    with pytest.raises(AssertionError, match="my_decision is still None"):
        _run(ns, exercise["cell-12"])
    # exercise 2 solved, exercise 3 not: the record grader names the record
    solved = _cells(NB05)
    _run(ns, solved["cell-03"], solved["cell-08"])
    with pytest.raises(NotImplementedError):
        _run(ns, exercise["cell-11"])
    with pytest.raises(AssertionError, match="my_record is still None"):
        _run(ns, exercise["cell-12"])


@pytest.mark.parametrize("wrong", [
    "def cheapest_meeting(accuracies, target):\n"          # the most accurate rung that meets it
    "    ok = {r: a for r, a in accuracies.items() if a >= target}\n"
    "    return max(ok, key=ok.get) if ok else None\n",
    "def cheapest_meeting(accuracies, target):\n"          # strictly above the target
    "    return next((r for r, a in accuracies.items() if a > target), None)\n",
    "def cheapest_meeting(accuracies, target):\n"          # a fixed ladder instead of the dict's order
    "    order = ['vague', 'clear', 'few_shot', 'retrieved', 'nearest', 'fine_tune']\n"
    "    return next((r for r in order if accuracies.get(r, -1) >= target), None)\n",
    "def cheapest_meeting(accuracies, target):\n"          # forgets the empty ladder
    "    return next(r for r, a in accuracies.items() if a >= target)\n",
])
def test_05_cheapest_rung_grader_catches_near_misses(wrong):
    cells = _cells(NB05)
    ns = _ns05(cells, SOLVED05)
    _run(ns, wrong)
    with pytest.raises(AssertionError, match="cheapest_meeting"):
        _run(ns, cells["cell-05"])


def _decision(evidence: dict, rung, baseline=(12, 48)) -> dict:
    return {"rung": rung, "evidence": {r: {"correct": c, "n": 48} for r, c in evidence.items()},
            "baseline": {"correct": baseline[0], "n": baseline[1]}}


@pytest.mark.parametrize("decision, message", [
    (_decision({"vague": 3, "clear": 29, "few_shot": 41}, "few_shot"), None),      # one case off: noise
    (_decision({"vague": 2, "clear": 30, "few_shot": 39}, "few_shot"), "the grader measured 42/48"),
    (_decision({"vague": 2, "clear": 30, "few_shot": 42}, "clear"), "follows from the evidence"),
    (_decision({"vague": 2, "clear": 30, "few_shot": 42}, None), "follows from the evidence"),
    (_decision({"vague": 2, "clear": 30, "few_shot": 42}, "few_shot", baseline=(13, 48)), "baseline"),
    (_decision({"vague": 2, "clear": 30}, "few_shot"), "exactly one entry for each rung"),
    (_decision({"vague": 2, "clear": 30, "few_shot": 42}, "few-shot (fixed examples)"), "must be one of"),
    ({"rung": "few_shot", "evidence": {"vague": {"correct": "2", "n": 48}, "clear": {"correct": 30, "n": 48},
                                       "few_shot": {"correct": 42, "n": 48}}, "baseline": {"correct": 12, "n": 48}},
     "must be {'correct'"),
    ({"rung": "few_shot", "evidence": {"vague": 2, "clear": 30, "few_shot": 42}}, "lacks the key 'baseline'"),
    ("few_shot", "must be a dict"),
])
def test_05_decision_grader(decision, message):
    cells = _cells(NB05)
    ns = _ns05(cells, SOLVED05)
    ns["my_decision"] = decision
    if message is None:
        _run(ns, cells["cell-09"])
    else:
        with pytest.raises(AssertionError, match=re.escape(message)):
            _run(ns, cells["cell-09"])


def test_05_decision_grader_accepts_either_side_of_a_count_on_the_edge():
    cells = _cells(NB05)
    ns = _ns05(cells, {"vague": 2, "clear": 38, "few_shot": 42})   # clear 38/48 = 79 %, just below 80 %
    for written, rung in ((38, "few_shot"), (39, "clear"), (39, "few_shot")):
        ns["my_decision"] = _decision({"vague": 2, "clear": written, "few_shot": 42}, rung)
        _run(ns, cells["cell-09"])
    ns["my_decision"] = _decision({"vague": 2, "clear": 38, "few_shot": 42}, "clear")
    with pytest.raises(AssertionError, match="follows from the evidence"):
        _run(ns, cells["cell-09"])


def _solved05_namespace() -> tuple[dict, dict]:
    cells = _cells(NB05)
    ns = _ns05(cells, SOLVED05)
    _run(ns, cells["cell-03"], cells["cell-08"], cells["cell-11"])
    return cells, ns


@pytest.mark.parametrize("change, message", [
    ({"retraining_trigger": "__signal__"}, "two different statements"),
    ({"retraining_trigger": "__signal__ Act on it."}, "two different statements"),
    ({"retraining_trigger": "The share of messages that staff move by hand to another team's queue, counted every "
                            "week for each queue."}, "two different statements"),
    ({"monitoring_signal": "Misrouted messages, weekly."}, "monitoring_signal says enough"),
    ({"rung_chosen": "clear"}, "names the rung of my_decision"),
    ({"measured": {"vague": "4% (2/48)", "clear": "62% (30/48)", "few_shot": "88% (2/48)"}}, "does not hold 42/48"),
    ({"measured": {"vague": "4% (2/48)", "clear": "62% (30/48)"}}, "no entry for 'few_shot'"),
    ({"risks": ""}, "Write the risks"),
    ({"missing": "behaviour"}, "what the library task lacks"),
])
def test_05_record_grader_catches(change, message):
    import dataclasses

    cells, ns = _solved05_namespace()
    if "__signal__" in change.get("retraining_trigger", ""):
        change = {"retraining_trigger": change["retraining_trigger"].replace("__signal__", ns["my_record"].monitoring_signal)}
    ns["my_record"] = dataclasses.replace(ns["my_record"], **change)
    with pytest.raises(AssertionError, match=re.escape(message)):
        _run(ns, cells["cell-12"])


def test_05_record_grader_reads_the_fields_not_the_methods():
    cells, ns = _solved05_namespace()
    _run(ns, "class Lenient(DecisionRecord):\n    def validate(self):\n        return []\n")
    ns["my_record"] = ns["Lenient"](**{**vars(ns["my_record"]), "author": ""})
    with pytest.raises(AssertionError, match="Write the author"):
        _run(ns, cells["cell-12"])


@pytest.mark.parametrize("rung_chosen, measured_key", [
    ("Few-shot (fixed examples)", "few-shot (fixed examples)"),
    ("few shot", "Few_Shot"),
    ("few_shot", "few_shot"),
])
def test_05_record_grader_accepts_other_spellings_of_a_rung(rung_chosen, measured_key):
    import dataclasses

    cells, ns = _solved05_namespace()
    measured = dict(ns["my_record"].measured)
    measured[measured_key] = measured.pop("few_shot").replace("42/48", "42 of 48")
    ns["my_record"] = dataclasses.replace(ns["my_record"], rung_chosen=rung_chosen, measured=measured)
    _run(ns, cells["cell-12"])


def test_05_record_helpers():
    from ftcourse.classroom.capstone_exercise import names_rung, states_count

    assert states_count("88% (42/48; 95 % CI 75%-94%)", 42, 48)
    assert states_count("42 / 48", 42, 48) and states_count("42 of 48", 42, 48)
    assert not states_count("142/48", 42, 48) and not states_count("42/480", 42, 48)
    assert names_rung("none", None) and names_rung("No rung meets the target.", None)
    assert not names_rung("few_shot", None) and not names_rung("none", "clear")
    assert names_rung("Clear prompt", "clear") and names_rung("clear_prompt", "clear")
    assert not names_rung("clear", "few_shot")


def test_05_record_grader_lets_a_trigger_name_its_signal():
    import dataclasses

    cells, ns = _solved05_namespace()
    trigger = ("Measure the ladder again when the share of messages that staff move by hand to another team's "
               "queue stays above 20 % for two weeks.")
    ns["my_record"] = dataclasses.replace(ns["my_record"], retraining_trigger=trigger)
    _run(ns, cells["cell-12"])
