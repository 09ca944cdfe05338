"""Measure the model: ticket-format compliance, label accuracy, cost per request, and fact accuracy.

Format checks are strict on purpose. A triage answer counts as compliant only if the *whole* answer
(after trimming spaces) is one JSON object with exactly the keys ``category`` and ``urgency``, each
holding a label of the house taxonomy; "almost JSON" is a failure. The key order (``category`` first)
is a *house rule* of the Tillwise format, not a JSON rule: JSON objects are unordered (RFC 8259) and
any parser accepts either order. Tillwise keeps one order so that answers diff, log and cache
byte-for-byte; a checker for another team's format may well drop that rule.

>>> from ftcourse.evals import check_ticket_format
>>> check_ticket_format('{"category": "billing", "urgency": "high"}').ok
True
>>> check_ticket_format('Sure! {"category": "billing", "urgency": "high"}').ok
False
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .datasets import TAXONOMY, Fact, FactQuestion, Ticket, facts_by_id
from .errors import CourseError
from .stats import Rate

SCHEMA_KEYS = ["category", "urgency"]


# --------------------------------------------------------------------------- format
@dataclass(frozen=True)
class FormatCheck:
    valid_json: bool  # the whole answer parses as one JSON object
    exact_schema: bool  # exactly the keys "category", "urgency", in the house order, with string values
    allowed_labels: bool  # both values are labels of the taxonomy

    @property
    def ok(self) -> bool:
        return self.valid_json and self.exact_schema and self.allowed_labels

    @property
    def problem(self) -> str:
        """A short reason the answer fails, or "" if it passes."""
        if not self.valid_json:
            return "not a JSON object"
        if not self.exact_schema:
            return "wrong keys"
        if not self.allowed_labels:
            return "unknown label"
        return ""


def _load_object(text: str) -> dict | None:
    """The answer as a dict if the whole (stripped) text is one JSON object with no repeated keys."""
    pairs_seen: list[list[tuple]] = []

    def hook(pairs):
        pairs_seen.append(pairs)
        return dict(pairs)

    try:
        obj = json.loads(text.strip(), object_pairs_hook=hook)
    except (json.JSONDecodeError, TypeError, AttributeError):
        return None
    if not isinstance(obj, dict):
        return None
    top = pairs_seen[-1]  # the outermost object is built last
    if len({k for k, _ in top}) != len(top):
        return None
    return obj


def check_ticket_format(text: str) -> FormatCheck:
    """Check one answer against the house format, step by step (JSON, keys, labels)."""
    obj = _load_object(text) if isinstance(text, str) else None
    if obj is None:
        return FormatCheck(False, False, False)
    exact = list(obj) == SCHEMA_KEYS and all(isinstance(obj[k], str) for k in SCHEMA_KEYS)
    allowed = exact and obj["category"] in TAXONOMY["category"] and obj["urgency"] in TAXONOMY["urgency"]
    return FormatCheck(True, exact, allowed)


def parse_ticket(text: str) -> dict | None:
    """``{"category", "urgency"}`` if the whole answer is a JSON object with exactly those keys
    (labels not checked), else ``None``. No rescue of JSON buried in other text: that is a failure."""
    obj = _load_object(text) if isinstance(text, str) else None
    if obj is None or list(obj) != SCHEMA_KEYS:
        return None
    return obj


def cannot_be_ticket_json(partial: str) -> bool:
    """True once a partial answer can no longer become compliant: its first visible character is not
    ``{``. Every ticket metric parses the whole stripped answer as one JSON object, so such an answer
    scores the same whatever follows; generation can stop there."""
    head = partial.lstrip()
    return bool(head) and not head.startswith("{")


def format_compliance(outputs: Sequence[str]) -> float:
    """Share of answers that pass ``check_ticket_format`` (0.0 to 1.0)."""
    if not outputs:
        return 0.0
    return sum(check_ticket_format(o).ok for o in outputs) / len(outputs)


# --------------------------------------------------------------------------- accuracy
def _gold(item) -> dict:
    """Gold labels from a Ticket, a labels dict, or a gold JSON string."""
    if isinstance(item, Ticket):
        return item.labels
    if isinstance(item, dict):
        return {"category": item.get("category"), "urgency": item.get("urgency")}
    if isinstance(item, str):
        parsed = parse_ticket(item)
        if parsed is None:
            raise CourseError(f"Gold answer {item!r} is not a ticket JSON object.")
        return parsed
    raise CourseError(f"Cannot read gold labels from {type(item).__name__}; pass Ticket objects.")


def _check_lengths(outputs, tickets):
    if len(outputs) != len(tickets):
        raise CourseError(f"{len(outputs)} outputs but {len(tickets)} tickets; pass one output per ticket.")


def _field_accuracy(outputs, tickets, keys) -> float:
    _check_lengths(outputs, tickets)
    if not outputs:
        return 0.0
    hits = 0
    for out, t in zip(outputs, tickets, strict=True):
        parsed, gold = parse_ticket(out), _gold(t)
        hits += parsed is not None and all(parsed[k] == gold[k] for k in keys)
    return hits / len(outputs)


def label_accuracy(outputs: Sequence[str], tickets: Sequence) -> float:
    """Share of answers that parse *and* get both labels right (unparseable answers count as wrong)."""
    return _field_accuracy(outputs, tickets, SCHEMA_KEYS)


def category_accuracy(outputs: Sequence[str], tickets: Sequence) -> float:
    """Share of answers that parse and get the category right."""
    return _field_accuracy(outputs, tickets, ["category"])


def urgency_accuracy(outputs: Sequence[str], tickets: Sequence) -> float:
    """Share of answers that parse and get the urgency right."""
    return _field_accuracy(outputs, tickets, ["urgency"])


def score_outputs(outputs: Sequence[str], tickets: Sequence) -> dict:
    """All ticket metrics for a list of answers, as a dict (handy for a table row)."""
    return {
        "n": len(outputs),
        "compliance": format_compliance(outputs),
        "accuracy": label_accuracy(outputs, tickets),
        "category_accuracy": category_accuracy(outputs, tickets),
        "urgency_accuracy": urgency_accuracy(outputs, tickets),
    }


def format_failures(outputs: Sequence[str]) -> dict[str, int]:
    """How many answers fail for each reason (``not a JSON object``, ``wrong keys``, ``unknown label``)."""
    counts: dict[str, int] = {}
    for o in outputs:
        problem = check_ticket_format(o).problem
        if problem:
            counts[problem] = counts.get(problem, 0) + 1
    return counts


# --------------------------------------------------------------------------- run the model
@dataclass
class TicketReport:
    compliance: float
    accuracy: float
    category_accuracy: float
    prompt_tokens: float  # mean tokens the model reads per request (chat template included)
    latency_s: float  # mean wall seconds per request, in the batched run
    outputs: list[str] = field(repr=False)
    urgency_accuracy: float = 0.0
    rung: str | None = None
    n: int = 0
    correct: list[bool] = field(default_factory=list, repr=False)  # per ticket: both labels right

    def rate(self, key: str = "accuracy") -> Rate:
        """A share of this report as a ``Rate``: its n and 95 % Wilson interval come with it."""
        value = getattr(self, key)
        return Rate.of(round(value * self.n), self.n)

    def as_row(self) -> dict:
        """The numbers without the outputs, for a table: each share with its 95 % interval.

        ``throughput_s`` is the batch's wall time divided by its tickets: a throughput figure, not
        the latency one request would see on its own.
        """
        acc, comp = self.rate("accuracy"), self.rate("compliance")
        return {"rung": self.rung, "n": self.n, "compliance": round(self.compliance, 3),
                "compliance 95% CI": f"{comp.low:.0%}-{comp.high:.0%}",
                "accuracy": round(self.accuracy, 3), "accuracy 95% CI": f"{acc.low:.0%}-{acc.high:.0%}",
                "category_accuracy": round(self.category_accuracy, 3),
                "urgency_accuracy": round(self.urgency_accuracy, 3),
                "prompt_tokens": round(self.prompt_tokens, 1), "throughput_s": round(self.latency_s, 3)}

    def __str__(self) -> str:
        name = f"{self.rung}: " if self.rung else ""
        return (f"{name}compliance {self.compliance:.0%}, accuracy {self.accuracy:.0%} "
                f"(category {self.category_accuracy:.0%}), {self.prompt_tokens:.0f} prompt tokens, "
                f"{self.latency_s:.2f} s/request, n={self.n}")


def build_prompts(tickets: Sequence[Ticket], rung: str = "bare", prompts=None) -> list:
    """One prompt per ticket: from ``prompts`` (a list, or a function of the ticket text) or the rung."""
    from .prompts import ticket_prompt

    if prompts is None:
        return [ticket_prompt(t.text, rung) for t in tickets]
    if callable(prompts):
        return [prompts(t.text) for t in tickets]
    prompts = list(prompts)
    if len(prompts) != len(tickets):
        raise CourseError(f"{len(prompts)} prompts for {len(tickets)} tickets; pass one prompt per ticket.")
    return prompts


def evaluate_tickets(model, tok, tickets: Sequence[Ticket], rung: str = "bare", prompts=None,
                     max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0,
                     system: str | bool | None = None, batch_size: int | None = None,
                     progress: bool | str = True, stop_at_failure: bool = False) -> TicketReport:
    """Triage every ticket with the model and score the answers.

    ``rung`` picks the prompt (see ``ftcourse.prompts.RUNGS``); ``prompts`` overrides it with your own
    (a list with one prompt per ticket, or a function ``text -> prompt``). ``system`` is passed to
    ``generate_batch`` and only matters for prompts without a system turn.

    ``stop_at_failure``: stop an answer as soon as it cannot pass (``cannot_be_ticket_json``). The
    scores are exactly the same; the failing answers come back cut short, and time is saved.
    """
    from .chat import count_tokens, generate_batch

    tickets = list(tickets)
    if not tickets:
        raise CourseError("No tickets to evaluate; load some with load_tickets('test').")
    chat_prompts = build_prompts(tickets, rung, prompts)
    tokens = [count_tokens(tok, p, system=system) for p in chat_prompts]
    t0 = time.perf_counter()
    outputs = generate_batch(model, tok, chat_prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                             seed=seed, system=system, batch_size=batch_size, progress=progress,
                             stop_when=cannot_be_ticket_json if stop_at_failure else None)
    elapsed = time.perf_counter() - t0
    return report_for(outputs, tickets, rung=None if prompts is not None else rung,
                      prompt_tokens=sum(tokens) / len(tokens), latency_s=elapsed / len(tickets))


def label_flags(outputs: Sequence[str], tickets: Sequence) -> list[bool]:
    """Per ticket: did the answer parse and get both labels right? (For paired comparisons.)"""
    _check_lengths(outputs, tickets)
    flags = []
    for out, t in zip(outputs, tickets, strict=True):
        parsed, gold = parse_ticket(out), _gold(t)
        flags.append(parsed is not None and all(parsed[k] == gold[k] for k in SCHEMA_KEYS))
    return flags


def report_for(outputs: Sequence[str], tickets: Sequence, rung: str | None = None, prompt_tokens: float = 0.0,
               latency_s: float = 0.0) -> TicketReport:
    """Score answers that already exist (from a model, a rule, or a constant) as a ``TicketReport``."""
    outputs = list(outputs)
    s = score_outputs(outputs, tickets)
    return TicketReport(compliance=s["compliance"], accuracy=s["accuracy"],
                        category_accuracy=s["category_accuracy"], prompt_tokens=prompt_tokens,
                        latency_s=latency_s, outputs=outputs, urgency_accuracy=s["urgency_accuracy"],
                        rung=rung, n=len(outputs), correct=label_flags(outputs, tickets))


# --------------------------------------------------------------------------- the trivial baseline
def majority_labels(train: Sequence) -> dict:
    """The most common (category, urgency) pair of a labelled set: the answer a model that ignores the
    ticket would do best to give. Ties go to the pair seen first."""
    from collections import Counter

    pairs = Counter((g["category"], g["urgency"]) for g in map(_gold, train))
    if not pairs:
        raise CourseError("No labelled tickets to take a majority from; pass load_tickets('train').")
    (category, urgency), _ = pairs.most_common(1)[0]
    return {"category": category, "urgency": urgency}


def majority_baseline(train: Sequence, tickets: Sequence) -> TicketReport:
    """Score the constant answer "the majority pair of ``train``" on ``tickets``: the bar any prompt or
    adapter must clear before its accuracy means anything. It reads no ticket, so it costs no tokens."""
    from collections import Counter

    answer = json.dumps(majority_labels(train))
    report = report_for([answer] * len(tickets), tickets, rung="majority")
    # each field's own bar: the most common category (urgency) alone, which may differ from the pair's
    gold_train, gold = [_gold(t) for t in train], [_gold(t) for t in tickets]
    for key in SCHEMA_KEYS:
        top = Counter(g[key] for g in gold_train).most_common(1)[0][0]
        setattr(report, f"{key}_accuracy", sum(g[key] == top for g in gold) / len(gold) if gold else 0.0)
    return report


# --------------------------------------------------------------------------- regression probe
_TICKET_KEY = re.compile(r'["\']?\b(category|urgency)\b["\']?\s*:', re.IGNORECASE)


def looks_like_ticket_json(text: str) -> bool:
    """True if a general answer came out as (something like) ticket JSON: the tuned habit leaking
    into questions that have nothing to do with tickets."""
    if not isinstance(text, str):
        return False
    stripped = text.strip()
    if parse_ticket(stripped) is not None:
        return True
    return "{" in stripped and bool(_TICKET_KEY.search(stripped))


# --------------------------------------------------------------------------- facts
def normalise_text(text: str) -> str:
    """Lower case, thousands separators dropped (``1,000`` -> ``1000``), spaces collapsed."""
    text = text.lower().replace("\u00a0", " ")
    text = re.sub(r"(?<=\d)[,\u2009](?=\d{3}\b)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _keyword_found(keyword: str, text: str) -> bool:
    for alt in keyword.split("|"):
        alt = normalise_text(alt)
        if not alt:
            continue
        # whole-token match: "49" must not match inside "149" or "49.5" (but does match "49.00")
        pattern = r"(?<![\w.])" + re.escape(alt) + r"(?!\w)(?!\.\d*[1-9])"
        if re.search(pattern, text):
            return True
    return False


def fact_is_correct(answer: str, fact: Fact) -> bool:
    """True if ``answer`` contains every keyword of ``fact`` (each keyword may list alternatives
    separated by ``|``, e.g. ``"14|fourteen"``), after normalising case and number formatting."""
    text = normalise_text(answer or "")
    return bool(fact.keywords) and all(_keyword_found(k, text) for k in fact.keywords)


_ABSTAIN = re.compile(
    r"\b(i (do not|don't|dont) (know|have)|not sure|no information|not (in|on) (the|my|our) "
    r"(notes?|sheet|information)|cannot find|can't find|couldn't find|unable to (find|answer)|"
    r"(check|ask|contact) (with )?(tillwise|support|the support)|not (mentioned|listed|stated))\b",
    re.IGNORECASE,
)


def abstains(answer: str) -> bool:
    """True if the answer says it does not know (the right reply to a fact that is in no sheet)."""
    return bool(_ABSTAIN.search(answer or ""))


@dataclass
class FactReport:
    accuracy: float
    per_kind: dict[str, float]
    outputs: list[str] = field(repr=False)
    correct: list[bool] = field(default_factory=list, repr=False)
    n: int = 0
    kinds: list[str] = field(default_factory=list, repr=False)  # the kind of each question, in order

    def rates(self) -> dict[str, Rate]:
        """``{kind: Rate}``: each kind's accuracy with its n and 95 % interval, plus ``"all"``."""
        out = {kind: Rate.from_flags(c for c, k in zip(self.correct, self.kinds, strict=True) if k == kind)
               for kind in dict.fromkeys(self.kinds)}
        out["all"] = Rate.from_flags(self.correct)
        return out

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {v:.0%}" for k, v in self.per_kind.items())
        return f"fact accuracy {self.accuracy:.0%} ({kinds}), n={self.n}"


def grade_fact_answer(answer: str, question: FactQuestion, facts: dict[str, Fact]) -> bool:
    """A question about a fact on the sheet: the answer must hold that fact's keywords. A question
    about something on no sheet (``untaught``): the answer must admit it does not know."""
    fact = facts.get(question.fact_id) if question.fact_id else None
    if fact is None:
        return abstains(answer)
    return fact_is_correct(answer, fact)


def evaluate_facts(model, tok, questions: Sequence[FactQuestion], facts: Sequence[Fact],
                   context_fn: Callable | None = None, max_new_tokens: int = 48,
                   temperature: float = 0.0, seed: int = 0, system: str | bool | None = None,
                   batch_size: int | None = None, progress: bool | str = True) -> FactReport:
    """Ask every question and grade the answers against the sheet ``facts`` (e.g. ``load_facts(2)``).

    ``context_fn(question_text) -> prompt`` builds the prompt (for RAG, e.g.
    ``lambda q: rag_prompt(q, retriever.search(q, k=1))``); without it the bare question is asked.
    """
    from .chat import generate_batch

    questions = list(questions)
    if not questions:
        raise CourseError("No questions to ask; load some with load_fact_questions('paraphrase').")
    sheet = facts_by_id(list(facts))
    prompts = [context_fn(q.question) if context_fn else q.question for q in questions]
    outputs = generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                             seed=seed, system=system, batch_size=batch_size, progress=progress)
    correct = [grade_fact_answer(o, q, sheet) for o, q in zip(outputs, questions, strict=True)]
    per_kind: dict[str, float] = {}
    for kind in dict.fromkeys(q.kind for q in questions):
        marks = [c for c, q in zip(correct, questions, strict=True) if q.kind == kind]
        per_kind[kind] = sum(marks) / len(marks)
    return FactReport(accuracy=sum(correct) / len(correct), per_kind=per_kind, outputs=outputs,
                      correct=correct, n=len(questions), kinds=[q.kind for q in questions])
