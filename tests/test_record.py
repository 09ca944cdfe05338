"""The decision record of lesson 05: the dataclass, its markdown, its checks and its form."""

import os

import pytest

from ftcourse.decide import CHECKLIST
from ftcourse.record import (
    COST_KEYS,
    FIVE_QUESTIONS,
    MINIMUM_PROOF,
    DecisionRecord,
    DecisionRecordForm,
    is_fine_tune,
    show_decision_record,
)

MEASURED = {"clear prompt": "12 % (5-25 %), n=40", "few-shot": "41 % (28-55 %), n=40",
            "LoRA adapter": "88 % (74-95 %), n=40"}


def complete(**changes) -> DecisionRecord:
    rec = DecisionRecord(
        scenario="Every ticket must get one strict JSON object | with the house labels",
        missing="behaviour", target=0.9, measured=dict(MEASURED), gap="few-shot is 49 points short of 90 %",
        rung_chosen="fine_tune", evidence=["adapter beats few-shot beyond the noise", "no regression on 20 cases"],
        checklist=[(q, True, "measured in lesson 04") for q in CHECKLIST],
        minimum_proof=[(item, True) for item in MINIMUM_PROOF],
        costs={"data_cost": "two days of a support lead", "staleness": "labels change twice a year",
               "eval_burden": "40 held-out tickets, rerun on every retrain"},
        risks="labels drift\nsilently", monitoring_signal="share of valid JSON, daily",
        retraining_trigger="valid JSON below 85 % for a week, or a new label", author="Sam", date="2025-02-01")
    for k, v in changes.items():
        setattr(rec, k, v)
    return rec


def test_the_checklist_is_the_course_checklist_and_the_proof_starts_with_the_eval_set():
    assert FIVE_QUESTIONS is CHECKLIST
    assert "50-200" in MINIMUM_PROOF[0]
    assert any("best prompt" in item for item in MINIMUM_PROOF)
    assert set(COST_KEYS) == {"data_cost", "staleness", "eval_burden"}


def test_complete_record_validates_and_renders():
    rec = complete()
    assert rec.validate() == []
    md = rec.to_markdown()
    assert md.startswith("# Decision record: Every ticket")
    for heading in ("## Scenario", "## What is missing", "## Target", "## Measured", "## Gap", "## Decision",
                    "## Checklist", "## Minimum proof before training", "## Costs of owning it", "## Risks",
                    "## Monitoring and retraining"):
        assert f"\n{heading}\n" in md
    assert "90%" in md
    assert "| few-shot | 41 % (28-55 %), n=40 |" in md
    assert "**Fine-tune (e.g. a LoRA adapter)**" in md  # the rung key shown as its label
    assert f"| 1 | {CHECKLIST[0]} | yes | measured in lesson 04 |" in md
    assert f"{len(CHECKLIST)} yes out of {len(CHECKLIST)}" in md
    assert f"- [x] {MINIMUM_PROOF[0]}" in md
    assert "**Data cost:** two days" in md and "**Retraining trigger:** valid JSON" in md


def test_table_cells_are_escaped():
    rec = complete(measured={"a|b": "1\n2"})
    assert "| a\\|b | 1<br>2 |" in rec.to_markdown()


def test_validate_lists_what_is_missing_in_plain_words():
    problems = DecisionRecord(date="").validate()
    text = "\n".join(problems)
    for words in ("scenario", "what is missing", "target", "measured rates", "gap", "rung you chose",
                  "evidence", "checklist", "data cost", "staleness", "eval burden", "risks", "monitoring signal",
                  "retraining trigger", "author", "date"):
        assert words in text.lower(), words
    unanswered = complete(checklist=[(q, None, "") for q in CHECKLIST]).validate()
    assert unanswered == [f"Answer checklist questions {', '.join(str(i + 1) for i in range(len(CHECKLIST)))} "
                          "with yes or no."]
    assert "got 'weights'" in complete(missing="weights").validate()[0]


