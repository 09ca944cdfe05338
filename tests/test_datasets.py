"""ftcourse.datasets and ftcourse.prompts: the files load, and the ticket data is clean."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ftcourse import datasets, prompts
from ftcourse.datasets import SPLITS, TAXONOMY, load_tickets, ticket_json
from ftcourse.errors import CourseError


@pytest.fixture(scope="module")
def splits():
    return {s: load_tickets(s) for s in SPLITS}


def test_split_sizes(splits):
    sizes = {s: len(t) for s, t in splits.items()}
    assert 240 <= sizes["train"] <= 300
    assert sizes["val"] >= 25
    assert sizes["test"] >= 50
    holdout = (sizes["val"] + sizes["test"]) / sum(sizes.values())
    assert 0.10 <= holdout <= 0.30


def test_every_ticket_is_well_formed(splits):
    for split, tickets in splits.items():
        for t in tickets:
            assert t.category in TAXONOMY["category"], (split, t.id)
            assert t.urgency in TAXONOMY["urgency"], (split, t.id)
            roles = [m["role"] for m in t.messages]
            assert roles == ["system", "user", "assistant"], (split, t.id)
            assert t.messages[0]["content"] == prompts.TRIAGE_SYSTEM
            assert t.messages[1]["content"] == t.text and len(t.text) >= 10
            # the assistant turn is exactly the canonical JSON of the ticket's labels
            assert t.messages[2]["content"] == t.expected == ticket_json(t.category, t.urgency)
            assert json.loads(t.expected) == {"category": t.category, "urgency": t.urgency}


def test_ids_unique_and_no_ticket_in_two_splits(splits):
    ids = [t.id for ts in splits.values() for t in ts]
    assert len(ids) == len(set(ids))
    norm = {s: {" ".join(t.text.lower().split()) for t in ts} for s, ts in splits.items()}
    for s in SPLITS:
        assert len(norm[s]) == len(splits[s]), f"duplicate ticket text inside {s}"
    assert not norm["train"] & norm["test"]
    assert not norm["train"] & norm["val"]
    assert not norm["val"] & norm["test"]


def test_every_split_covers_every_label(splits):
    for split, tickets in splits.items():
        assert set(t.category for t in tickets) == set(TAXONOMY["category"]), split
        assert set(t.urgency for t in tickets) == set(TAXONOMY["urgency"]), split


def test_labels_are_balanced_enough(splits):
    everything = [t for ts in splits.values() for t in ts]
    cats = Counter(t.category for t in everything)
    assert max(cats.values()) <= 1.3 * min(cats.values())
    urg = Counter(t.urgency for t in everything)
    assert min(urg.values()) >= 0.1 * len(everything)
    # the test split keeps the overall mix (stratified)
    test_cats = Counter(t.category for t in splits["test"])
    assert min(test_cats.values()) >= 6


def test_house_rule_is_consistent(splits):
    """How-to questions and feature requests are never urgent: nothing is broken."""
    for tickets in splits.values():
        for t in tickets:
            if t.category in ("how_to", "feature_request"):
                assert t.urgency == "low", t.id


def test_format_derailing_tickets_are_included(splits):
    markers = ("ignore", "poem", "haiku", "limerick", "don't reply", "do not output", "forget", "instead")
    for split, tickets in splits.items():
        derail = [t for t in tickets if any(m in t.text.lower() for m in markers)]
        assert len(derail) >= 2, split
        assert all(t.messages[2]["content"] == t.expected for t in derail)


def test_load_errors_are_helpful():
    with pytest.raises(CourseError, match="train"):
        load_tickets("dev")
    with pytest.raises(CourseError, match="Available"):
        datasets.load_jsonl("no_such_file")


def test_write_and_read_jsonl(tmp_path):
    rows = [{"id": 1, "text": "crème brûlée"}, {"id": 2, "text": "ok"}]
    path = datasets.write_jsonl(rows, tmp_path / "x.jsonl")
    assert datasets.load_jsonl(path) == rows


# --------------------------------------------------------------------------- prompts
def test_prompt_rungs():
    text = "Our reader is dead and we can't take cards."
    for rung in prompts.RUNGS:
        msgs = prompts.ticket_prompt(text, rung)
        assert msgs[-1] == {"role": "user", "content": msgs[-1]["content"]} and text in msgs[-1]["content"]
    assert prompts.ticket_prompt(text, "bare") == [{"role": "system", "content": prompts.TRIAGE_SYSTEM},
                                                    {"role": "user", "content": text}]
    clear = prompts.ticket_prompt(text, "clear")[0]["content"]
    for label in TAXONOMY["category"] + TAXONOMY["urgency"]:
        assert label in clear
    assert '{"category": "<category>", "urgency": "<urgency>"}' in clear
    few = prompts.ticket_prompt(text, "few_shot")
    assert len(few) == 2 + 2 * len(prompts.FEW_SHOT)
    with pytest.raises(CourseError):
        prompts.ticket_prompt(text, "medium")


def test_few_shot_examples_come_from_train_only(splits):
    train = {t.text: t for t in splits["train"]}
    held_out = {t.text for s in ("val", "test") for t in splits[s]}
    for ex in prompts.FEW_SHOT:
        assert ex["ticket"] in train and ex["ticket"] not in held_out
        assert ex["answer"] == train[ex["ticket"]].expected
    assert len({json.loads(ex["answer"])["urgency"] for ex in prompts.FEW_SHOT}) >= 3


# --------------------------------------------------------------------------- general chat
def test_general_mix_and_probe():
    mix, probe = datasets.load_general("mix"), datasets.load_general("probe")
    assert len(mix) >= 50 and len(probe) >= 25
    for row in mix:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"], row["id"]  # no Tillwise system line
        answer = row["messages"][1]["content"]
        assert 0 < len(answer) <= 400 and "{" not in answer, row["id"]
    for row in probe:
        assert [m["role"] for m in row["messages"]] == ["user"], row["id"]
    mix_q = {r["messages"][0]["content"] for r in mix}
    assert not mix_q & {r["messages"][0]["content"] for r in probe}  # the probe is held out
    ids = [r["id"] for r in mix + probe]
    assert len(ids) == len(set(ids))
    with pytest.raises(CourseError):
        datasets.load_general("all")


# --------------------------------------------------------------------------- facts
def test_fact_sheets():
    from ftcourse.evals import fact_is_correct

    v1, v2 = datasets.load_facts(1), datasets.load_facts(2)
    assert len(v1) >= 10 and [f.id for f in v1] == [f.id for f in v2]
    changed = datasets.changed_fact_ids()
    assert len(changed) >= 5 and len(changed) < len(v1)  # some facts change, some stay
    by1, by2 = datasets.facts_by_id(v1), datasets.facts_by_id(v2)
    for f in v1 + v2:
        assert f.keywords and f.topic and f.note
        assert fact_is_correct(f.note, f), f.id  # each note states its own answer
    for fid in changed:
        # an answer from the old sheet is wrong on the new one, and the other way round
        assert not fact_is_correct(by1[fid].note, by2[fid]), fid
        assert not fact_is_correct(by2[fid].note, by1[fid]), fid
    # no note accidentally contains another fact's answer (the grader would be fooled)
    for f in v1:
        for other in v1:
            if other.id != f.id:
                assert not fact_is_correct(f.note, other), (f.id, other.id)
    with pytest.raises(CourseError):
        datasets.load_facts(3)


def test_fact_questions_and_training_data():
    facts = {f.id for f in datasets.load_facts(1)}
    questions = datasets.load_fact_questions()
    kinds = Counter(q.kind for q in questions)
    assert kinds["trained"] == len(facts) and kinds["paraphrase"] >= len(facts) and kinds["untaught"] >= 5
    assert datasets.load_fact_questions("untaught") == [q for q in questions if q.kind == "untaught"]
    for q in questions:
        assert (q.fact_id in facts) if q.kind != "untaught" else q.fact_id is None
    training = datasets.load_fact_training()
    trained_users = {r["messages"][0]["content"] for r in training}
    for q in questions:
        if q.kind == "trained":
            assert q.question in trained_users, q.id  # exact wording of the tuning data
        else:
            assert q.question not in trained_users, q.id  # paraphrases are never trained on
    notes = {f.id: f.note for f in datasets.load_facts(1)}
    for r in training:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["messages"][1]["content"] == notes[r["fact_id"]]  # teaches the v1 sheet
    assert Counter(r["fact_id"] for r in training).most_common()[-1][1] >= 3
    with pytest.raises(CourseError):
        datasets.load_fact_questions("other")


def test_no_near_duplicates_across_splits(splits):
    """Held-out tickets are not light rewrites of training tickets (word overlap stays low)."""
    from ftcourse.rag import keyword_tokens

    train = [set(keyword_tokens(t.text)) for t in splits["train"]]
    for t in splits["val"] + splits["test"]:
        words = set(keyword_tokens(t.text))
        overlap = max(len(words & other) / len(words | other) for other in train)
        assert overlap < 0.6, t.id
