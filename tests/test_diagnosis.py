"""The diagnosis cases of lesson 01: one per cause, graded by cause, shown as a match question."""

import pytest

from ftcourse.classroom.diagnosis_quiz import diagnosis_question
from ftcourse.diagnosis import (
    CAUSES,
    failure_cases,
    failure_table,
    normalise_cause,
    run_failure_cases,
    score_diagnosis,
)


def test_one_case_per_cause_with_unique_ids():
    cases = failure_cases()
    assert sorted(c.cause for c in cases) == sorted(CAUSES)
    assert len({c.id for c in cases}) == len(cases)
    assert [c.cause for c in cases] != list(CAUSES)  # the order gives nothing away


def test_each_cause_maps_to_its_own_fix_and_only_none_changes_weights():
    rungs = {c.cause: c.recommendation().rung for c in failure_cases()}
    assert rungs == {"missing context": "rag", "missing tool": "tools", "ambiguous instruction": "clear_prompt",
                     "weak base capability": "stronger_model", "unstable desired behaviour": "define_behaviour"}
    assert not any(c.recommendation().changes_weights for c in failure_cases())


def test_case_checks_tell_right_from_wrong_answers():
    by_id = {c.id: c for c in failure_cases()}
    assert by_id["refund_ten_days"].is_right("Yes, within 14 days of purchase.")
    assert not by_id["refund_ten_days"].is_right("You have 140 days, or 30 days.")
    assert by_id["order_total"].is_right("The total is $410.")
    assert not by_id["order_total"].is_right("The total is $4,100.")
    assert by_id["vague_printer"].is_right('{"category": "hardware", "urgency": "normal"}')
    assert not by_id["vague_printer"].is_right("Try turning the printer off and on.")
    assert by_id["payout_arrived"].is_right("I can't see your payouts; please check with Tillwise support.")
    assert not by_id["payout_arrived"].is_right("Yes, it reached your bank yesterday.")
    assert by_id["payout_arrived"].is_right("I don't have access to your payouts, so I cannot check that.")
    assert not by_id["payout_arrived"].is_right(
        "We're currently in the process of processing your payout, but we're unable to confirm the exact amount.")
    assert not by_id["payout_arrived"].is_right("I can't see it, but it was sent yesterday.")
    assert not by_id["battery_urgency"].is_right('{"category": "hardware", "urgency": "normal"}')


def test_score_diagnosis():
    key = {c.id: c.cause for c in failure_cases()}
    assert score_diagnosis(key).all_right
    sloppy = {k: v.upper().replace(" ", "_") for k, v in key.items()}
    assert score_diagnosis(sloppy).all_right
    swapped = dict(key, refund_ten_days="missing tool", payout_arrived="missing context")
    s = score_diagnosis(swapped)
    assert (s.right, s.total) == (3, 5) and set(s.wrong) == {"refund_ten_days", "payout_arrived"}
    s = score_diagnosis({})
    assert s.right == 0 and all(v[0] == "(no answer)" for v in s.wrong.values())
    assert score_diagnosis({k: "the model is bad" for k in key}).right == 0


def test_normalise_cause():
    assert normalise_cause("Unstable behavior") == "unstable desired behaviour"
    assert normalise_cause("missing-context") == "missing context"


def test_match_question_grades_with_the_quiz_module():
    from ftcourse.classroom.quiz import grade

    q = diagnosis_question()
    right = [c.cause for c in failure_cases()]
    assert grade(q, right).correct
    assert not grade(q, list(reversed(right))).correct


def test_widget_builds():
    pytest.importorskip("ipywidgets")
    from ftcourse.classroom import show_diagnosis_quiz

    box = show_diagnosis_quiz(record=False)
    assert box.children


def test_run_and_table_with_a_fake_model(monkeypatch):
    import ftcourse.chat as chat

    def fake(model, tok, prompts, **kwargs):
        return ["The total is 410 dollars." for _ in prompts]

    monkeypatch.setattr(chat, "generate_batch", fake)
    results = run_failure_cases(None, None)
    assert [r.right for r in results] == [c.id == "order_total" for c in failure_cases()]
    rows = failure_table(results)
    assert len(rows) == 5 and "cause" not in rows[0]
    assert not any(c in str(rows) for c in CAUSES)  # the table does not give the answers away
