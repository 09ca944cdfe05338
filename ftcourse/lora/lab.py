"""What lesson 04 measures around a training run: the metrics it stops on, and the lab's experiments.

* **validation metrics** for ``train_lora``'s checks: ``ticket_metric`` (format compliance or label
  accuracy), ``compliance_metric``, ``leak_metric`` (general prompts answered as ticket JSON),
  ``fact_metric``;
* **cost**: ``flops_per_token`` of reading a prompt and of a training step;
* **data mix**: ``mix_examples`` puts general chat among the task examples;
* **temperature**: ``compliance_by_temperature``, ``by_temperature``, ``plot_temperature_sweep`` and
  ``sweep_table``: does a trained-in format survive sampling?
* **regression probe**: ``ticket_format_leak`` (``LeakReport``);
* **plots** of a run: ``plot_locking_in``, ``plot_label_climb``;
* **facts in weights**: ``facts_training_for`` (the examples rewritten for a new sheet),
  ``stale_answers``, ``plot_fact_accuracy``;
* ``compliance_checker_cases`` for exercise 04.1.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import CourseError
from .data import collate, encode_examples, messages_of
from .train import TrainResult, _device_of, _style_share_axis, answer_loss


# --------------------------------------------------------------------------- validation metrics
def ticket_metric(tok, tickets: Sequence, key: str = "compliance", max_new_tokens: int = 24, rung: str = "bare",
                  system: str | bool | None = False) -> Callable:
    """A function ``model -> share`` on ``tickets`` for early stopping: ``key`` is ``"compliance"``
    (format) or ``"accuracy"`` (both labels right).

    It generates greedy answers with the short ``bare`` prompt (what the tuned model will serve with)
    and scores them with ``ftcourse.evals``. A compliant answer is ~16 tokens, so a small
    ``max_new_tokens`` keeps each check cheap, and an answer stops as soon as it cannot pass (before the
    format locks in, that is after one token). Both numbers come from the same answers, so every check
    records both (``metric.last``; ``train_lora`` stores them as ``val_compliance`` and ``val_accuracy``).
    """
    from ..evals import evaluate_tickets

    if key not in ("compliance", "accuracy"):
        raise CourseError(f"ticket_metric measures 'compliance' or 'accuracy', not {key!r}.")
    tickets = list(tickets)

    def metric(model) -> float:
        report = evaluate_tickets(model, tok, tickets, rung=rung, max_new_tokens=max_new_tokens, system=system,
                                  progress=False, stop_at_failure=True)
        metric.last = {"compliance": report.compliance, "accuracy": report.accuracy, "n": report.n}
        return getattr(report, key)

    metric.last = None
    metric.__name__ = f"validation {'compliance' if key == 'compliance' else 'label accuracy'}"
    return metric


def compliance_metric(tok, tickets: Sequence, max_new_tokens: int = 24, rung: str = "bare",
                      system: str | bool | None = False) -> Callable:
    """A function ``model -> format compliance`` on ``tickets`` (``ticket_metric`` with its default key)."""
    return ticket_metric(tok, tickets, "compliance", max_new_tokens=max_new_tokens, rung=rung, system=system)


def leak_metric(tok, prompts: Sequence, max_new_tokens: int = 32) -> Callable:
    """A function ``model -> share of general prompts answered as ticket JSON`` (lower is better), to
    watch a regression at every check of a run instead of at one lucky step."""
    prompts = list(prompts)

    def metric(model) -> float:
        return ticket_format_leak(model, tok, prompts, max_new_tokens=max_new_tokens).rate

    metric.__name__ = "probe leak"
    return metric


def fact_metric(tok, questions: Sequence, facts: Sequence, max_new_tokens: int = 24,
                system: str | bool | None = False) -> Callable:
    """A function ``model -> fact accuracy`` on ``questions`` graded against the sheet ``facts``."""
    from ..evals import evaluate_facts

    questions, facts = list(questions), list(facts)

    def metric(model) -> float:
        return evaluate_facts(model, tok, questions, facts, max_new_tokens=max_new_tokens, system=system,
                              progress=False).accuracy

    metric.__name__ = "fact accuracy"
    return metric


def flops_per_token(model, tok, examples: Sequence, system: str | bool | None = False) -> dict[str, float]:
    """FLOPs per token of reading a prompt (a forward pass, output head on the last position only,
    as in generation) and of a training step (forward + backward through the adapter), counted by
    ``torch.utils.flop_counter`` on one real batch of ``examples``."""
    from torch.utils.flop_counter import FlopCounterMode

    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = collate(encode_examples(tok, examples, system=system), pad_id)
    batch = {k: v.to(_device_of(model)) for k, v in batch.items()}
    tokens = int(batch["attention_mask"].sum())
    forward = FlopCounterMode(display=False)
    with forward, torch.no_grad():  # as in serving: the output head runs on the last position only
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1)
    train = FlopCounterMode(display=False)
    was_training = model.training
    model.train()
    with train:
        answer_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {"forward": forward.get_total_flops() / tokens, "train_step": train.get_total_flops() / tokens}


def compliance_checker_cases() -> list[str]:
    """Answers that test a format-compliance checker (exercise 04.1): the good shape, and the ways
    a model gets it almost right."""
    good = '{"category": "billing", "urgency": "high"}'
    return [
        good,
        "  " + good + "\n",
        '{"category":"hardware","urgency":"urgent"}',
        '{"category": "feature_request", "urgency": "low"}',
        "Sure! " + good,
        good + " Let me know if you need more.",
        "```json\n" + good + "\n```",
        '{"urgency": "high", "category": "billing"}',
        '{"category": "billing"}',
        '{"category": "billing", "urgency": "high", "reason": "double charge"}',
        '{"category": "Billing", "urgency": "high"}',
        '{"category": "billing", "urgency": "critical"}',
        '{"category": "refund", "urgency": "high"}',
        '{"category": "billing", "urgency": "high", "urgency": "low"}',
        '[{"category": "billing", "urgency": "high"}]',
        '[["category", "billing"], ["urgency", "high"]]',
        '{"category": "billing", "urgency": "high"',
        "{'category': 'billing', 'urgency': 'high'}",
        '{"category": ["billing"], "urgency": "high"}',
        '{"category": "billing", "urgency": null}',
        "",
        "billing, high",
    ]


# --------------------------------------------------------------------------- data mix
def mix_examples(task: Sequence, extra: Sequence, share: float = 0.25, seed: int = 0) -> list:
    """Task examples plus enough ``extra`` ones (e.g. general chat) that they make up ``share`` of
    the result, shuffled with a fixed seed. ``extra`` is reused if it is too short."""
    if not 0 <= share < 1:
        raise CourseError("share must be at least 0 and below 1 (it is the fraction of extra examples).")
    task, extra = list(task), list(extra)
    n_extra = round(len(task) * share / (1 - share))
    if n_extra and not extra:
        raise CourseError("share > 0 needs some extra examples to mix in.")
    picked = [extra[i % len(extra)] for i in range(n_extra)]
    mixed = task + picked
    random.Random(seed).shuffle(mixed)
    return mixed


# --------------------------------------------------------------------------- temperature
def compliance_by_temperature(model, tok, tickets: Sequence, temperatures: Sequence[float] = (0.0, 0.7, 1.0),
                              seeds: Sequence[int] = (0, 1), rung: str = "bare", max_new_tokens: int = 24,
                              system: str | bool | None = False, label: str | None = None,
                              greedy: Sequence[str] | None = None) -> list[dict]:
    """Format compliance and accuracy at each temperature: ``len(seeds)`` samples per ticket (greedy once).

    One row per sample run: ``{"setup", "temperature", "seed", "compliance", "shape", "accuracy"}``, where
    ``shape`` is the share of answers that are one JSON object with exactly the two keys (labels not
    checked) and ``compliance`` also requires both labels to be in the taxonomy.

    All samples of one temperature are drawn in one ``generate_batch`` call (each ticket repeated once
    per seed, seeded with ``seeds[0]``), which packs them into as few batches as its token budget allows:
    the rows sample independently, and a few long batches cost far less than a short batch per seed,
    while the budget keeps memory bounded. Run ``j`` is the ``j``-th sample of every ticket.

    ``greedy``: answers this model already gave these tickets greedily with this ``rung`` (for example
    ``report.outputs[:n]`` of an ``evaluate_tickets`` run); temperature 0 then scores them instead of
    generating the same answers again.
    """
    from ..chat import generate_batch
    from ..evals import build_prompts, cannot_be_ticket_json, check_ticket_format, score_outputs

    tickets = list(tickets)
    if greedy is not None and len(greedy) != len(tickets):
        raise CourseError(f"greedy has {len(greedy)} answers for {len(tickets)} tickets; pass the answers "
                          "to exactly these tickets (e.g. report.outputs[:len(tickets)]).")
    prompts = build_prompts(tickets, rung)
    rows = []
    for temperature in temperatures:
        runs = list(seeds) if temperature > 0 else list(seeds[:1])
        if temperature <= 0 and greedy is not None:
            outputs = list(greedy)
        else:
            outputs = generate_batch(model, tok, [p for p in prompts for _ in runs], max_new_tokens=max_new_tokens,
                                     temperature=temperature, seed=runs[0], system=system,
                                     progress=False,  # generate_batch's token budget bounds the memory
                                     stop_when=cannot_be_ticket_json)  # scores unchanged, time saved
        for j, seed in enumerate(runs):
            run = outputs[j::len(runs)]
            shape = sum(check_ticket_format(o).exact_schema for o in run) / len(run)
            score = score_outputs(run, tickets)
            rows.append({"setup": label or rung, "temperature": temperature, "seed": seed, "n": len(run),
                         "compliance": score["compliance"], "shape": shape, "accuracy": score["accuracy"]})
    return rows


def by_temperature(rows: Sequence[dict], key: str = "compliance") -> dict[float, dict]:
    """``{temperature: {"mean", "min", "max", "runs", "rate"}}`` of one setup's rows.

    ``rate`` pools every sampled answer at that temperature (runs x tickets) into one ``Rate``, with its
    n and 95 % Wilson interval (rows without an ``n`` count as one answer each).
    """
    from ..stats import Rate

    out: dict[float, dict] = {}
    for t in dict.fromkeys(r["temperature"] for r in rows):
        picked = [r for r in rows if r["temperature"] == t]
        vals = [r[key] for r in picked]
        ns = [int(r.get("n", 1)) for r in picked]
        rate = Rate.of(round(sum(v * n for v, n in zip(vals, ns, strict=True))), sum(ns))
        out[t] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals), "runs": len(vals),
                  "rate": rate}
    return out


_SWEEP_TITLES = {"shape": "one JSON object, exactly the two keys", "compliance": "full compliance (labels too)",
                 "accuracy": "both labels right"}


def plot_temperature_sweep(sweeps: dict[str, Sequence[dict]], keys: Sequence[str] = ("shape", "compliance")):
    """Share of answers against temperature for each setup, one panel per metric; error bars are the
    95 % Wilson interval over every sampled answer (runs x tickets)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.8 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for k, (name, rows) in enumerate(sweeps.items()):
            summary = by_temperature(rows, key)
            ts = [t + 0.015 * (k - (len(sweeps) - 1) / 2) for t in summary]  # side by side, not on top
            rates = [v["rate"] for v in summary.values()]
            err = [[max(0.0, r.value - r.low) for r in rates], [max(0.0, r.high - r.value) for r in rates]]
            ax.errorbar(ts, [r.value for r in rates], yerr=err, marker="o", capsize=4, label=name)
        ax.set_title(_SWEEP_TITLES.get(key, key), fontsize=10)
        _style_share_axis(ax, "sampling temperature", "share of answers", "lower left", fontsize=8)
    fig.tight_layout()
    return fig


