"""The decision tree of lesson 01, tested on the situations of the seed articles."""

import pytest

from ftcourse.decide import (
    MISSING,
    RUNGS,
    SCENARIOS,
    Recommendation,
    normalise_missing,
    recommend,
    scenario_table,
    show_decision_tree,
)

ALL_TRIED = dict(repeated=True, stable=True, tried_clear_prompt=True, tried_few_shot=True, has_eval=True)


# ------------------------------------------------------------------ the seed scenarios
def test_whole_handbook_goes_to_retrieval_not_weights():
    rec = recommend("facts")
    assert rec.rung == "rag"
    assert not rec.changes_weights


def test_whole_handbook_is_never_a_fine_tune_even_if_everything_else_says_yes():
    rec = recommend("facts", **ALL_TRIED)
    assert rec.rung == "rag"


def test_facts_that_change_daily_go_to_retrieval_and_say_why():
    rec = recommend("facts", facts_change_often=True, **ALL_TRIED)
    assert rec.rung == "rag"
    assert "change" in rec.reason


def test_live_account_balance_needs_a_tool():
    rec = recommend("actions")
    assert rec.rung == "tools"
    assert recommend("actions", **ALL_TRIED).rung == "tools"


def test_vague_prompt_needs_a_clearer_prompt():
    assert recommend("instructions").rung == "clear_prompt"


def test_clear_prompt_tried_then_few_shot():
    assert recommend("instructions", tried_clear_prompt=True).rung == "few_shot"


def test_instructions_exhausted_sends_back_to_diagnosis():
    assert recommend("instructions", tried_clear_prompt=True, tried_few_shot=True).rung == "diagnose"


def test_strict_json_shape_after_measured_prompt_rungs_is_a_fine_tune():
    rec = recommend("behaviour", **ALL_TRIED)
    assert rec.rung == "fine_tune"
    assert rec.changes_weights


def test_strict_json_shape_climbs_the_ladder_in_order():
    base = dict(repeated=True, stable=True, has_eval=True)
    assert recommend("behaviour", **base).rung == "clear_prompt"
    assert recommend("behaviour", tried_clear_prompt=True, **base).rung == "few_shot"
    assert recommend("behaviour", tried_clear_prompt=True, tried_few_shot=True, **base).rung == "fine_tune"


def test_no_eval_set_means_build_one_first():
    rec = recommend("behaviour", repeated=True, stable=True, tried_clear_prompt=True, tried_few_shot=True)
    assert rec.rung == "build_eval"


def test_unstable_behaviour_is_settled_before_training():
    rec = recommend("behaviour", **{**ALL_TRIED, "stable": False})
    assert rec.rung == "define_behaviour"


def test_one_off_behaviour_stays_in_the_prompt():
    assert recommend("behaviour", **{**ALL_TRIED, "repeated": False}).rung == "few_shot"
    assert recommend("behaviour", stable=True).rung == "clear_prompt"


def test_weak_base_capability_is_not_fixed_by_fine_tuning():
    rec = recommend("behaviour", **ALL_TRIED, works_in_context=False)
    assert rec.rung == "stronger_model"
    assert not rec.changes_weights


def test_undiagnosed_failure_is_not_a_reason_to_train():
    rec = recommend(None, **ALL_TRIED)
    assert rec.rung == "diagnose"
    assert "not a diagnosis" in rec.reason


# ------------------------------------------------------------------ properties of the function
@pytest.mark.parametrize("missing", ["instructions", "facts", "actions"])
def test_only_behaviour_ever_leads_to_weights(missing):
    for flags in [{}, ALL_TRIED, {**ALL_TRIED, "facts_change_often": True}]:
        assert not recommend(missing, **flags).changes_weights


def test_fine_tune_needs_every_condition():
    assert recommend("behaviour", **ALL_TRIED).rung == "fine_tune"
    for flag in ALL_TRIED:
        assert recommend("behaviour", **{**ALL_TRIED, flag: False}).rung != "fine_tune", flag


def test_every_result_is_a_known_rung_with_a_reason():
    import itertools

    flags = ["repeated", "stable", "facts_change_often", "tried_clear_prompt", "tried_few_shot", "has_eval",
             "works_in_context"]
    for missing in [*MISSING, None]:
        for values in itertools.product([False, True], repeat=len(flags)):
            rec = recommend(missing, **dict(zip(flags, values, strict=True)))
            assert isinstance(rec, Recommendation)
            assert rec.rung in RUNGS and len(rec.reason) > 40
            assert str(rec).startswith(rec.label)


def test_aliases_and_bad_input():
    assert normalise_missing("Behavior") == "behaviour"
    assert normalise_missing("knowledge") == "facts"
    assert normalise_missing("tool") == "actions"
    assert normalise_missing(None) is None
    with pytest.raises(ValueError, match="use one of"):
        recommend("vibes")


def test_scenarios_table():
    expected = {
        "whole_handbook": "rag", "daily_facts": "rag", "account_balance": "tools",
        "vague_prompt": "clear_prompt", "strict_json": "fine_tune", "shorter_prompt": "fine_tune",
        "json_untried": "clear_prompt", "no_eval": "build_eval", "unstable_rules": "define_behaviour",
        "weak_base": "stronger_model", "one_off": "clear_prompt",
    }
    assert {s.name: s.recommendation().rung for s in SCENARIOS} == expected
    rows = scenario_table()
    assert len(rows) == len(SCENARIOS)
    assert sum(r["changes weights"] == "yes" for r in rows) == 2


def test_widget_updates_with_the_answers():
    pytest.importorskip("ipywidgets")
    box = show_decision_tree()
    missing, *checks, answer = box.children
    assert "Diagnose" in answer.value
    missing.value = "actions"
    assert RUNGS["tools"] in answer.value
    missing.value = "behaviour"
    by_name = {c.description: c for c in checks}
    for c in checks:
        c.value = True
    assert RUNGS["fine_tune"] in answer.value
    next(c for d, c in by_name.items() if d.startswith("The team agrees")).value = False
    assert RUNGS["define_behaviour"] in answer.value
    # questions that do not apply to the chosen branch are hidden
    missing.value = "facts"
    shown = [c.description for c in checks if c.layout.display != "none"]
    assert shown == ["The facts change often"]


def test_checklist_needs_every_yes():
    from ftcourse.decide import CHECKLIST, checklist_verdict

    assert len(CHECKLIST) == 6 and "examples" in CHECKLIST[1] and "context" in CHECKLIST[1]
    assert checklist_verdict([True] * 6).startswith("6 yes out of 6")
    assert checklist_verdict([True, False, True, True, False, True]) == "Not yet: deal with questions 2, 5 first."
    assert checklist_verdict([True, True, True, False, True, True]) == "Not yet: deal with question 4 first."
    with pytest.raises(ValueError):
        checklist_verdict([True] * 4)
