"""Lesson 02's measurements: where a fact lives (weights, retrieval, a database) and what that costs.

The lesson asks the same help-centre questions of every route and grades the answers the same way
(``ftcourse.evals``). This module holds what the notebook would otherwise repeat:

* ``lesson_questions``: the questions of a split, or a fixed sample of each kind (``FAST``);
* ``ask``: one generation pass over questions with a prompt built per question (closed book, top-k
  notes, the gold note, database rows: ``retrieval_prompt``, ``gold_note_prompt``, ``database_prompt``);
* ``outcomes`` / ``outcome_rows``: right, "I don't know" or wrong, per setup and question group;
* ``context_hits`` / ``database_hits`` / ``failure_rows``: was the answer in what the model was shown?
  A wrong answer is then a *retrieval miss* (it was not) or an *answer miss* (it was);
* ``top_scores`` / ``precision_recall`` / ``choose_threshold`` / ``gate``: an abstention threshold
  picked on validation questions and applied to test questions;
* ``time_update`` / ``update_rows`` / ``conflict_rows``: the v1 -> v2 update of the database and of
  the retrieval index, timed; how often each route still states an old value; and whether a tuned
  model follows a new note or its weights;
* ``paired_verdict`` / ``retrieval_verdicts``: sentences computed from the numbers, so the lesson's
  prose says what this run measured (and what it did not), on any model and device;
* tables and plots: ``as_table``, ``retrieval_display``, ``plot_hit_rates``, ``plot_accuracy_by_route``,
  ``plot_outcomes``;
* the cases the graders of ``solutions/02_rag_vs_finetuning_for_facts.ipynb`` use.

>>> from ftcourse.facts_lab import lesson_questions, ask, retrieval_prompt
>>> test = lesson_questions("test", per_kind={"verbatim": 16, "untaught": 10})
>>> report = ask(model, tok, test, prompt=retrieval_prompt(retriever, k=3))   # a FactReport
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .datasets import facts_by_id
from .errors import CourseError
from .evals import FactReport, abstains, evaluate_facts, fact_is_correct, grade_fact_answer
from .rag import (
    HELP_QUESTION_KINDS,
    EmbeddingRetriever,
    HelpQuestion,
    gold_article,
    hit_at_k,
    load_helpcentre_questions,
    mean_reciprocal_rank,
    question_facts,
    rag_prompt,
    reciprocal_rank_fusion,
)
from .stats import Rate, beats_paired

TILLWISE_KINDS = ("verbatim", "paraphrase", "keyword", "reversed")  # a help-centre article answers them
GROUPS = {"with an article": TILLWISE_KINDS, "untaught": ("untaught",), "general knowledge": ("known",)}
RIGHT, DONT_KNOW, WRONG = "right", "I don't know", "wrong"
OUTCOMES = (RIGHT, DONT_KNOW, WRONG)
RETRIEVAL_MISS, ANSWER_MISS = "retrieval miss", "answer miss"
ABSTAIN_ANSWER = "I don't know: no help-centre article is close enough to this question."


# --------------------------------------------------------------------------- questions
def lesson_questions(split: str = "test", per_kind: Mapping[str, int] | None = None,
                     seed: int = 0) -> list[HelpQuestion]:
    """The help-centre questions of ``split``; with ``per_kind``, a fixed sample of each kind.

    ``per_kind`` maps a kind to how many questions to keep (kinds it leaves out are dropped). The
    sample keeps verbatim and paraphrase questions *about the same facts*, so the two can be compared
    question by question, and it takes first the facts the v2 update changes, then the facts in the
    database, then others at random (``seed``): the later sections need those. Questions come back
    grouped by kind, in file order within a kind.
    """
    questions = load_helpcentre_questions(split=split)
    if per_kind is None:
        return questions
    unknown = sorted(set(per_kind) - set(HELP_QUESTION_KINDS))
    if unknown:
        raise CourseError(f"Unknown question kind(s) {unknown}; use {', '.join(HELP_QUESTION_KINDS)}.")
    rng = random.Random(seed)
    tiebreak = {q.id: rng.random() for q in questions}

    def rank(q: HelpQuestion) -> tuple:
        return (not q.changes_in_v2, not q.in_db, tiebreak[q.id])

    keep: set[str] = set()
    paired = [k for k in ("verbatim", "paraphrase") if k in per_kind]
    if paired:
        n_facts = max(per_kind[k] for k in paired)
        both = {q.fact for q in questions if q.kind == "verbatim"} & {q.fact for q in questions
                                                                      if q.kind == "paraphrase"}
        firsts = sorted((q for q in questions if q.kind == paired[0] and q.fact in both), key=rank)
        facts = {q.fact for q in firsts[:n_facts]}
        keep |= {q.id for q in questions if q.kind in paired and q.fact in facts}
    for kind, n in per_kind.items():
        if kind not in paired:
            keep |= {q.id for q in sorted((q for q in questions if q.kind == kind), key=rank)[:n]}
    return [q for kind in HELP_QUESTION_KINDS for q in questions if q.kind == kind and q.id in keep]


def exposures(rows: Sequence[dict], steps: int, batch_size: int, seed: int = 0) -> dict[str, int]:
    """How many training rows of each fact ``train_lora`` draws in ``steps`` steps of ``batch_size``
    (the same shuffled order, ``ftcourse.lora.batch_stream`` with ``seed``): ``{fact_id: count}``."""
    from .lora.data import batch_stream

    counts = {row["fact_id"]: 0 for row in rows}
    stream = batch_stream(len(rows), batch_size, seed=seed)
    for _ in range(steps):
        for i in next(stream):
            counts[rows[i]["fact_id"]] += 1
    return counts


def select(values: Sequence, questions: Sequence, kinds: Sequence[str] | None = None,
           where: Callable | None = None) -> list:
    """The ``values`` (one per question) of the questions of ``kinds`` (all if ``None``) that ``where`` keeps."""
    if len(values) != len(questions):
        raise CourseError(f"{len(values)} values for {len(questions)} questions; pass one per question.")
    return [v for v, q in zip(values, questions, strict=True)
            if (kinds is None or q.kind in kinds) and (where is None or where(q))]


def paired_by_fact(flags: Sequence[bool], questions: Sequence, kind_a: str, kind_b: str) -> tuple[list, list]:
    """``(a, b)``: the outcomes of the ``kind_a`` and ``kind_b`` questions about the same facts,
    aligned fact by fact (for ``beats_paired``: "verbatim against paraphrase, fact by fact")."""
    a = {q.fact: f for f, q in zip(flags, questions, strict=True) if q.kind == kind_a}
    b = {q.fact: f for f, q in zip(flags, questions, strict=True) if q.kind == kind_b}
    common = [fact for fact in a if fact in b]
    return [a[f] for f in common], [b[f] for f in common]


def rates_by(flags: Sequence[bool], questions: Sequence, kinds: Sequence[str] | None = None) -> dict[str, Rate]:
    """``{kind: Rate}`` of a yes/no outcome per question (kinds in first-seen order), plus ``"all"``."""
    picked = [(bool(f), q.kind) for f, q in zip(flags, questions, strict=True) if kinds is None or q.kind in kinds]
    out = {kind: Rate.from_flags(f for f, k in picked if k == kind) for kind in dict.fromkeys(k for _, k in picked)}
    out["all"] = Rate.from_flags(f for f, _ in picked)
    return out


# --------------------------------------------------------------------------- asking the model
def ask(model, tok, questions: Sequence[HelpQuestion], prompt: Callable | None = None, version: int = 1,
        max_new_tokens: int = 32, system: str | bool | None = False) -> FactReport:
    """One greedy pass over ``questions``, graded against help centre ``version``.

    ``prompt(question) -> messages`` builds each prompt from the question object (it sees the gold
    article id, the kind, ...); without it the bare question is asked (closed book). ``system=False``
    leaves the chat template's default system turn out, as in training.
    """
    questions = list(questions)
    prompts: dict[str, object] = {}
    for q in questions:
        built = prompt(q) if prompt is not None else q.question
        if q.question in prompts and prompts[q.question] != built:
            raise CourseError(f"Two questions read {q.question!r} but get different prompts.")
        prompts[q.question] = built
    return evaluate_facts(model, tok, questions, question_facts(questions, version), context_fn=prompts.__getitem__,
                          max_new_tokens=max_new_tokens, system=system, progress=False)


def retrieval_prompt(retriever, k: int = 3) -> Callable[[HelpQuestion], list[dict]]:
    """Prompts with the top ``k`` notes ``retriever`` finds for each question (RAG)."""
    return lambda q: rag_prompt(q.question, retriever.search(q.question, k=k))


def gold_note_prompt(store) -> Callable[[HelpQuestion], list[dict]]:
    """Prompts with the question's own article from ``store`` (as it reads now), whatever a retriever
    would find: retrieval made perfect, to test what the model does with the right note."""
    return lambda q: rag_prompt(q.question, [store.get(q.article_id)] if q.article_id in store else [])


def database_prompt(conn) -> Callable[[HelpQuestion], list[dict]]:
    """Prompts with the rows the facts database's ``lookup`` returns, written as sentences."""
    from .factsdb import lookup_notes

    return lambda q: rag_prompt(q.question, lookup_notes(conn, q.question))


