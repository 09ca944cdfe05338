"""The capstone scenarios of lesson 05 (ftcourse/data/capstone/): shapes, sizes, balance, no duplicates."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter

import pytest

from ftcourse.datasets import DATA_DIR, Fact, load_jsonl
from ftcourse.evals import fact_is_correct

CAPSTONE = DATA_DIR / "capstone"
SCENARIOS = ["reviews", "hr_policy", "bookings", "clauses", "library"]
MISSING = {"instructions", "facts", "actions", "behaviour"}
TASK_KEYS = {
    "name": str, "title": str, "domain": str, "situation": str, "missing": str, "target": float,
    "target_why": str, "volume_per_day": int, "prompts": dict,
}
# scenario -> (missing, target, volume, labels, {split: {label: count}})
SPEC = {
    "reviews": ("instructions", 0.80, 3000, ["positive", "negative"],
                {"eval": {"positive": 26, "negative": 26}, "pool": {"positive": 6, "negative": 6}}),
    "hr_policy": ("facts", 0.75, 400, None, {"eval": None}),
    "bookings": ("actions", 0.85, 1500, ["check", "change", "cancel"],
                 {"eval": {"check": 14, "change": 14, "cancel": 14}, "pool": {"check": 2, "change": 2, "cancel": 2}}),
    "clauses": ("behaviour", 0.80, 60000, ["PAY", "TERM", "CONF", "LIAB", "IPR"],
                {"train": dict.fromkeys(["PAY", "TERM", "CONF", "LIAB", "IPR"], 22),
                 "eval": dict.fromkeys(["PAY", "TERM", "CONF", "LIAB", "IPR"], 12),
                 "unlabelled": dict.fromkeys(["PAY", "TERM", "CONF", "LIAB", "IPR"], 18)}),
    "library": ("instructions", 0.80, 900, ["renewal", "hold", "lost_card", "event"],
                {"eval": dict.fromkeys(["renewal", "hold", "lost_card", "event"], 12),
                 "pool": dict.fromkeys(["renewal", "hold", "lost_card", "event"], 6)}),
}
CASE_KEYS = {
    "reviews": {"id", "input", "label", "split"},
    "hr_policy": {"id", "input", "note_id", "answer_v1", "answer_v2", "split"},
    "bookings": {"id", "input", "label", "ref", "new_arrival", "split"},
    "clauses": {"id", "input", "label", "split", "gold_known"},
    "library": {"id", "input", "label", "split"},
}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def task(name: str) -> dict:
    return json.loads((CAPSTONE / name / "task.json").read_text(encoding="utf-8"))


def cases(name: str) -> list[dict]:
    return load_jsonl(CAPSTONE / name / "cases.jsonl")


@pytest.mark.parametrize("name", SCENARIOS)
def test_task_json_has_the_keys_and_types(name):
    t = task(name)
    missing, target, volume, labels, _ = SPEC[name]
    for key, kind in TASK_KEYS.items():
        assert isinstance(t.get(key), kind), (name, key)
    assert "labels" in t and (t["labels"] is None or isinstance(t["labels"], list))
    assert t["name"] == name
    assert t["missing"] in MISSING and t["missing"] == missing
    assert t["target"] == target and 0 < t["target"] < 1
    assert t["volume_per_day"] == volume
    assert t["labels"] == labels
    assert {"vague", "clear"} <= set(t["prompts"]) <= {"vague", "clear", "wordy", "rag"}
    vague, clear = t["prompts"]["vague"], t["prompts"]["clear"]
    assert "\n" not in vague and len(vague) < len(clear)
    assert any(w in clear.lower() for w in ("only", "one word", "one short sentence"))  # it says what to reply
    for label in labels or []:
        assert label in clear, (name, label)  # the clear prompt names every allowed answer
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", t["situation"].strip()) if s]
    assert 2 <= len(sentences) <= 3, name
    assert "tillwise" not in json.dumps(t).lower()


@pytest.mark.parametrize("name", SCENARIOS)
def test_cases_shape_sizes_and_balance(name):
    rows = cases(name)
    _, _, _, labels, splits = SPEC[name]
    for r in rows:
        assert set(r) == CASE_KEYS[name], (name, r.get("id"))
        assert isinstance(r["input"], str) and len(r["input"].strip()) >= 8, r["id"]
        assert r["split"] in splits, r["id"]
        if labels is not None:
            assert r["label"] in labels, r["id"]
    by_split = Counter(r["split"] for r in rows)
    for split, want in splits.items():
        if want is not None:
            got = Counter(r["label"] for r in rows if r["split"] == split)
            assert dict(got) == want, (name, split)
    assert set(by_split) == set(splits)


@pytest.mark.parametrize("name", SCENARIOS)
def test_ids_unique_and_no_duplicate_inputs(name):
    rows = cases(name)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    texts = Counter(norm(r["input"]) for r in rows)
    assert [t for t, n in texts.items() if n > 1] == []
    assert all("tillwise" not in t for t in texts)


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_near_duplicate_inputs(name):
    """No two inputs share most of their words (booking references aside)."""
    words = [(r["id"], set(re.findall(r"[a-z']+", re.sub(r"gh-\d+", "", r["input"].lower()))))
             for r in cases(name)]
    for i, (id_a, a) in enumerate(words):
        for id_b, b in words[i + 1:]:
            assert len(a & b) / len(a | b) < 0.6, (name, id_a, id_b)


def test_split_totals():
    totals = {name: Counter(r["split"] for r in cases(name)) for name in SCENARIOS}
    assert totals["reviews"] == {"eval": 52, "pool": 12}
    assert totals["hr_policy"] == {"eval": 40}
    assert totals["bookings"] == {"eval": 42, "pool": 6}
    assert totals["clauses"] == {"train": 110, "eval": 60, "unlabelled": 90}
    assert totals["library"] == {"eval": 48, "pool": 24}


# --------------------------------------------------------------------------- clauses
def test_clause_definitions_and_gold_known():
    t = task("clauses")
    assert set(t["definitions"]) == set(t["labels"])
    assert all(isinstance(d, str) and d and "\n" not in d for d in t["definitions"].values())
    for r in cases("clauses"):
        assert r["gold_known"] is (r["split"] != "unlabelled"), r["id"]


# --------------------------------------------------------------------------- hr policy
def notes(version: int) -> dict[str, dict]:
    rows = load_jsonl(CAPSTONE / "hr_policy" / f"notes_v{version}.jsonl")
    return {r["id"]: r for r in rows}


def found(keyword: str, text: str) -> bool:
    """Whole-token match, the way the course's fact grader reads an answer."""
    return fact_is_correct(text, Fact(id="", topic="", note="", answer="", keywords=[keyword]))


