"""ftcourse.rag: the document store, the three retrievers, refresh after updates, the RAG prompt,
and the retrieval metrics (hit@k, MRR, per-kind rates with Wilson intervals)."""

from __future__ import annotations

import numpy as np
import pytest

from ftcourse.datasets import FactQuestion, load_fact_questions, load_facts
from ftcourse.errors import CourseError
from ftcourse.rag import (
    RRF_K,
    DocumentStore,
    EmbeddingRetriever,
    HybridRetriever,
    KeywordRetriever,
    Note,
    _Retriever,
    gold_ranks,
    helpcentre_changes,
    hit_at_k,
    keyword_tokens,
    load_helpcentre,
    load_helpcentre_questions,
    mean_reciprocal_rank,
    rag_prompt,
    rank_of,
    rates_by_kind,
    reciprocal_rank,
    reciprocal_rank_fusion,
    retrieval_hit_rate,
    retrieval_table,
    with_gold,
)
from ftcourse.stats import wilson_interval


class BagOfWordsEncoder:
    """A stand-in for the sentence encoder: hashed word counts, normalised. Fast and deterministic."""

    def __init__(self, dim=256):
        self.dim = dim
        self.calls = 0

    def encode(self, texts, normalize_embeddings=True, show_progress_bar=False):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype="float32")
        for i, text in enumerate(texts):
            for tok in keyword_tokens(text):
                out[i, sum(map(ord, tok)) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def test_store_add_update_remove_and_version():
    store = DocumentStore()
    assert len(store) == 0 and store.version == 0
    store.add("a", "The sky is blue.")
    store.add(Note("b", "Grass is green.", topic="Grass"))
    assert len(store) == 2 and store.version == 2 and "a" in store
    with pytest.raises(CourseError):
        store.add("a", "duplicate")
    store.update("a", "The sky is grey today.")
    assert store.get("a").text == "The sky is grey today." and store.version == 3
    store.update("a", "The sky is grey today.")  # no change, no new version
    assert store.version == 3
    assert store.get("b").topic == "Grass"
    store.remove("b")
    assert [n.id for n in store.notes] == ["a"] and store.version == 4
    with pytest.raises(CourseError):
        store.update("zzz", "x")
    with pytest.raises(CourseError):
        store.remove("zzz")


def test_apply_facts_moves_the_store_to_the_new_sheet():
    v1, v2 = load_facts(1), load_facts(2)
    store = DocumentStore.from_facts(v1)
    assert len(store) == len(v1)
    changed = store.apply_facts(v2)
    assert sorted(changed) == sorted(f2.id for f1, f2 in zip(v1, v2, strict=True) if f1.note != f2.note)
    assert {n.id: n.text for n in store.notes} == {f.id: f.note for f in v2}
    assert store.apply_facts(v2) == []


@pytest.mark.parametrize("make", [KeywordRetriever, lambda s: EmbeddingRetriever(s, model=BagOfWordsEncoder())])
def test_retrievers_find_the_right_note_and_refresh(make):
    store = DocumentStore.from_facts(load_facts(1))
    retriever = make(store)
    hits = retriever.search("How much does the Tillwise Pro plan cost?", k=3)
    assert len(hits) == 3 and hits[0][0].id == "price_pro"
    assert hits[0][1] >= hits[1][1] >= hits[2][1]
    assert "$49" in hits[0][0].text
    # the store changes: the next search sees the new text without rebuilding anything by hand
    store.update("price_pro", "The Tillwise Pro plan costs $55 per month.")
    assert "$55" in retriever.search("How much does the Tillwise Pro plan cost?", k=1)[0][0].text
    store.remove("price_pro")
    assert all(n.id != "price_pro" for n, _ in retriever.search("Pro plan price", k=20))
    store.add("pager", "Tillwise sends a pager alert when the drawer stays open.")
    assert retriever.search("pager alert drawer", k=1)[0][0].id == "pager"


def test_keyword_retriever_hits_trained_wording():
    store = DocumentStore.from_facts(load_facts(2))
    assert retrieval_hit_rate(KeywordRetriever(store), load_fact_questions("trained"), k=1) == 1.0
    with pytest.raises(CourseError):
        retrieval_hit_rate(KeywordRetriever(store), load_fact_questions("untaught"))


def test_embedding_cache_reembeds_only_changed_notes():
    store = DocumentStore.from_facts(load_facts(1))
    retriever = EmbeddingRetriever(store, model=BagOfWordsEncoder())
    retriever.search("card reader price", k=1)
    first = retriever.encoded
    assert first == len(store) + 1  # every note once, plus the query
    store.update("price_starter", "The Tillwise Starter plan costs $25 per month.")
    retriever.search("card reader price", k=1)
    assert retriever.encoded == first + 2  # the changed note and the query, nothing else


def test_min_score_drops_weak_matches():
    store = DocumentStore.from_facts(load_facts(1))
    retriever = KeywordRetriever(store)
    best = retriever.search("How much does the Tillwise Pro plan cost?", k=3)
    kept = retriever.search("How much does the Tillwise Pro plan cost?", k=3, min_score=best[0][1])
    assert [n.id for n, _ in kept] == ["price_pro"]
    assert retriever.search("zebra giraffe", k=3, min_score=0.01) == []


def test_empty_store_returns_nothing():
    assert KeywordRetriever(DocumentStore()).search("anything") == []


def test_rag_prompt_puts_notes_before_the_question():
    store = DocumentStore.from_facts(load_facts(2))
    hits = KeywordRetriever(store).search("How much does the Pro plan cost?", k=2)
    msgs = rag_prompt("How much does the Pro plan cost?", hits)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"] == "How much does the Pro plan cost?"
    assert "$55" in msgs[0]["content"] and "don't know" in msgs[0]["content"]
    assert msgs[0]["content"].count("\n- ") == 2
    # notes may also be plain strings or facts
    assert "hello" in rag_prompt("q", ["hello"])[0]["content"]
    assert load_facts(1)[0].note in rag_prompt("q", load_facts(1)[:1])[0]["content"]
    assert "no notes" in rag_prompt("q", [])[0]["content"]


@pytest.mark.model
def test_real_embedding_model_beats_chance_on_paraphrases():
    """The bundled all-MiniLM-L6-v2 loads offline and retrieves most paraphrased questions."""
    store = DocumentStore.from_facts(load_facts(2))
    retriever = EmbeddingRetriever(store)
    assert retrieval_hit_rate(retriever, load_fact_questions("paraphrase"), k=1) >= 0.8
    assert retrieval_hit_rate(retriever, load_fact_questions("trained"), k=1) == 1.0


# --------------------------------------------------------------------------- ranking and fusion
class FixedRetriever(_Retriever):
    """A retriever whose scores are given by hand, per note id (missing ids score 0 and are not found)."""

    def __init__(self, store, scores):
        super().__init__(store)
        self.fixed = scores

    def _build(self, notes):
        pass

    def _scores(self, query):
        return [self.fixed.get(n.id, 0.0) for n in self._notes]

    def _matches(self, score):
        return score > 0


def tiny_store():
    return DocumentStore([Note("apples", "Red apples are sweet."), Note("pears", "Green pears are soft."),
                          Note("cars", "Red cars are fast."), Note("bread", "Fresh bread every morning."),
                          Note("milk", "Cold milk in glass bottles.")])


def test_keyword_ranking_leaves_out_notes_that_share_no_word():
    retriever = KeywordRetriever(tiny_store())
    assert retriever.ranking("red apples")[0][1] > retriever.ranking("red apples")[1][1] > 0
    assert [n.id for n, _ in retriever.ranking("red apples")] == ["apples", "cars"]
    assert [n.id for n, _ in retriever.ranking("red apples", depth=1)] == ["apples"]
    assert retriever.ranking("zebra") == []
    assert len(retriever.search("zebra", k=3)) == 3  # search still fills k, as before
    assert KeywordRetriever(DocumentStore()).ranking("anything") == []


def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60)
    assert [i for i, _ in fused] == ["b", "c", "a", "d"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert scores["a"] == pytest.approx(1 / 61) and scores["d"] == pytest.approx(1 / 63)
    # ties keep the order of first appearance; k = 0 is plain 1/rank
    assert reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=0) == [("a", 1.5), ("b", 1.5)]
    # found by both lists beats found first by one list, once k is large enough to flatten ranks
    assert reciprocal_rank_fusion([["x", "y"], ["z", "y"]], k=60)[0][0] == "y"
    assert reciprocal_rank_fusion([["x", "y"], ["z", "y"]], k=0)[0][0] in ("x", "z")
    assert reciprocal_rank_fusion([]) == [] and RRF_K == 60
    with pytest.raises(CourseError):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_hybrid_fuses_the_rankings_of_its_retrievers():
    store = tiny_store()
    first = FixedRetriever(store, {"apples": 3.0, "pears": 2.0, "cars": 1.0})
    second = FixedRetriever(store, {"cars": 0.9, "bread": 0.5})
    hybrid = HybridRetriever(store, retrievers=[first, second])
    expected = reciprocal_rank_fusion([["apples", "pears", "cars"], ["cars", "bread"]])
    got = hybrid.search("anything", k=4)
    assert [(n.id, pytest.approx(s)) for n, s in got] == expected
    assert got[0][0].id == "cars"  # second in one list, first in the other
    assert [n.id for n, _ in hybrid.ranking("anything")] == [i for i, _ in expected]
    # only the top of each list: depth=1 fuses "apples" and "cars"
    shallow = HybridRetriever(store, retrievers=[first, second], depth=1)
    assert [n.id for n, _ in shallow.ranking("anything")] == ["apples", "cars"]
    assert [n.id for n, _ in hybrid.search("anything", k=4, min_score=1 / 61)] == ["cars", "apples"]
    # the store changes: the fused retrievers refresh, and so does the fusion
    store.remove("cars")
    assert "cars" not in [n.id for n, _ in hybrid.ranking("anything")]