def regrade(outputs: Sequence[str], questions: Sequence[HelpQuestion], version: int = 1) -> list[bool]:
    """Grade answers that already exist against help centre ``version`` (e.g. gated answers)."""
    sheet = facts_by_id(question_facts(questions, version))
    return [grade_fact_answer(o, q, sheet) for o, q in zip(outputs, questions, strict=True)]


# --------------------------------------------------------------------------- right, I don't know, wrong
def outcome_of(answer: str, correct: bool, answerable: bool) -> str:
    """``RIGHT``, ``DONT_KNOW`` or ``WRONG``. For a question no article answers, "I don't know" is the
    right reply and any other answer is wrong; for the others an abstention is neither right nor wrong."""
    if answerable and correct:
        return RIGHT
    return DONT_KNOW if abstains(answer) else WRONG


def outcomes(outputs: Sequence[str], correct: Sequence[bool], questions: Sequence) -> list[str]:
    """``outcome_of`` for every answer (a question is answerable when it has a ``fact_id``)."""
    return [outcome_of(o, c, q.fact_id is not None) for o, c, q in zip(outputs, correct, questions, strict=True)]


def _answers(result) -> tuple[list[str], list[bool]]:
    if isinstance(result, FactReport):
        return list(result.outputs), list(result.correct)
    outputs, correct = result
    return list(outputs), list(correct)