def sweep_table(sweeps: dict[str, Sequence[dict]], keys: Sequence[str] = ("shape", "compliance")):
    """A pandas table of each metric: one row per (metric, setup), one column per temperature, each cell
    the share over all sampled answers with its n and 95 % interval."""
    import pandas as pd

    rows = {}
    for key in keys:
        for name, runs in sweeps.items():
            rows[(key, name)] = {f"T={t:g}": (f"{v['rate'].value:.0%} (n={v['rate'].n}, "
                                              f"{v['rate'].low:.0%}-{v['rate'].high:.0%})")
                                 for t, v in by_temperature(runs, key).items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["metric", "setup"]
    return table


# --------------------------------------------------------------------------- regression probe and plots
@dataclass
class LeakReport:
    """How often answers to general (non-ticket) prompts came out as ticket JSON."""

    rate: float
    outputs: list[str] = field(repr=False)
    leaked: list[int] = field(repr=False)  # indexes of the prompts that leaked

    def __str__(self) -> str:
        return f"{len(self.leaked)}/{len(self.outputs)} general prompts answered as ticket JSON ({self.rate:.0%})"


def ticket_format_leak(model, tok, prompts: Sequence, max_new_tokens: int = 32,
                       system: str | bool | None = False) -> LeakReport:
    """Answer general prompts (chat examples, message lists or strings) and count the ticket-format
    answers with ``ftcourse.evals.looks_like_ticket_json``: the regression probe of lesson 04."""
    from ..chat import generate_batch
    from ..evals import looks_like_ticket_json

    chats = [messages_of(p) if not isinstance(p, str) else p for p in prompts]
    chats = [[m for m in c if m.get("role") != "assistant"] if isinstance(c, list) else c for c in chats]
    outputs = generate_batch(model, tok, chats, max_new_tokens=max_new_tokens, system=system, progress=False)
    leaked = [i for i, o in enumerate(outputs) if looks_like_ticket_json(o)]
    return LeakReport(rate=len(leaked) / max(len(outputs), 1), outputs=outputs, leaked=leaked)


def plot_locking_in(result: TrainResult, test_compliance: float | None = None, label: str = "validation"):
    """Format compliance against training steps: the format locking in."""
    import matplotlib.pyplot as plt

    steps, values = result.curve()
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.plot(steps, values, "o-", color="tab:green", label=f"{label} compliance")
    if result.settings.target is not None:
        ax.axhline(result.settings.target, ls="--", color="grey", lw=1, label=f"target {result.settings.target:.0%}")
    if test_compliance is not None and steps:
        ax.plot([steps[-1]], [test_compliance], "s", color="tab:red", label="held-out test, after training")
    _style_share_axis(ax, "training step", "format compliance", "center right")
    fig.tight_layout()
    return fig


def plot_label_climb(result: TrainResult, baselines: dict | None = None, test: dict | None = None,
                     title: str = "The format locks in fast; the labels keep climbing"):
    """Validation format compliance and label accuracy against training steps, from a run whose checks
    used ``ticket_metric`` (which records both at every check).

    ``baselines``: ``{name: Rate or share}`` drawn as horizontal lines (the majority label, the best
    prompt). ``test``: ``{name: (step, Rate)}`` drawn as points with their 95 % intervals.
    """
    import matplotlib.pyplot as plt

    rows = [e for e in result.evals if e.get("val_accuracy") is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = [e["step"] for e in rows]
    ax.plot(steps, [e["val_compliance"] for e in rows], "o-", color="tab:green", label="format compliance (val)")
    ax.plot(steps, [e["val_accuracy"] for e in rows], "o-", color="tab:blue", label="label accuracy (val)")
    for (name, value), style in zip((baselines or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(float(value), ls=style, color="grey", lw=1.2, label=name)
    for name, (step, rate) in (test or {}).items():
        ax.errorbar([step], [rate.value], yerr=[[max(0.0, rate.value - rate.low)], [max(0.0, rate.high - rate.value)]], fmt="s",
                    color="tab:red", capsize=4, label=name)
    ax.set_title(title, fontsize=10)
    _style_share_axis(ax, "training step", "share of validation tickets", None)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- facts in the weights
def facts_training_for(rows: Sequence[dict], facts: Sequence) -> list[dict]:
    """The fact-teaching examples re-written for another sheet: each answer becomes that sheet's note
    for the example's ``fact_id`` (what "retrain on the new facts" means for lesson 04)."""
    notes = {f.id: f.note for f in facts}
    out = []
    for row in rows:
        fact_id = row.get("fact_id")
        if fact_id not in notes:
            raise CourseError(f"Example {row.get('id')} is about {fact_id!r}, which the new sheet does not have.")
        messages = [dict(m) for m in row["messages"]]
        messages[-1]["content"] = notes[fact_id]
        out.append({**row, "messages": messages})
    return out


def stale_answers(outputs: Sequence[str], questions: Sequence, old_facts: Sequence, new_facts: Sequence) -> list[bool]:
    """For each answer about a fact that changed between the sheets: True if it states the old value
    and not the new one. Questions about unchanged (or no) facts are left out."""
    from ..evals import fact_is_correct

    old = {f.id: f for f in old_facts}
    new = {f.id: f for f in new_facts}
    flags = []
    for out, q in zip(outputs, questions, strict=True):
        fid = getattr(q, "fact_id", None)
        if fid in old and fid in new and old[fid].answer != new[fid].answer:
            flags.append(fact_is_correct(out, old[fid]) and not fact_is_correct(out, new[fid]))
    return flags


def plot_fact_accuracy(table: dict[str, dict[str, float]], title: str = "Fact accuracy before and after the change"):
    """Grouped bars: ``{"facts in weights": {"sheet v1": 0.9, "sheet v2": 0.3}, "facts in retrieval": {...}}``.

    Values may be shares or ``Rate`` objects; a ``Rate`` also draws its 95 % interval as an error bar.
    """
    import matplotlib.pyplot as plt

    setups = list(table)
    phases = list(dict.fromkeys(p for v in table.values() for p in v))
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    width = 0.8 / max(len(phases), 1)
    for j, phase in enumerate(phases):
        xs = [i + (j - (len(phases) - 1) / 2) * width for i in range(len(setups))]
        cells = [table[s].get(phase, float("nan")) for s in setups]
        vals = [float(v) for v in cells]
        err = None
        if all(hasattr(v, "low") for v in cells):
            err = [[max(0.0, v.value - v.low) for v in cells], [max(0.0, v.high - v.value) for v in cells]]
        bars = ax.bar(xs, vals, width, label=phase, yerr=err, capsize=3, error_kw={"lw": 1})
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in vals], fontsize=8)
    ax.set_xticks(range(len(setups)), setups)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("answers correct for the sheet in force")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
