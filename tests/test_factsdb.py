"""ftcourse.factsdb: the facts database builds from the data, agrees with the sheet, updates by
plain UPDATE statements, and its lookup brings the row that answers a structured question."""

from __future__ import annotations

import re
import sqlite3

import pytest

from ftcourse.datasets import Fact, changed_fact_ids, load_facts
from ftcourse.errors import CourseError
from ftcourse.evals import fact_is_correct
from ftcourse.factsdb import (
    PLAN_FACTS,
    build_facts_db,
    connect,
    fact_rows,
    facts_db_version,
    lookup,
    lookup_notes,
    open_facts_db,
    plan_rows,
    readable_sql,
    row_note,
    update_facts_db,
    update_statements,
)
from ftcourse.rag import load_helpcentre, load_helpcentre_questions, rag_prompt


@pytest.fixture()
def conn(tmp_path):
    c = open_facts_db(tmp_path / "facts.sqlite")
    yield c
    c.close()


def holds(text: str, keywords) -> bool:
    return fact_is_correct(text, Fact("k", "", "", "", list(keywords)))


def test_build_writes_a_file_any_sqlite_tool_can_open(tmp_path):
    path = build_facts_db(tmp_path / "sub" / "facts.sqlite")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    plain = sqlite3.connect(path)  # no course code needed to read it
    tables = {r[0] for r in plain.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"plans", "facts"}
    assert plain.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 3
    assert plain.execute("SELECT COUNT(*) FROM facts").fetchone()[0] == len(load_facts(1)) - len(PLAN_FACTS)
    assert plain.execute("PRAGMA user_version").fetchone()[0] == 1
    plain.close()
    with pytest.raises(CourseError):
        connect(tmp_path / "missing.sqlite")
    with pytest.raises(CourseError):
        build_facts_db(tmp_path / "v3.sqlite", version=3)
    assert not (tmp_path / "v3.sqlite").exists()


def test_plans_agree_with_the_sheet_and_the_help_centre():
    """The plan columns hold the same numbers as the price & policy sheet and the plan articles."""
    articles = {a.id: a.text for a in load_helpcentre(1)}
    for version in (1, 2):
        plans = {r["plan"]: r for r in plan_rows(version)}
        assert set(plans) == {"starter", "pro", "business"}
        sheet = {f.id: f for f in load_facts(version)}
        for fact_id, (plan, column) in PLAN_FACTS.items():
            assert holds(sheet[fact_id].note, [str(plans[plan][column])]), (version, fact_id)
        assert {r["id"] for r in fact_rows(version)} == set(sheet) - set(PLAN_FACTS)
    plans = {r["plan"]: r for r in plan_rows(1)}
    for plan, article in (("starter", "price_starter"), ("pro", "price_pro")):
        assert f"up to {plans[plan]['staff_accounts']} staff accounts" in articles[article]
    assert f"{plans['starter']['registers_per_store']} register " in articles["price_starter"]
    assert plans["business"]["registers_per_store"] is None and plans["business"]["staff_accounts"] is None
    assert "no limit on registers or staff accounts" in articles["price_business"]


def test_update_is_one_statement_per_changed_value(conn):
    statements = update_statements(2)
    assert len(statements) == len(changed_fact_ids())  # every changed sheet fact is one cell or one row
    assert all(sql.startswith("UPDATE ") and sql.count(";") == 0 for sql, _ in statements)
    assert update_statements(1, from_version=1) == []
    assert facts_db_version(conn) == 1
    done = update_facts_db(conn, version=2)
    assert len(done) == len(statements) and facts_db_version(conn) == 2
    assert "UPDATE plans SET monthly_price_usd = 55 WHERE plan = 'pro'" in done
    assert conn.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'pro'").fetchone()[0] == 55
    assert conn.execute("SELECT registers_per_store FROM plans WHERE plan = 'pro'").fetchone()[0] == 6
    v2 = {f.id: f for f in load_facts(2)}
    for row in conn.execute("SELECT id, value, note FROM facts"):
        assert (row["value"], row["note"]) == (v2[row["id"]].answer, v2[row["id"]].note)
    assert update_facts_db(conn, version=2) == []  # already there
    update_facts_db(conn, version=1)  # and back
    assert conn.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'pro'").fetchone()[0] == 49


def test_update_lands_whole_or_not_at_all(conn):
    conn.execute("DELETE FROM facts WHERE id = 'payout_time'")  # someone broke the file
    conn.commit()
    with pytest.raises(CourseError, match="changed 0 rows"):
        update_facts_db(conn, version=2)
    assert conn.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'pro'").fetchone()[0] == 49
    assert facts_db_version(conn) == 1