def outcome_rows(setups: Mapping[str, object], questions: Sequence,
                 groups: Mapping[str, Sequence[str]] = GROUPS) -> list[dict]:
    """One row per setup and question group: ``n`` and the share of each outcome as a ``Rate``.

    ``setups`` maps a name to a ``FactReport`` or to ``(outputs, correct)`` over ``questions``; a
    group with no question is skipped.
    """
    rows = []
    for name, result in setups.items():
        outputs, correct = _answers(result)
        marks = outcomes(outputs, correct, questions)
        for group, kinds in groups.items():
            picked = select(marks, questions, kinds)
            if picked:
                rows.append({"setup": name, "questions": group, "n": len(picked),
                             **{o: Rate.of(picked.count(o), len(picked)) for o in OUTCOMES}})
    return rows


def constant_answers(text: str, questions: Sequence[HelpQuestion], version: int = 1) -> tuple[list[str], list[bool]]:
    """``(outputs, correct)`` of answering ``text`` to every question: the trivial baseline
    (``ABSTAIN_ANSWER`` scores exactly the untaught questions)."""
    outputs = [text] * len(questions)
    return outputs, regrade(outputs, questions, version)


# --------------------------------------------------------------------------- was the answer in the context?
def context_hits(retriever, questions: Sequence, k: int) -> list[bool]:
    """Per question: is its own article among the ``k`` notes ``retriever.search`` shows the model?
    (``False`` for questions no article answers.)"""
    return [gold_article(q) is not None and
            any(n.id == gold_article(q) for n, _ in retriever.search(q.question, k=k)) for q in questions]


