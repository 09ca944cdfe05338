"""ftcourse.facts_lab (lesson 02): question samples, one pass per route, outcomes, failure splits, the
abstention threshold, the timed update, computed sentences, plots and the graders' cases.

No model is loaded: generation is a stand-in that answers from the prompt, and the embedding model
is a bag-of-words encoder.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ftcourse import chat  # noqa: E402
from ftcourse import facts_lab as F  # noqa: E402
from ftcourse.errors import CourseError  # noqa: E402
from ftcourse.factsdb import open_facts_db  # noqa: E402
from ftcourse.rag import (  # noqa: E402
    DocumentStore,
    EmbeddingRetriever,
    KeywordRetriever,
    Note,
    helpcentre_changes,
    keyword_tokens,
    load_helpcentre,
    load_helpcentre_questions,
    load_helpcentre_training,
    mean_reciprocal_rank,
    reciprocal_rank_fusion,
)
from ftcourse.stats import Rate  # noqa: E402


class BagOfWordsEncoder:
    """A stand-in for the sentence encoder: hashed word counts, normalised."""

    def __init__(self, dim=256):
        self.dim = dim

    def encode(self, texts, normalize_embeddings=True, show_progress_bar=False):
        out = np.zeros((len(texts), self.dim), dtype="float32")
        for i, text in enumerate(texts):
            for tok in keyword_tokens(text):
                out[i, sum(map(ord, tok)) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture()
def echo_model(monkeypatch):
    """generate_batch stand-in: a prompt with notes answers with its first note; a bare question gets
    the answer in ``answers`` (by question text) or a confident made-up one."""
    answers: dict[str, str] = {}
    seen: list = []

    def fake(model, tok, prompts, **kwargs):
        out = []
        for p in prompts:
            seen.append(p)
            if isinstance(p, list):
                notes = p[0]["content"].split("Notes:\n- ", 1)[1]
                out.append(notes.split("\n- ")[0])
            else:
                out.append(answers.get(p, "It costs $1,234 and comes in blue."))
        return out

    monkeypatch.setattr(chat, "generate_batch", fake)
    return answers, seen


# --------------------------------------------------------------------------- questions
def test_lesson_questions_all_or_a_sample_with_paired_facts():
    everything = F.lesson_questions("test")
    assert everything == load_helpcentre_questions(split="test")
    sizes = {"verbatim": 6, "paraphrase": 6, "keyword": 3, "reversed": 2, "untaught": 4}
    sample = F.lesson_questions("test", per_kind=sizes)
    counts = {k: sum(q.kind == k for q in sample) for k in sizes}
    assert counts == sizes and all(q.split == "test" for q in sample)
    assert not any(q.kind == "known" for q in sample)
    v = {q.fact for q in sample if q.kind == "verbatim"}
    assert v == {q.fact for q in sample if q.kind == "paraphrase"}  # the same facts, asked both ways
    changed = {q.fact for q in everything if q.changes_in_v2 and q.kind == "verbatim"}
    assert changed <= v  # the facts the update changes come first
    assert F.lesson_questions("test", per_kind=sizes) == sample  # fixed
    kinds = [q.kind for q in sample]
    assert kinds == sorted(kinds, key=["verbatim", "paraphrase", "keyword", "reversed", "untaught"].index)
    with pytest.raises(CourseError, match="Unknown question kind"):
        F.lesson_questions("test", per_kind={"trained": 3})


def test_select_paired_by_fact_and_rates_by():
    qs = F.lesson_questions("val", per_kind={"verbatim": 3, "paraphrase": 3, "untaught": 2})
    flags = [q.kind == "verbatim" for q in qs]
    assert F.select(flags, qs, ("verbatim",)) == [True] * 3
    assert F.select(flags, qs, where=lambda q: q.kind == "untaught") == [False, False]
    a, b = F.paired_by_fact(flags, qs, "verbatim", "paraphrase")
    assert a == [True] * 3 and b == [False] * 3
    rates = F.rates_by(flags, qs)
    assert list(rates) == ["verbatim", "paraphrase", "untaught", "all"]
    assert rates["verbatim"] == Rate(3, 3) and rates["all"] == Rate(3, 8)
    assert F.rates_by(flags, qs, kinds=("paraphrase",))["all"] == Rate(0, 3)
    with pytest.raises(CourseError):
        F.select([True], qs)


# --------------------------------------------------------------------------- one pass per route
def test_ask_closed_book_with_notes_and_after_the_update(echo_model):
    answers, seen = echo_model
    qs = [q for q in load_helpcentre_questions(kind="verbatim", split="test") if q.changes_in_v2][:2]
    answers[qs[0].question] = qs[0].answer  # the model "knows" the first one
    closed = F.ask(None, None, qs)
    assert seen[:2] == [q.question for q in qs] and closed.correct == [True, False]

    store = DocumentStore.from_articles(load_helpcentre(1))
    with_note = F.ask(None, None, qs, prompt=F.gold_note_prompt(store))
    assert with_note.correct == [True, True]
    store.apply_articles(helpcentre_changes())
    stale = F.ask(None, None, qs, prompt=F.retrieval_prompt(KeywordRetriever(store), k=1), version=1)
    fresh = F.ask(None, None, qs, prompt=F.gold_note_prompt(store), version=2)
    assert stale.correct == [False, False] and fresh.correct == [True, True]


def test_database_prompt_and_hits(tmp_path, echo_model):
    conn = open_facts_db(tmp_path / "facts.sqlite")
    qs = [q for q in load_helpcentre_questions(split="test") if q.in_db]
    hits = F.database_hits(conn, qs)
    assert any(hits) and len(hits) == len(qs)
    price = next(q for q in qs if q.id == "v_price_pro")
    assert F.database_hits(conn, [price]) == [True]
    prompt = F.database_prompt(conn)(price)
    assert "$49 per month" in prompt[0]["content"] and prompt[-1]["content"] == price.question
    untaught = load_helpcentre_questions(kind="untaught", split="test")[:3]
    assert F.database_hits(conn, untaught) == [False] * 3
    conn.close()


# --------------------------------------------------------------------------- outcomes
def test_outcomes_and_the_constant_dont_know_baseline():
    qs = F.lesson_questions("test", per_kind={"verbatim": 2, "paraphrase": 2, "untaught": 3, "known": 1})
    outputs, correct = F.constant_answers(F.ABSTAIN_ANSWER, qs)
    assert correct == [q.kind == "untaught" for q in qs]  # it scores exactly the untaught questions
    marks = F.outcomes(outputs, correct, qs)
    assert set(marks) == {F.DONT_KNOW}
    assert F.outcome_of("It is $19.", True, True) == F.RIGHT
    assert F.outcome_of("I don't know.", False, True) == F.DONT_KNOW
    assert F.outcome_of("Yes, it does.", False, False) == F.WRONG
    assert F.outcome_of("I don't know.", True, False) == F.DONT_KNOW  # untaught: abstaining is the right reply

    confident = (["It is $5."] * len(qs), [False] * len(qs))
    rows = F.outcome_rows({"idk": (outputs, correct), "bold": confident}, qs)
    assert [(r["setup"], r["questions"], r["n"]) for r in rows] == [
        ("idk", "with an article", 4), ("idk", "untaught", 3), ("idk", "general knowledge", 1),
        ("bold", "with an article", 4), ("bold", "untaught", 3), ("bold", "general knowledge", 1)]
    assert rows[0][F.DONT_KNOW] == Rate(4, 4) and rows[4][F.WRONG] == Rate(3, 3)
    table = F.as_table(rows, index=["setup", "questions"])
    assert table.loc[("idk", "untaught"), F.DONT_KNOW].startswith("100%")
    fig = F.plot_outcomes(rows)
    assert len(fig.axes) == 1


def test_context_hits_failure_split_and_rows():
    store = DocumentStore([Note("a", "The Pro plan costs 49 dollars."), Note("b", "E-104 means a low battery.")])
    qs = load_helpcentre_questions(kind="verbatim", split="test")[:2]
    qs[0].article_id, qs[1].article_id = "a", "b"  # our own tiny help centre
    qs[0].question, qs[1].question = "What does the Pro plan cost?", "What is the weather?"
    hits = F.context_hits(KeywordRetriever(store), qs, k=1)
    assert hits == [True, False]
    untaught = load_helpcentre_questions(kind="untaught", split="test")[:1]
    assert F.context_hits(KeywordRetriever(store), untaught, k=2) == [False]
    assert F.failure_split([True, False, False], [False, True, False]) == [F.RIGHT, F.ANSWER_MISS, F.RETRIEVAL_MISS]
    rows = F.failure_rows({"rag": ([True, False], hits)}, qs)
    assert [(r["kind"], r["n"]) for r in rows] == [("verbatim", 2), ("all", 2)]
    assert rows[-1][F.RIGHT] == Rate(1, 2) and rows[-1][F.RETRIEVAL_MISS] == Rate(1, 2)
    assert rows[-1][F.ANSWER_MISS] == Rate(0, 2)


# --------------------------------------------------------------------------- abstention threshold
def test_precision_recall_choose_threshold_and_gate():
    scores = [0.9, 0.8, 0.7, 0.4, 0.3]
    grounded = [True, True, False, True, False]
    p, r = F.precision_recall(scores, grounded, 0.75)
    assert p == Rate(2, 2) and r == Rate(2, 3)
    choice = F.choose_threshold(scores, grounded, 0.75)
    assert choice.met and choice.threshold == 0.4 and choice.precision == Rate(3, 4)
    assert F.choose_threshold(scores, grounded, 1.0).threshold == 0.8
    none = F.choose_threshold([0.5, 0.4], [False, False], 0.5)
    assert not none.met and "misses" in str(none)
    mixed = F.choose_threshold([0.9, 0.5, 0.2], [False, True, True], 0.9)
    assert not mixed.met and mixed.threshold == 0.2 and mixed.precision == Rate(2, 3)  # best it can do
    assert F.gate(["a", "b", "c"], [0.9, 0.2, 0.5], 0.5) == ["a", F.ABSTAIN_ANSWER, "c"]
    with pytest.raises(CourseError):
        F.choose_threshold([], [], 0.9)
    with pytest.raises(CourseError):
        F.choose_threshold([0.1], [True], 1.5)
    with pytest.raises(CourseError):
        F.precision_recall([0.1], [True, False], 0.0)


def test_top_scores_rank_close_articles_higher():
    store = DocumentStore.from_articles(load_helpcentre(1))
    emb = EmbeddingRetriever(store, model=BagOfWordsEncoder())
    qs = load_helpcentre_questions(kind="verbatim", split="val")[:5] + load_helpcentre_questions(
        kind="untaught", split="val")[:5]
    scores = F.top_scores(emb, qs)
    assert len(scores) == 10 and all(isinstance(s, float) for s in scores)
    assert sum(scores[:5]) > sum(scores[5:])  # the verbatim wording is close to its article


# --------------------------------------------------------------------------- the update
def test_time_update_moves_database_and_index(tmp_path):
    conn = open_facts_db(tmp_path / "facts.sqlite")
    store = DocumentStore.from_articles(load_helpcentre(1))
    bm25, emb = KeywordRetriever(store), EmbeddingRetriever(store, model=BagOfWordsEncoder())
    bm25.search("warm up", k=1)
    emb.search("warm up", k=1)
    assert emb.refresh() is False  # nothing changed yet
    times = F.time_update(conn, store, {"BM25": bm25, "MiniLM": emb}, helpcentre_changes())
    assert len(times.statements) == len(times.changed_articles) == 7
    assert set(times.reindex_seconds) == {"BM25", "MiniLM"} and times.sql_seconds >= 0
    assert times.re_embedded == 7  # only the changed notes are encoded again
    assert conn.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'pro'").fetchone()[0] == 55
    conn.close()


# --------------------------------------------------------------------------- sentences and plots
def test_paired_verdict_says_which_way_or_within_the_noise():
    a, b = [True] * 8 + [False] * 2, [False] * 10
    assert "A beats B on x beyond the noise" in F.paired_verdict(a, b, "A", "B", "x")
    assert F.paired_verdict(b, a, "A", "B", "x").startswith("B beats A on x beyond the noise")
    assert "within the noise" in F.paired_verdict([True, False], [False, True], "A", "B", "x")
    assert "80%" in F.paired_verdict(a, b, "A", "B", "x")


def test_retrieval_verdicts_and_plots():
    qs = F.lesson_questions("val", per_kind={"verbatim": 6, "paraphrase": 6})
    ranks = {"BM25": [1] * 6 + [None] * 6, "MiniLM": [1] * 12}
    lines = F.retrieval_verdicts(ranks, qs, k=1)
    assert len(lines) == 3 and lines[0].startswith("verbatim:")
    assert "paraphrase: MiniLM leads" in lines[1] and "BM25 0% (beyond the noise)" in lines[1]
    rows = [{"retriever": name, "kind": kind, "n": 6, "hit@1": 0.5, "hit@5": 1.0, "chance@1": 0.01,
             "chance@5": 0.05} for name in ranks for kind in ("verbatim", "paraphrase")]
    assert len(F.plot_hit_rates(rows).axes) == 2
    fig = F.plot_accuracy_by_route({"closed": {"verbatim": Rate(1, 10)}, "RAG": {"verbatim": Rate(8, 10)}})
    assert len(fig.axes) == 1


# --------------------------------------------------------------------------- graders' cases
def test_hit_and_mrr_cases_agree_with_a_plain_reading():
    for (ranked, gold, k), expected in F.hit_cases():
        assert expected == (gold in ranked[:k])
    for (rankings, golds), expected in F.mrr_cases():
        manual = [1 / (r.index(g) + 1) if g in r else 0.0 for r, g in zip(rankings, golds, strict=True)]
        assert expected == pytest.approx(sum(manual) / len(manual))
        assert expected == mean_reciprocal_rank(rankings, golds)
    assert len(F.hit_cases()) > 30 and {e for _, e in F.hit_cases()} == {True, False}


def test_rrf_and_threshold_cases():
    for (rankings, k), expected in F.rrf_cases():
        assert expected == [i for i, _ in reciprocal_rank_fusion(rankings, k=k)]
        assert sorted(expected) == sorted({i for r in rankings for i in r})
    cases = F.threshold_cases()
    assert any(e is None for _, e in cases) and any(e is not None for _, e in cases)
    for (scores, grounded, target), expected in cases:
        if expected is not None:
            assert expected in scores
            p, _ = F.precision_recall(scores, grounded, expected)
            assert p.value >= target
            lower = [s for s in scores if s < expected]
            assert all(F.precision_recall(scores, grounded, s)[0].value < target for s in lower)


def test_prompt_exercise_questions():
    qs = F.prompt_exercise_questions()
    assert len(qs) == 40 and {q.kind for q in qs} == set(F.TILLWISE_KINDS)
    assert all(q.split == "test" and q.article_id for q in qs)
    assert F.prompt_exercise_questions() == qs


def test_update_rows_and_conflict_rows_count_old_and_new_values():
    from ftcourse.evals import FactReport

    qs = [q for q in load_helpcentre_questions(kind="verbatim", split="test") if q.changes_in_v2][:3]
    old = [q.answer for q in qs]  # every answer states the v1 value
    new = [qs[0].answer_v2, "I don't know.", qs[2].answer_v2]
    graded_old = FactReport(0.0, {}, outputs=old, correct=F.regrade(old, qs, 2), n=3)
    graded_new = FactReport(0.0, {}, outputs=new, correct=F.regrade(new, qs, 2), n=3)
    assert F.stale_flags(graded_old, qs) == [True] * 3 and F.stale_flags(graded_new, qs) == [False] * 3
    rows = F.update_rows({"weights": (graded_old, qs, 30.0), "database": (graded_new, qs, 0.001)})
    assert rows[0]["states the v1 value"] == Rate(3, 3) and rows[0]["right for v2"] == Rate(0, 3)
    assert rows[1]["states the v1 value"] == Rate(0, 3) and rows[1]["right for v2"] == Rate(2, 3)
    assert F.note_or_weights(graded_new, qs) == [F.FOLLOWS_NOTE, F.NEITHER, F.FOLLOWS_NOTE]
    conflict = F.conflict_rows({"old": graded_old}, qs)
    assert conflict[0][F.FOLLOWS_WEIGHTS] == Rate(3, 3) and conflict[0]["n"] == 3


def test_retrieval_display_shows_intervals_and_chance():
    from ftcourse.rag import retrieval_table

    store = DocumentStore.from_articles(load_helpcentre(1))
    qs = load_helpcentre_questions(kind="keyword", split="val")
    rows = retrieval_table(KeywordRetriever(store), qs, name="BM25")
    table = F.retrieval_display(rows)
    assert list(table.index.names) == ["retriever", "kind"]
    assert {"n", "hit@1 (95 % CI)", "hit@5 (95 % CI)", "MRR", "chance hit@5"} <= set(table.columns)
    assert table.loc[("BM25", "keyword"), "hit@5 (95 % CI)"].endswith(")")


# --------------------------------------------------------------------------- the graders of exercises 02
NB02 = "02_rag_vs_finetuning_for_facts.ipynb"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from ftcourse.models import fetch_model

    return AutoTokenizer.from_pretrained(fetch_model(verbose=False))


def _graded(exercise: bool, tok, monkeypatch) -> dict[str, str]:
    """Run solutions/02 (or its generated exercise) with stand-ins: a bag-of-words embedder, and a
    "model" that answers a prompt with notes by repeating them, and a bare question with a made-up
    value. Returns ``{grader id: ""}`` for a pass, or the failure message."""
    from pathlib import Path

    import nbformat

    from ftcourse import rag
    from ftcourse.classroom import exercises as E

    monkeypatch.setattr(rag, "load_embedder", lambda device="cpu": BagOfWordsEncoder())

    def fake(model, tok, prompts, **kwargs):
        return [" ".join(m["content"] for m in p) if isinstance(p, list) else "It costs $1,234." for p in prompts]

    monkeypatch.setattr(chat, "generate_batch", fake)
    path = Path(__file__).resolve().parents[1] / "solutions" / NB02
    nb = nbformat.read(path, as_version=4)
    if exercise:
        nb = E.make_exercise(nb, NB02)
    ns: dict = {}
    outcomes = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source.replace("model, tok = load_model()", "model = None")
        ns["tok"] = tok
        grader = cell.metadata.get("grader", {}).get("id")
        try:
            exec(source, ns)  # noqa: S102 - our own notebook cells
            if grader:
                outcomes[grader] = ""
        except (AssertionError, NotImplementedError) as exc:
            if grader:
                outcomes[grader] = f"{type(exc).__name__}: {exc}"
    return outcomes


def test_02_graders_pass_on_the_solution_and_fail_on_the_exercise(tok, monkeypatch):
    solved = _graded(False, tok, monkeypatch)
    assert solved == {"ex02-hit-and-mrr": "", "ex02-rrf": "", "ex02-threshold": "", "ex02-rag-prompt": ""}
    unsolved = _graded(True, tok, monkeypatch)
    assert set(unsolved) == set(solved) and all(unsolved.values()), unsolved


def test_exposures_replay_the_training_order():
    rows = load_helpcentre_training(paraphrases=1)
    counts = F.exposures(rows, steps=9, batch_size=8)   # 65 rows: 9 batches are one epoch (8 x 8 + 1)
    assert set(counts) == {r["fact_id"] for r in rows} and set(counts.values()) == {1}
    five = F.exposures(load_helpcentre_training(paraphrases=5), steps=3, batch_size=8)
    assert sum(five.values()) == 24 and len(five) == 65