def test_hybrid_checks_its_parts():
    store, other = tiny_store(), tiny_store()
    with pytest.raises(CourseError):
        HybridRetriever(store, retrievers=[KeywordRetriever(other)])
    with pytest.raises(CourseError):
        HybridRetriever(store, retrievers=[])
    with pytest.raises(CourseError):
        HybridRetriever(store, retrievers=[KeywordRetriever(store)], k=-5)


def test_default_hybrid_is_bm25_plus_embeddings():
    store = DocumentStore.from_facts(load_facts(1))
    hybrid = HybridRetriever(store, model=BagOfWordsEncoder())
    assert [type(r) for r in hybrid.retrievers] == [KeywordRetriever, EmbeddingRetriever]
    assert hybrid.search("How much does the Tillwise Pro plan cost?", k=1)[0][0].id == "price_pro"
    assert retrieval_hit_rate(hybrid, load_fact_questions("trained"), k=1) == 1.0


# --------------------------------------------------------------------------- metrics
def test_hit_at_k_and_reciprocal_rank_by_hand():
    ranked = ["b", "a", "c"]
    assert rank_of(ranked, "a") == 2 and rank_of(ranked, "z") is None
    assert not hit_at_k(ranked, "a", 1) and hit_at_k(ranked, "a", 2) and hit_at_k(ranked, "a", 5)
    assert not hit_at_k(ranked, "z", 10)
    assert reciprocal_rank(ranked, "b") == 1.0 and reciprocal_rank(ranked, "a") == 0.5
    assert reciprocal_rank(ranked, "c") == pytest.approx(1 / 3) and reciprocal_rank(ranked, "z") == 0.0
    # what search returns works as well: (note, score) pairs or notes
    pairs = [(Note("b", "x"), 2.0), (Note("a", "y"), 1.0)]
    assert hit_at_k(pairs, "a", 2) and reciprocal_rank([n for n, _ in pairs], "a") == 0.5
    with pytest.raises(CourseError):
        hit_at_k(ranked, "a", 0)