def database_hits(conn, questions: Sequence[HelpQuestion], version: int = 1) -> list[bool]:
    """Per question: do the rows ``lookup`` returns hold the answer's keywords? ``False`` is a
    routing miss: no row, or not the row that answers it."""
    from .factsdb import lookup_notes

    sheet = facts_by_id(question_facts(questions, version))
    return [q.fact_id in sheet and fact_is_correct(" ".join(lookup_notes(conn, q.question)), sheet[q.fact_id])
            for q in questions]


def failure_split(correct: Sequence[bool], hits: Sequence[bool]) -> list[str]:
    """``RIGHT``; ``RETRIEVAL_MISS`` (wrong, and the answer was not in the context: fix the search);
    ``ANSWER_MISS`` (wrong although it was: fix the prompt or the model)."""
    return [RIGHT if c else (ANSWER_MISS if h else RETRIEVAL_MISS) for c, h in zip(correct, hits, strict=True)]


def failure_rows(setups: Mapping[str, tuple[Sequence[bool], Sequence[bool]]], questions: Sequence,
                 kinds: Sequence[str] = TILLWISE_KINDS) -> list[dict]:
    """Per setup (``{name: (correct, hits)}``) and kind, plus ``all``: the share right, missed by the
    retrieval and missed by the answer, each a ``Rate``."""
    rows = []
    for name, (correct, hits) in setups.items():
        split = failure_split(correct, hits)
        for kind in [*[k for k in kinds if any(q.kind == k for q in questions)], "all"]:
            picked = select(split, questions, kinds if kind == "all" else (kind,))
            rows.append({"setup": name, "kind": kind, "n": len(picked),
                         **{c: Rate.of(picked.count(c), len(picked)) for c in (RIGHT, RETRIEVAL_MISS, ANSWER_MISS)}})
    return rows


# --------------------------------------------------------------------------- abstention threshold
def top_scores(retriever, questions: Sequence) -> list[float]:
    """The score of the best note for each question (for an embedding retriever: the cosine of the
    closest article); 0.0 when the retriever finds nothing."""
    out = []
    for q in questions:
        hits = retriever.search(q.question, k=1)
        out.append(float(hits[0][1]) if hits else 0.0)
    return out


def precision_recall(scores: Sequence[float], grounded: Sequence[bool], threshold: float) -> tuple[Rate, Rate]:
    """Answer a question only when its score is at least ``threshold``.

    Precision: of the questions answered, the share that are *grounded* (their article is among the
    notes shown). Recall: of the grounded questions, the share answered. Both are ``Rate``s.
    """
    if len(scores) != len(grounded):
        raise CourseError(f"{len(scores)} scores for {len(grounded)} grounded flags; pass one of each per question.")
    answered = [s >= threshold for s in scores]
    good = sum(1 for a, g in zip(answered, grounded, strict=True) if a and g)
    return Rate.of(good, sum(answered)), Rate.of(good, sum(bool(g) for g in grounded))


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    target: float
    precision: Rate
    recall: Rate
    met: bool  # the validation precision reached the target

    def __str__(self) -> str:
        verdict = "meets" if self.met else "misses"
        return (f"threshold {self.threshold:.3f} ({verdict} the {self.target:.0%} target): precision "
                f"{self.precision}, recall {self.recall}")