def test_hr_notes_same_ids_and_exactly_four_changed():
    v1, v2 = notes(1), notes(2)
    assert len(v1) == 12 and list(v1) == list(v2)
    for nid in v1:
        assert set(v1[nid]) == {"id", "title", "text"}
        assert set(v2[nid]) == {"id", "title", "text", "changed"}
        assert v1[nid]["title"] == v2[nid]["title"]
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", v1[nid]["text"]) if s]
        assert 2 <= len(sentences) <= 4, nid
        assert re.search(r"\d", v1[nid]["text"]), nid
        assert v2[nid]["changed"] is (v1[nid]["text"] != v2[nid]["text"]), nid
    assert sum(n["changed"] for n in v2.values()) == 4
    assert "Norbrook Engineering" in task("hr_policy")["situation"]


def test_hr_keywords_appear_in_the_right_note_version():
    v1, v2 = notes(1), notes(2)
    rows = cases("hr_policy")
    for r in rows:
        nid = r["note_id"]
        assert nid in v1, r["id"]
        for version, note in ((1, v1[nid]), (2, v2[nid])):
            keywords = r[f"answer_v{version}"]
            assert keywords and all(isinstance(k, str) and 0 < len(k) <= 20 for k in keywords), r["id"]
            for k in keywords:
                assert found(k, note["text"]), (r["id"], version, k)
            # no other note of the same version holds the answer: a wrong note never passes
            for other_id, other in (v1 if version == 1 else v2).items():
                if other_id != nid:
                    assert not any(found(k, other["text"]) for k in keywords), (r["id"], other_id)
        if v2[nid]["changed"]:
            # an old answer never passes for the new one, and the other way round
            assert not any(found(k, v2[nid]["text"]) for k in r["answer_v1"]), r["id"]
            assert not any(found(k, v1[nid]["text"]) for k in r["answer_v2"]), r["id"]
        else:
            assert r["answer_v1"] == r["answer_v2"], r["id"]
        # the question does not give its answer away
        assert not any(found(k, r["input"]) for k in r["answer_v1"] + r["answer_v2"]), r["id"]
    changed = {nid for nid, n in v2.items() if n["changed"]}
    assert sum(r["note_id"] in changed for r in rows) >= 14
    assert {r["note_id"] for r in rows} == set(v1)  # every note is asked about


# --------------------------------------------------------------------------- bookings
def test_bookings_file():
    rows = load_jsonl(CAPSTONE / "bookings" / "bookings.jsonl")
    assert len(rows) == 24
    refs = [b["ref"] for b in rows]
    assert len(set(refs)) == 24
    for b in rows:
        assert set(b) == {"ref", "guest", "arrival", "nights", "status"}
        assert re.fullmatch(r"GH-\d{5}", b["ref"]), b["ref"]
        assert dt.date.fromisoformat(b["arrival"]).year == 2027
        assert isinstance(b["nights"], int) and b["nights"] >= 1
        assert b["status"] in {"confirmed", "pending", "cancelled"}
    assert set(b["status"] for b in rows) == {"confirmed", "pending", "cancelled"}


def test_booking_requests_name_their_ref_and_dates():
    bookings = {b["ref"]: b for b in load_jsonl(CAPSTONE / "bookings" / "bookings.jsonl")}
    for r in cases("bookings"):
        assert r["ref"] in bookings, r["id"]
        assert r["ref"] in r["input"], r["id"]
        assert re.findall(r"GH-\d{5}", r["input"]) == [r["ref"]], r["id"]  # one reference per request
        booking = bookings[r["ref"]]
        if r["label"] == "change":
            new = dt.date.fromisoformat(r["new_arrival"])
            assert new.year == 2027 and r["new_arrival"] != booking["arrival"], r["id"]
            # the new date is written in words: its month's name and its day number
            assert MONTHS[new.month - 1] in r["input"], r["id"]
            assert re.search(rf"(?<!\d){new.day}(st|nd|rd|th)?(?!\d)", r["input"]), r["id"]
            assert "2027" not in r["input"], r["id"]
        else:
            assert r["new_arrival"] is None, r["id"]
        if r["label"] in {"change", "cancel"}:
            assert booking["status"] != "cancelled", r["id"]  # only live bookings are changed or cancelled