def test_mean_reciprocal_rank_by_hand():
    assert mean_reciprocal_rank([["a", "b"], ["b", "a"], ["c"]], ["a", "a", "a"]) == pytest.approx(0.5)
    assert mean_reciprocal_rank([["a"]], ["a"]) == 1.0
    with pytest.raises(CourseError):
        mean_reciprocal_rank([["a"]], ["a", "b"])
    with pytest.raises(CourseError):
        mean_reciprocal_rank([], [])


def test_rates_by_kind_has_n_wilson_and_baseline():
    rows = rates_by_kind([True, False, True, True], ["x", "x", "y", "y"], baseline=0.25)
    assert [(r["kind"], r["n"], r["successes"]) for r in rows] == [("x", 2, 1), ("y", 2, 2), ("all", 4, 3)]
    assert rows[0]["rate"] == 0.5 and rows[2]["rate"] == 0.75
    for row in rows:
        assert (row["low"], row["high"]) == wilson_interval(row["successes"], row["n"])
        assert row["low"] <= row["rate"] <= row["high"] and row["baseline"] == 0.25
    per_kind = rates_by_kind([True], [FactQuestion("q", "f", "x", "?")], baseline={"x": 0.1}, total=None)
    assert len(per_kind) == 1 and per_kind[0]["baseline"] == 0.1
    assert "baseline" not in rates_by_kind([True], ["x"])[0]
    with pytest.raises(CourseError):
        rates_by_kind([True, False], ["x"])