def test_rebuilding_undoes_changes(tmp_path):
    path = tmp_path / "facts.sqlite"
    c = open_facts_db(path)
    c.execute("UPDATE plans SET monthly_price_usd = 1 WHERE plan = 'business'")
    c.commit()
    c.close()
    c = open_facts_db(path)
    assert c.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'business'").fetchone()[0] == 99
    c.close()
    c = open_facts_db(path, version=2)
    assert facts_db_version(c) == 2
    assert c.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'starter'").fetchone()[0] == 25
    c.close()


def test_readable_sql_writes_the_parameters_in():
    assert readable_sql("UPDATE t SET a = ? WHERE b = ?", (5, "x")) == "UPDATE t SET a = 5 WHERE b = 'x'"
    assert readable_sql("UPDATE t SET a = ?", ("shop's",)) == "UPDATE t SET a = 'shop''s'"
    assert readable_sql("UPDATE t SET a = ?", (None,)) == "UPDATE t SET a = NULL"
    with pytest.raises(CourseError):
        readable_sql("UPDATE t SET a = ?", ())


def test_lookup_routes_by_plan_fact_words_and_values(conn):
    def ids(question):
        return [r.get("plan") or r.get("id") for r in lookup(conn, question)]

    assert ids("How much is the Pro plan?") == ["pro"]
    assert ids("Compare Starter and Business") == ["starter", "business"]
    assert ids("How long is the refund window?") == ["refund_window"]
    assert ids("What is the refund window on Pro?") == ["pro", "refund_window"]
    assert ids("Which plan costs $99 per month?") == ["business"]
    assert ids("What costs 2.6% plus 10 cents?") == ["card_fee"]
    assert ids("How many staff logins do I get?") == ["starter", "pro", "business"]
    assert ids("Tell me about product catalogues and problems") == []  # 'pro' only as a whole word
    assert lookup(conn, "What is the capital of France?") == []


def test_row_notes_read_as_sentences(conn):
    notes = lookup_notes(conn, "How much is Business?")
    assert notes == ["Business plan: $99 per month; no limit on registers per store; no limit on staff "
                     "accounts; stock alerts: yes; loyalty programme: yes; API access: yes."]
    pro = conn.execute("SELECT * FROM plans WHERE plan = 'pro'").fetchone()
    assert "up to 3 registers per store" in row_note(pro) and "API access: no" in row_note(pro)
    assert row_note(lookup(conn, "refund")[0]).startswith("Subscription refund window: A new Tillwise")
    with pytest.raises(CourseError):
        row_note({"x": 1})
    prompt = rag_prompt("How much is Business?", notes)
    assert "$99 per month" in prompt[0]["content"]


def test_lookup_answers_the_structured_questions_before_and_after_the_update(conn):
    """Every database question in the trained wording, by keyword or from the answer's side gets a row
    that holds its answer: the v1 value, then after the UPDATE the v2 value."""
    questions = [q for q in load_helpcentre_questions() if q.in_db]
    assert len(questions) >= 30
    assert {q.kind for q in questions} >= {"verbatim", "keyword", "reversed", "paraphrase"}
    routed = [q for q in questions if q.kind != "paraphrase"]
    for version in (1, 2):
        if version == 2:
            update_facts_db(conn, version=2)
        for q in routed:
            _, keywords = q.answer_for(version)
            assert holds(" ".join(lookup_notes(conn, q.question)), keywords), (version, q.id, q.question)
    stale = [q for q in routed if q.changes_in_v2]
    assert stale and not any(holds(" ".join(lookup_notes(conn, q.question)), q.keywords) for q in stale)


def test_in_db_flags_match_the_database():
    """A question is flagged in_db exactly when its fact is a plan column or a sheet row."""
    in_db_facts = set(PLAN_FACTS) | {r["id"] for r in fact_rows(1)} | {"starter_staff", "pro_staff"}
    for q in load_helpcentre_questions():
        assert q.in_db == (q.fact in in_db_facts), q.id
    numbers = re.compile(r"\d+")
    for fact in ("starter_staff", "pro_staff"):
        q = next(q for q in load_helpcentre_questions("verbatim") if q.fact == fact)
        plan = "starter" if fact.startswith("starter") else "pro"
        staff = next(r["staff_accounts"] for r in plan_rows(1) if r["plan"] == plan)
        assert str(staff) in numbers.findall(q.answer)
