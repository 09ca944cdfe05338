"""The Tillwise help centre, its questions and its fact-tuning sets: counts, links and gradeability.

Every check here is about the data, so a typo in a hand-written line fails a test instead of
quietly skewing a lesson-02 measurement.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from ftcourse.datasets import DATA_DIR, Fact, changed_fact_ids, load_fact_training, load_facts, load_jsonl
from ftcourse.evals import abstains, fact_is_correct, grade_fact_answer, normalise_text
from ftcourse.rag import (
    HELP_QUESTION_KINDS,
    HELP_SPLITS,
    helpcentre_changes,
    keyword_tokens,
    load_helpcentre,
    load_helpcentre_questions,
    load_helpcentre_training,
    question_facts,
)

TOPICS = {"plans", "billing", "policies", "hardware", "error_codes", "troubleshooting", "how_to", "account",
          "payments"}
ERROR_CODE = re.compile(r"\bE-\d{3}\b")
SKU = re.compile(r"\bTW-[A-Z0-9]+\b")
MODEL_NUMBER = re.compile(r"\b[A-Z]\d{3}\b")


def holds(text: str, keywords: list[str]) -> bool:
    """True if ``text`` passes the course's fact grader for these keywords."""
    return fact_is_correct(text, Fact("k", "", "", "", list(keywords)))


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def full_text(article) -> str:
    return f"{article.title}. {article.text}"


@pytest.fixture(scope="module")
def v1():
    return {a.id: a for a in load_helpcentre(1)}


@pytest.fixture(scope="module")
def v2():
    return {a.id: a for a in load_helpcentre(2)}


@pytest.fixture(scope="module")
def questions():
    return load_helpcentre_questions()


@pytest.fixture(scope="module")
def once():
    return load_helpcentre_training(paraphrases=1)


@pytest.fixture(scope="module")
def para5():
    return load_helpcentre_training(paraphrases=5)


# --------------------------------------------------------------------------- articles
def test_article_counts_and_fields(v1):
    assert len(v1) >= 120
    rows = load_jsonl("helpcentre")
    assert len({r["id"] for r in rows}) == len(rows), "duplicate article id"
    for r in rows:
        assert set(r) == {"id", "title", "topic", "text", "version", "changed_in_v2"}, r["id"]
        assert r["topic"] in TOPICS, r["id"]
        assert r["version"] == 1 and r["title"].strip() and r["text"].strip()
        assert 2 <= sentences(r["text"]) <= 6, (r["id"], sentences(r["text"]))
    assert len({normalise_text(a.text) for a in v1.values()}) == len(v1), "two articles share a text"
    topics = Counter(a.topic for a in v1.values())
    for topic in ("plans", "billing", "policies", "hardware", "error_codes", "troubleshooting", "how_to"):
        assert topics[topic] >= 8, topics


def test_v2_update_rewrites_exactly_the_changed_sheet_facts(v1, v2):
    changes = helpcentre_changes()
    assert sorted(a.id for a in changes) == sorted(changed_fact_ids())
    assert {a.id for a in v1.values() if a.changed_in_v2} == {a.id for a in changes}
    for a in changes:
        assert a.version == 2 and a.change and a.text != v1[a.id].text
        assert (a.title, a.topic) == (v1[a.id].title, v1[a.id].topic)
        assert 2 <= sentences(a.text) <= 6
    assert set(v2) == set(v1)
    assert {i for i in v1 if v1[i].text != v2[i].text} == {a.id for a in changes}
    assert all(a.version == 2 for a in v2.values())


def test_the_price_and_policy_sheet_is_in_the_help_centre(v1, v2):
    """Each sheet fact has the article with its id, and that article states the fact's note word for word."""
    for version, articles in ((1, v1), (2, v2)):
        for fact in load_facts(version):
            assert fact.id in articles, fact.id
            assert fact.note in articles[fact.id].text, (version, fact.id)


def test_each_code_sku_and_model_number_has_one_article(v1):
    """An error code, SKU or model number names one article, so a keyword question has one right note."""
    where: dict[str, set[str]] = {}
    for a in v1.values():
        for pattern in (ERROR_CODE, SKU, MODEL_NUMBER):
            for ident in pattern.findall(full_text(a)):
                where.setdefault(ident, set()).add(a.id)
    shared = {i: sorted(ids) for i, ids in where.items() if len(ids) > 1}
    assert not shared, shared
    assert len([i for i in where if ERROR_CODE.match(i)]) >= 20
    assert len([i for i in where if SKU.match(i)]) >= 8