def test_fine_tune_needs_every_yes_and_the_whole_proof():
    rec = complete(checklist=[(q, i != 1, "") for i, q in enumerate(CHECKLIST)],
                   minimum_proof=[(item, i != 0) for i, item in enumerate(MINIMUM_PROOF)])
    problems = rec.validate()
    assert any("answered no to checklist question 2" in p for p in problems)
    assert any("minimum proof" in p and "item 1 " in p for p in problems)
    # another rung may be chosen with a no in the checklist
    assert complete(rung_chosen="few_shot", checklist=rec.checklist, minimum_proof=rec.minimum_proof).validate() == []
    assert is_fine_tune("Fine-tune") and is_fine_tune("LoRA adapter") and not is_fine_tune("few_shot")


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = complete().save(tmp_path / "sub" / "decision_record.md")
    assert path.read_text(encoding="utf-8") == complete().to_markdown()
    assert sorted(p.name for p in path.parent.iterdir()) == ["decision_record.md"]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        complete(author="Other").save(path)
    assert "Sam" in path.read_text(encoding="utf-8")  # the old record is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["decision_record.md"]


PREFILL = {"measured": MEASURED, "gap": "few-shot is 49 points short", "rung_chosen": "fine_tune",
           "evidence": ["adapter 88 % vs few-shot 41 %, intervals apart"], "target": 0.9,
           "scenario": "Strict JSON for every ticket"}


def fill(form: DecisionRecordForm) -> None:
    form.missing.value = "behaviour"
    for toggle, note in form.checklist:
        toggle.value = "Yes"
        note.value = "seen in lesson 04"
    for box in form.proof:
        box.value = True
    for key, box in form.costs.items():
        box.value = f"{key} text"
    form.risks.value = "labels drift"
    form.monitoring_signal.value = "valid JSON share"
    form.retraining_trigger.value = "below 85 % for a week"
    form.author.value = "Sam"


def test_form_refuses_to_write_an_incomplete_record(tmp_path):
    form = show_decision_record(PREFILL, path=tmp_path / "r.md", show=False)
    assert "decision-record" in form.widget._dom_classes
    assert "decision-record-write" in form.write_button._dom_classes
    assert "decision-record-output" in form.output._dom_classes
    assert "88 %" in form.summary.value and "Fine-tune" in form.summary.value  # read-only summary
    assert form.editable == {}
    form.write_button.click()
    assert form.written_path is None and not (tmp_path / "r.md").exists()
    assert form.message.startswith("Not written yet")
    assert "what is missing" in form.message.lower() and "author" in form.message
    assert "Still missing" in form.message_box.value


def test_form_writes_the_prefilled_record(tmp_path):
    form = DecisionRecordForm(PREFILL, path=tmp_path / "r.md")
    fill(form)
    rec = form.record()
    assert rec.target == 0.9 and rec.measured == MEASURED and rec.rung_chosen == "fine_tune"
    assert rec.checklist[0] == (CHECKLIST[0], True, "seen in lesson 04")
    form.write_button.click()
    assert form.written_path == tmp_path / "r.md"
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert text == form.markdown and "# Decision record: Strict JSON for every ticket" in text
    assert "Written to" in form.message_box.value


def test_form_without_prefill_takes_the_measurements_as_text(tmp_path):
    form = DecisionRecordForm(path=tmp_path / "r.md")
    assert set(form.editable) == {"measured", "gap", "rung_chosen", "evidence"}
    fill(form)
    form.scenario.value = "Labels for tickets"
    form.target.value = "90 % right labels"
    form.editable["measured"].value = "few-shot: 41 %, n=40\n- LoRA: 88 %, n=40\n"
    form.editable["gap"].value = "49 points"
    form.editable["rung_chosen"].value = "few_shot"
    form.editable["evidence"].value = "one\n\n- two"
    rec = form.record()
    assert rec.measured == {"few-shot": "41 %, n=40", "LoRA": "88 %, n=40"}
    assert rec.evidence == ["one", "two"] and rec.target == "90 % right labels"
    assert form.write() == tmp_path / "r.md"


def test_prefilled_checklist_and_unknown_keys():
    form = DecisionRecordForm({"checklist": [True] * (len(CHECKLIST) - 1) + [(CHECKLIST[-1], False, "low volume")]})
    assert [t.value for t, _n in form.checklist] == ["Yes"] * (len(CHECKLIST) - 1) + ["No"]
    assert form.checklist[-1][1].value == "low volume"
    with pytest.raises(ValueError, match="unknown prefill key"):
        DecisionRecordForm({"gaps": "x"})
    with pytest.raises(ValueError, match="one entry per checklist question"):
        DecisionRecordForm({"checklist": [True]})
