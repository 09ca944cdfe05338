"""ftcourse.rag: the document store, both retrievers, refresh after updates, the RAG prompt."""

from __future__ import annotations

import numpy as np
import pytest

from ftcourse.datasets import load_fact_questions, load_facts
from ftcourse.errors import CourseError
from ftcourse.rag import (
    DocumentStore,
    EmbeddingRetriever,
    KeywordRetriever,
    Note,
    keyword_tokens,
    rag_prompt,
    retrieval_hit_rate,
)


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