def test_hardware_skus_match_the_back_office(v1):
    """Lesson 03's back office sells the same products under the same SKUs."""
    products_file = DATA_DIR / "backoffice" / "products.jsonl"
    if not products_file.is_file():
        pytest.skip("the lesson 03 back office is not in this checkout")
    with open(products_file, encoding="utf-8") as f:
        products = {json.loads(line)["sku"]: json.loads(line) for line in f if line.strip()}
    in_help = {s for a in v1.values() for s in SKU.findall(full_text(a))}
    assert in_help == set(products), (sorted(in_help - set(products)), sorted(set(products) - in_help))
    # the two prices the help centre states are the back office's prices
    for article_id, sku in (("price_card_reader", "TW-CR2"), ("price_printer", "TW-RP80")):
        dollars = products[sku]["price_cents"] // 100
        assert f"${dollars}," in v1[article_id].text


# --------------------------------------------------------------------------- questions
def test_question_counts_kinds_and_splits(questions):
    assert len(questions) >= 200
    kinds = Counter(q.kind for q in questions)
    assert set(kinds) == set(HELP_QUESTION_KINDS)
    assert min(kinds.values()) >= 25, kinds
    assert {q.split for q in questions} == set(HELP_SPLITS)
    for kind in HELP_QUESTION_KINDS:
        share = sum(q.split == "val" for q in questions if q.kind == kind) / kinds[kind]
        assert 0.2 <= share <= 0.4, (kind, share)
    assert len(load_helpcentre_questions(kind="keyword", split="val")) == sum(
        q.kind == "keyword" and q.split == "val" for q in questions)


def test_questions_are_unique(questions):
    assert len({q.id for q in questions}) == len(questions)
    texts = Counter(normalise_text(q.question) for q in questions)
    assert not [t for t, n in texts.items() if n > 1]


def test_every_question_is_well_formed(questions, v1):
    rows = load_jsonl("helpcentre_questions")
    keys = {"id", "kind", "split", "question", "article_id", "fact", "answer", "keywords", "answer_v2",
            "keywords_v2", "in_db", "absent", "near_article"}
    assert all(set(r) == keys for r in rows)
    for q in questions:
        assert q.question.strip(), q.id
        if q.kind in ("untaught", "known"):
            assert q.article_id is None and q.fact is None and q.keywords_v2 is None and not q.in_db, q.id
        else:
            assert q.article_id in v1, q.id
            assert q.fact, q.id
        if q.kind == "untaught":
            assert q.fact_id is None and q.answer is None and q.keywords == [] and q.absent, q.id
        else:
            assert q.fact_id == q.id and q.answer and q.keywords, q.id
            assert not q.absent and q.near_article is None, q.id
            assert all(k.strip() and "||" not in k for k in q.keywords), q.id


def test_answers_are_in_the_gold_article_for_both_versions(questions, v1, v2):
    for q in questions:
        if q.article_id is None:
            continue
        assert holds(full_text(v1[q.article_id]), q.keywords), (q.id, q.keywords)
        _, keys2 = q.answer_for(2)
        assert holds(full_text(v2[q.article_id]), keys2), (q.id, keys2)


def test_old_and_new_answers_cannot_pass_for_each_other(questions, v1, v2):
    changing = [q for q in questions if q.changes_in_v2]
    assert {q.fact for q in changing} == set(changed_fact_ids())
    for q in changing:
        assert q.answer_v2 and q.answer_v2 != q.answer
        assert not holds(full_text(v1[q.article_id]), q.keywords_v2), q.id
        assert not holds(full_text(v2[q.article_id]), q.keywords), q.id
        assert not holds(q.answer, q.keywords_v2) and not holds(q.answer_v2, q.keywords), q.id
    # reversed questions name the value, so they stay on facts the update leaves alone
    assert not [q.id for q in questions if q.kind == "reversed" and q.fact in changed_fact_ids()]


def test_each_short_answer_passes_its_own_grader(questions):
    """The ``answer`` field is a correct reply under the course grader, in both versions."""
    for version in (1, 2):
        sheet = {f.id: f for f in question_facts(questions, version)}
        for q in questions:
            if q.kind == "untaught":
                assert grade_fact_answer("I don't know; that is not in the notes.", q, sheet)
                assert not grade_fact_answer("It costs $40.", q, sheet)
            else:
                answer, _ = q.answer_for(version)
                assert grade_fact_answer(answer, q, sheet), (version, q.id)
                assert not abstains(answer), q.id


def test_no_question_gives_its_answer_away(questions):
    for q in questions:
        if q.keywords:
            assert not holds(q.question, q.keywords), (q.id, q.keywords)


def test_untaught_questions_are_answered_by_no_article(questions, v1):
    """Their key terms appear in no article, v1 or v2 (or, for a product the help centre has, not in
    its own article: the price of a cash drawer is live data for the back office, not a help page)."""
    articles = list(v1.values()) + helpcentre_changes()
    for q in questions:
        if q.kind != "untaught":
            continue
        pool = [v1[q.near_article]] if q.near_article else articles
        for term in q.absent:
            pattern = re.compile(r"(?<![a-z])" + re.escape(term.lower()))
            found = [a.id for a in pool if pattern.search(full_text(a).lower())]
            assert not found, (q.id, term, found)