def choose_threshold(scores: Sequence[float], grounded: Sequence[bool], target: float) -> ThresholdChoice:
    """The lowest threshold (among the observed scores) whose precision reaches ``target``: the one
    that answers the most questions at that precision. If no threshold reaches it, the one with the
    highest precision (``met=False``). Pick it on validation questions, report it on test ones."""
    if not scores:
        raise CourseError("No scores to choose a threshold from; pass one score per validation question.")
    if not 0 < target <= 1:
        raise CourseError(f"A precision target is a share above 0 and at most 1, got {target}.")
    candidates = sorted({float(s) for s in scores})
    best = None
    for t in candidates:
        precision, recall = precision_recall(scores, grounded, t)
        if precision.n and precision.value >= target:
            return ThresholdChoice(t, target, precision, recall, True)
        if best is None or (precision.n and precision.value > best.precision.value):
            best = ThresholdChoice(t, target, precision, recall, False)
    return best


def gate(outputs: Sequence[str], scores: Sequence[float], threshold: float,
         answer: str = ABSTAIN_ANSWER) -> list[str]:
    """Replace the answer of every question scored below ``threshold`` with "I don't know": in a real
    system the model is then not called at all."""
    return [o if s >= threshold else answer for o, s in zip(outputs, scores, strict=True)]


# --------------------------------------------------------------------------- the update, timed
@dataclass
class UpdateTimes:
    statements: list[str]  # the SQL that ran
    sql_seconds: float
    changed_articles: list[str]
    reindex_seconds: dict[str, float] = field(default_factory=dict)  # per retriever
    re_embedded: int = 0  # notes the embedding retriever encoded again


def time_update(conn, store, retrievers: Mapping[str, object], articles: Sequence, version: int = 2) -> UpdateTimes:
    """Move the facts database (``update_facts_db``) and the help-centre ``store`` (``apply_articles``)
    to ``version`` and time each step: the SQL, then each retriever's re-index (for an embedding
    retriever, encoding the changed notes: the others are cached)."""
    from .factsdb import update_facts_db

    t0 = time.perf_counter()
    statements = update_facts_db(conn, version)
    sql_seconds = time.perf_counter() - t0
    changed = store.apply_articles(articles)
    times = UpdateTimes(statements, sql_seconds, changed)
    for name, retriever in retrievers.items():
        before = getattr(retriever, "encoded", 0)
        t0 = time.perf_counter()
        retriever.refresh()
        times.reindex_seconds[name] = time.perf_counter() - t0
        if isinstance(retriever, EmbeddingRetriever):
            times.re_embedded += retriever.encoded - before
    return times


def stale_flags(report: FactReport, questions: Sequence[HelpQuestion]) -> list[bool]:
    """Per question whose answer the update changed: does the answer state the v1 value and not the v2
    one? (``ftcourse.lora.stale_answers`` with the two answer sheets of ``questions``.)"""
    from .lora.lab import stale_answers

    return stale_answers(report.outputs, questions, question_facts(questions, 1), question_facts(questions, 2))


def update_rows(routes: Mapping[str, tuple[FactReport, Sequence[HelpQuestion], float]]) -> list[dict]:
    """One row per route after the update, from ``{name: (report graded on v2, questions, seconds the
    update cost)}``: the share of answers that still state the v1 value, and the share right for v2."""
    return [{"route": name, "update cost (s)": round(seconds, 4), "n": len(qs),
             "states the v1 value": Rate.from_flags(stale_flags(report, qs)),
             "right for v2": Rate.from_flags(report.correct)}
            for name, (report, qs, seconds) in routes.items()]


FOLLOWS_NOTE, FOLLOWS_WEIGHTS, NEITHER = "follows the note (v2 value)", "follows its weights (v1 value)", "neither"