def test_retrieval_table_on_a_tiny_store():
    store = tiny_store()
    retriever = KeywordRetriever(store)
    questions = [FactQuestion("q1", "apples", "easy", "sweet red apples"),  # rank 1
                 FactQuestion("q2", "cars", "easy", "red apples or cars"),  # cars shares 'red' and 'cars'
                 FactQuestion("q3", "bread", "hard", "a loaf in the morning"),  # shares 'morning': rank 1
                 FactQuestion("q4", "pears", "hard", "what about zebras"),  # shares nothing: not found
                 FactQuestion("q5", None, "untaught", "is there a zebra")]  # no gold: left out
    assert [q.id for q in with_gold(questions)] == ["q1", "q2", "q3", "q4"]
    ranks = gold_ranks(retriever, with_gold(questions))
    assert ranks[0] == 1 and ranks[2] == 1 and ranks[3] is None and ranks[1] in (1, 2)
    with pytest.raises(CourseError):
        gold_ranks(retriever, questions)
    rows = retrieval_table(retriever, questions, ks=(1, 2), name="bm25", ranks=ranks)
    assert [r["kind"] for r in rows] == ["easy", "hard", "all"]
    all_row = rows[-1]
    assert all_row["n"] == 4 and all_row["retriever"] == "bm25"
    assert all_row["hit@2"] == 0.75 and all_row["chance@2"] == 0.4 and all_row["chance@1"] == 0.2
    assert (all_row["hit@2 low"], all_row["hit@2 high"]) == wilson_interval(3, 4)
    assert all_row["MRR"] == pytest.approx(sum(0 if r is None else 1 / r for r in ranks) / 4)
    assert rows[1]["hit@1"] == 0.5 and rows[1]["MRR"] == 0.5
    assert all_row["chance MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    # searching gives the same ranks
    assert retrieval_table(retriever, questions, ks=(1, 2), name="bm25") == rows
    with pytest.raises(CourseError):
        retrieval_table(retriever, questions, ranks=ranks[:2])
    with pytest.raises(CourseError):
        retrieval_table(retriever, questions[4:])


# --------------------------------------------------------------------------- the help centre
def test_help_centre_store_and_its_update():
    store = DocumentStore.from_articles(load_helpcentre(1))
    assert len(store) == len(load_helpcentre(1)) >= 120
    assert store.get("price_pro").topic == "The Pro plan"  # the title is indexed with the text
    changed = store.apply_articles(helpcentre_changes())
    assert sorted(changed) == sorted(a.id for a in helpcentre_changes())
    assert {n.id: n.text for n in store.notes} == {a.id: a.text for a in load_helpcentre(2)}
    assert store.apply_articles(helpcentre_changes()) == []


def test_embedding_update_of_the_help_centre_reembeds_the_changed_articles_only():
    store = DocumentStore.from_articles(load_helpcentre(1))
    retriever = EmbeddingRetriever(store, model=BagOfWordsEncoder())
    retriever.search("card reader battery", k=1)
    before = retriever.encoded
    assert before == len(store) + 1
    store.apply_articles(helpcentre_changes())
    retriever.search("card reader battery", k=1)
    assert retriever.encoded - before == len(helpcentre_changes()) + 1


def test_bm25_on_help_centre_questions():
    """Keyword search finds the trained wording and the codes; the table covers every answerable kind."""
    store = DocumentStore.from_articles(load_helpcentre(1))
    retriever = KeywordRetriever(store)
    assert retrieval_hit_rate(retriever, load_helpcentre_questions("verbatim"), k=5) >= 0.95
    assert retrieval_hit_rate(retriever, load_helpcentre_questions("keyword"), k=5) >= 0.9
    with pytest.raises(CourseError):
        retrieval_hit_rate(retriever, load_helpcentre_questions("untaught"))
    questions = load_helpcentre_questions(split="val")
    rows = retrieval_table(retriever, questions)
    assert {r["kind"] for r in rows} == {"verbatim", "paraphrase", "keyword", "reversed", "all"}
    assert rows[-1]["n"] == len(with_gold(questions)) == sum(r["n"] for r in rows[:-1])
    for row in rows:  # MRR lies between hit@1 and hit@5 plus at most 1/6 for each question ranked below 5
        assert row["hit@1"] <= row["MRR"] <= row["hit@5"] + (1 - row["hit@5"]) / 6 + 1e-9


@pytest.mark.slow
@pytest.mark.model
def test_real_embedder_and_hybrid_on_the_help_centre():
    """all-MiniLM-L6-v2 on the help centre: it finds the trained wording, the fusion lands at least
    between its two parts, and the v2 update re-embeds only the changed articles."""
    store = DocumentStore.from_articles(load_helpcentre(1))
    bm25, emb = KeywordRetriever(store), EmbeddingRetriever(store)
    hybrid = HybridRetriever(store, retrievers=[bm25, emb])
    questions = load_helpcentre_questions()
    tables = {name: retrieval_table(r, questions, name=name) for name, r in
              (("bm25", bm25), ("minilm", emb), ("hybrid", hybrid))}
    for rows in tables.values():
        for row in rows:
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    overall = {name: rows[-1] for name, rows in tables.items()}
    verbatim = {name: next(r for r in rows if r["kind"] == "verbatim") for name, rows in tables.items()}
    assert verbatim["minilm"]["hit@5"] >= 0.8
    assert overall["hybrid"]["hit@5"] >= min(overall["bm25"]["hit@5"], overall["minilm"]["hit@5"])
    before = emb.encoded
    store.apply_articles(helpcentre_changes())
    emb.search("card reader battery", k=1)
    assert emb.encoded - before == len(helpcentre_changes()) + 1