def test_kinds_look_like_their_definition(questions, v1, once):
    trained = {r["fact_id"]: r["messages"][0]["content"] for r in once}
    identifier = re.compile(r"\bE-\d{3}\b|\bTW-[A-Z0-9]+\b|\b[A-Z]\d{3}\b|\b(Starter|Pro|Business)\b")
    for q in questions:
        if q.kind == "verbatim":
            assert q.question == trained[q.fact], q.id
        if q.kind == "keyword":
            assert identifier.search(q.question) and len(q.question.split()) <= 6, q.id

    def overlap(q):
        words = set(keyword_tokens(q.question)) - {"tillwise"}
        return len(words & set(keyword_tokens(full_text(v1[q.article_id])))) / max(len(words), 1)

    mean = {kind: sum(overlap(q) for q in qs) / len(qs) for kind in ("verbatim", "paraphrase")
            for qs in [[q for q in questions if q.kind == kind]]}
    assert mean["paraphrase"] < 0.6 * mean["verbatim"], mean


def test_every_fact_lies_in_one_split(questions):
    split_of: dict[str, set[str]] = {}
    for q in questions:
        if q.fact:
            split_of.setdefault(q.fact, set()).add(q.split)
    assert all(len(s) == 1 for s in split_of.values()), {f: s for f, s in split_of.items() if len(s) > 1}


# --------------------------------------------------------------------------- training sets
def test_training_sets_cover_each_fact_once_and_five_ways(questions, once, para5):
    facts = {q.fact for q in questions if q.fact}
    assert sorted(r["fact_id"] for r in once) == sorted(facts)
    per_fact = Counter(r["fact_id"] for r in para5)
    assert set(per_fact) == facts and set(per_fact.values()) == {5}
    for fact in facts:
        asked = [r["messages"][0]["content"] for r in para5 if r["fact_id"] == fact]
        assert len({normalise_text(a) for a in asked}) == 5, fact
        answers = {r["messages"][1]["content"] for r in para5 if r["fact_id"] == fact}
        assert len(answers) == 3, fact
    def pairs(rows):
        return {(r["fact_id"], r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows}

    assert pairs(once) <= pairs(para5)
    for rows in (once, para5):
        assert len({r["id"] for r in rows}) == len(rows)
        assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)


def test_training_answers_state_the_fact_in_both_versions(questions):
    keys = {q.fact: (q.keywords, q.keywords_v2) for q in questions if q.kind == "verbatim"}
    for paraphrases in (1, 5):
        raw = load_jsonl("helpcentre_train_once" if paraphrases == 1 else "helpcentre_train_para5")
        new = load_helpcentre_training(paraphrases, version=2)
        for row, row2 in zip(raw, new, strict=True):
            k1, k2 = keys[row["fact_id"]]
            answer = row["messages"][1]["content"]
            assert holds(answer, k1), row["id"]
            if k2 is None:
                assert row["assistant_v2"] is None and row2["messages"] == row["messages"], row["id"]
            else:
                assert holds(row["assistant_v2"], k2) and not holds(row["assistant_v2"], k1), row["id"]
                assert not holds(answer, k2), row["id"]
                assert row2["messages"][1]["content"] == row["assistant_v2"]
                assert row2["messages"][0] == row["messages"][0]


def test_only_verbatim_questions_are_trained_on(questions, para5):
    trained = {normalise_text(r["messages"][0]["content"]) for r in para5 + load_fact_training()}
    leaked = [q.id for q in questions if q.kind != "verbatim" and normalise_text(q.question) in trained]
    assert not leaked
    assert all(normalise_text(q.question) in trained for q in questions if q.kind == "verbatim")


def test_question_facts_follow_the_version(questions):
    sheet1 = {f.id: f for f in question_facts(questions, 1)}
    sheet2 = {f.id: f for f in question_facts(questions, 2)}
    assert len(sheet1) == sum(q.kind != "untaught" for q in questions)
    changed = {q.id for q in questions if q.changes_in_v2}
    assert {i for i in sheet1 if sheet1[i].keywords != sheet2[i].keywords} == changed
    assert {i for i in sheet1 if sheet1[i].answer != sheet2[i].answer} == changed


def test_loaders_reject_unknown_arguments():
    from ftcourse.errors import CourseError

    for call in (lambda: load_helpcentre(3), lambda: load_helpcentre_questions(kind="trained"),
                 lambda: load_helpcentre_questions(split="train"), lambda: load_helpcentre_training(3),
                 lambda: load_helpcentre_training(1, version=0), lambda: question_facts([], 3)):
        with pytest.raises(CourseError):
            call()