def note_or_weights(report: FactReport, questions: Sequence[HelpQuestion]) -> list[str]:
    """For answers given with the v2 note in the prompt (graded on v2): ``FOLLOWS_NOTE`` when the
    answer states the note's value, ``FOLLOWS_WEIGHTS`` when it states the old value, else ``NEITHER``."""
    stale = stale_flags(report, questions)
    return [FOLLOWS_NOTE if c else (FOLLOWS_WEIGHTS if s else NEITHER)
            for c, s in zip(report.correct, stale, strict=True)]


def conflict_rows(setups: Mapping[str, FactReport], questions: Sequence[HelpQuestion]) -> list[dict]:
    """Per setup: how often the answer follows the note, the weights, or neither (each a ``Rate``)."""
    rows = []
    for name, report in setups.items():
        marks = note_or_weights(report, questions)
        rows.append({"setup": name, "n": len(marks),
                     **{m: Rate.of(marks.count(m), len(marks)) for m in (FOLLOWS_NOTE, FOLLOWS_WEIGHTS, NEITHER)}})
    return rows


# --------------------------------------------------------------------------- sentences from numbers
def paired_verdict(a: Sequence[bool], b: Sequence[bool], a_name: str, b_name: str, what: str) -> str:
    """One sentence comparing two setups on the same questions (an exact sign test, one-sided each way)."""
    ra, rb = Rate.from_flags(a), Rate.from_flags(b)
    if beats_paired(a, b):
        head = f"{a_name} beats {b_name} on {what} beyond the noise"
    elif beats_paired(b, a):
        head = f"{b_name} beats {a_name} on {what} beyond the noise"
    else:
        head = f"{a_name} and {b_name} are within the noise of each other on {what}"
    return f"{head}: {ra} against {rb} (the same questions, paired sign test)."


def retrieval_verdicts(ranks: Mapping[str, Sequence[int | None]], questions: Sequence, k: int = 1) -> list[str]:
    """Per kind (and over all): which retriever puts the right article in its top ``k`` most often,
    and whether its lead over each other retriever is beyond the noise (paired sign test)."""
    lines = []
    kinds = [*dict.fromkeys(q.kind for q in questions), "all"]
    for kind in kinds:
        flags = {name: select([r is not None and r <= k for r in rs], questions, None if kind == "all" else (kind,))
                 for name, rs in ranks.items()}
        leader = max(flags, key=lambda name: sum(flags[name]))
        others = []
        for name, f in flags.items():
            if name != leader:
                beyond = "beyond the noise" if beats_paired(flags[leader], f) else "within the noise"
                others.append(f"{name} {Rate.from_flags(f).value:.0%} ({beyond})")
        lines.append(f"{kind}: {leader} leads hit@{k} with {Rate.from_flags(flags[leader])}; "
                     + ", ".join(others) + ".")
    return lines


def as_table(rows: Sequence[dict], index: str | Sequence[str] | None = None):
    """A pandas table of ``rows`` with every ``Rate`` written as text (share, n and 95 % interval)."""
    import pandas as pd

    frame = pd.DataFrame([{k: (str(v) if isinstance(v, Rate) else v) for k, v in row.items()} for row in rows])
    return frame.set_index(index) if index is not None else frame


def retrieval_display(rows: Sequence[dict], ks: Sequence[int] = (1, 5)):
    """``retrieval_table`` rows as a readable table: hit@k with its 95 % interval, MRR, and the chance
    rates (k articles drawn at random) beside them."""
    import pandas as pd

    out = []
    for r in rows:
        row = {"retriever": r["retriever"], "kind": r["kind"], "n": r["n"]}
        for k in ks:
            row[f"hit@{k} (95 % CI)"] = f"{r[f'hit@{k}']:.0%} ({r[f'hit@{k} low']:.0%}-{r[f'hit@{k} high']:.0%})"
        row["MRR"] = round(r["MRR"], 3)
        for k in ks:
            row[f"chance hit@{k}"] = f"{r[f'chance@{k}']:.1%}"
        row["chance MRR"] = round(r["chance MRR"], 3)
        out.append(row)
    return pd.DataFrame(out).set_index(["retriever", "kind"])


# --------------------------------------------------------------------------- plots
def _bars(ax, groups: Sequence[str], series: Mapping[str, Sequence], width_total: float = 0.8) -> None:
    """Grouped bars: one group per x position, one bar per series; values are ``Rate``s or shares
    (a ``Rate`` also draws its 95 % interval)."""
    width = width_total / max(len(series), 1)
    for j, (name, cells) in enumerate(series.items()):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        vals = [float(c) for c in cells]
        err = None
        if all(isinstance(c, Rate) for c in cells):
            err = [[max(0.0, c.value - c.low) for c in cells], [max(0.0, c.high - c.value) for c in cells]]
        ax.bar(xs, vals, width, label=name, yerr=err, capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)


def plot_hit_rates(rows: Sequence[dict], ks: Sequence[int] = (1, 5)):
    """hit@k by question kind, one bar per retriever (rows of ``retrieval_table`` for several
    retrievers), with 95 % intervals and the chance rate of drawing k articles at random."""
    import matplotlib.pyplot as plt

    retrievers = list(dict.fromkeys(r["retriever"] for r in rows))
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    cell = {(r["retriever"], r["kind"]): r for r in rows}
    fig, axes = plt.subplots(1, len(ks), figsize=(5.2 * len(ks), 3.4), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        series = {name: [Rate.of(round(cell[(name, kind)][f"hit@{k}"] * cell[(name, kind)]["n"]),
                                 cell[(name, kind)]["n"]) for kind in kinds] for name in retrievers}
        _bars(ax, kinds, series)
        ax.axhline(rows[0][f"chance@{k}"], ls="--", color="grey", lw=1, label=f"chance ({rows[0][f'chance@{k}']:.1%})")
        ax.set_title(f"right article in the top {k}", fontsize=10)
        ax.set_ylabel(f"hit@{k}")
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def plot_accuracy_by_route(table: Mapping[str, Mapping[str, object]], kinds: Sequence[str] | None = None,
                           title: str = "Answers right, by where the fact lives and how it is asked"):
    """Grouped bars: ``{route: {kind: Rate}}``, one group per kind, one bar per route, 95 % intervals."""
    import matplotlib.pyplot as plt

    kinds = list(kinds or dict.fromkeys(k for v in table.values() for k in v))
    fig, ax = plt.subplots(figsize=(8.4, 3.6))
    _bars(ax, kinds, {route: [cells.get(k, Rate.of(0, 0)) for k in kinds] for route, cells in table.items()})
    ax.set_ylabel("share of answers right")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


_OUTCOME_COLOURS = {RIGHT: "tab:green", DONT_KNOW: "tab:grey", WRONG: "tab:red"}


def plot_outcomes(rows: Sequence[dict], title: str = "Right, \"I don't know\" and wrong answers"):
    """Stacked horizontal bars of ``outcome_rows``: one bar per setup and question group."""
    import matplotlib.pyplot as plt

    labels = [f"{r['setup']} | {r['questions']} (n={r['n']})" for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(8.4, 0.38 * len(rows) + 1.2))
    left = [0.0] * len(rows)
    for outcome in OUTCOMES:
        vals = [float(r[outcome]) for r in rows][::-1]
        ax.barh(labels, vals, left=left, color=_OUTCOME_COLOURS[outcome], label=outcome)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- cases for the graders
def _ids(n: int) -> list[str]:
    return [f"a{i:02d}" for i in range(n)]


def hit_cases(seed: int = 0, n: int = 30) -> list[tuple[tuple, bool]]:
    """``((ranked_ids, gold_id, k), expected)`` for a learner's hit@k: the gold article first, deep,
    absent, an empty ranking, k beyond the list; expected values from ``ftcourse.rag.hit_at_k``."""
    rng = random.Random(seed)
    fixed = [(["a", "b", "c"], "a", 1), (["a", "b", "c"], "b", 1), (["a", "b", "c"], "c", 3),
             (["a", "b", "c"], "z", 5), ([], "a", 1), (["a", "b"], "b", 10)]
    for _ in range(n):
        ranked = rng.sample(_ids(12), rng.randint(0, 8))
        fixed.append((ranked, rng.choice(_ids(12)), rng.randint(1, 6)))
    return [((r, g, k), hit_at_k(r, g, k)) for r, g, k in fixed]


def mrr_cases(seed: int = 0, n: int = 20) -> list[tuple[tuple, float]]:
    """``((rankings, gold_ids), expected)`` for a learner's MRR (mean of 1 / rank, 0 when absent)."""
    rng = random.Random(seed + 1)
    fixed = [([["a", "b"]], ["a"]), ([["a", "b"]], ["b"]), ([["a", "b"], ["c"]], ["b", "z"]),
             ([[], ["x", "y", "z"]], ["x", "z"])]
    for _ in range(n):
        m = rng.randint(1, 6)
        rankings = [rng.sample(_ids(10), rng.randint(0, 7)) for _ in range(m)]
        fixed.append((rankings, [rng.choice(_ids(10)) for _ in range(m)]))
    return [((r, g), mean_reciprocal_rank(r, g)) for r, g in fixed]


def rrf_cases(seed: int = 0, n: int = 20) -> list[tuple[tuple, list[str]]]:
    """``((rankings, k), expected_ids)`` for a learner's reciprocal rank fusion, best first, ties in
    the order the ids were first seen; expected values from ``ftcourse.rag.reciprocal_rank_fusion``."""
    rng = random.Random(seed + 2)
    fixed = [([["a", "b", "c"], ["b", "c"]], 60), ([["a", "b"], ["b", "a"]], 60), ([["x"], [], ["y"]], 60),
             ([["a", "b", "c"], ["c", "b", "a"]], 0), ([["a", "b", "c", "d"], ["d"]], 1)]
    for _ in range(n):
        rankings = [rng.sample(_ids(9), rng.randint(0, 6)) for _ in range(rng.randint(1, 3))]
        fixed.append((rankings, rng.choice([0, 1, 10, 60])))
    return [((r, k), [i for i, _ in reciprocal_rank_fusion(r, k=k)]) for r, k in fixed]


def threshold_cases(seed: int = 0, n: int = 25) -> list[tuple[tuple, float | None]]:
    """``((scores, grounded, target), expected)`` for a learner's threshold picker: the lowest observed
    score whose precision reaches ``target``, or ``None`` when none does."""
    rng = random.Random(seed + 3)
    fixed = [([0.9, 0.8, 0.3], [True, True, False], 0.9), ([0.9, 0.8, 0.3], [True, True, False], 0.6),
             ([0.5, 0.5, 0.2], [True, False, True], 0.6), ([0.4, 0.3], [False, False], 0.5),
             ([0.2, 0.9, 0.6, 0.7], [True, True, False, True], 1.0), ([0.1, 0.2], [True, True], 0.95)]
    for _ in range(n):
        m = rng.randint(2, 12)
        scores = [round(rng.random(), 2) for _ in range(m)]
        fixed.append((scores, [rng.random() < s + 0.1 for s in scores], rng.choice([0.5, 0.7, 0.8, 0.9])))
    out = []
    for scores, grounded, target in fixed:
        choice = choose_threshold(scores, grounded, target)
        out.append(((scores, grounded, target), choice.threshold if choice.met else None))
    return out


def prompt_exercise_questions(per_kind: int = 10, seed: int = 7) -> list[HelpQuestion]:
    """The 40 test questions of exercise 02.4: ``per_kind`` verbatim, paraphrase, keyword and reversed."""
    rng = random.Random(seed)
    out = []
    for kind in TILLWISE_KINDS:
        pool = load_helpcentre_questions(kind=kind, split="test")
        out += rng.sample(pool, min(per_kind, len(pool)))
    return out
