"""Climb the prompt ladder on an eval set, compare the rungs, and say what is left for fine-tuning.

The scoring itself is ``ftcourse.evals.evaluate_tickets`` and the prompts are ``ftcourse.prompts``;
this module runs the rungs in turn, lays the numbers side by side (table and plot), and turns
them into sentences that follow from the numbers, whichever way the measurement went.

>>> reports = climb_ladder(model, tok, load_tickets("test"))      # vague -> clear -> few_shot
>>> plot_ladder(reports); print("\\n".join(describe_ladder(reports)))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

LESSON_RUNGS = ("vague", "clear", "few_shot")
METRICS = (
    ("compliance", "format compliance", "share"),
    ("accuracy", "label accuracy", "share"),
    ("prompt_tokens", "prompt tokens / request", "count"),
    ("latency_s", "throughput: batch seconds / ticket", "seconds"),
)
RUNG_NAMES = {"bare": "bare", "vague": "vague", "clear": "clear", "few_shot": "few-shot",
              "majority": "majority label (constant)"}


def climb_ladder(model, tok, tickets, rungs: Sequence[str] = LESSON_RUNGS, max_new_tokens: int = 32,
                 batch_size: int | None = None, progress: bool = True) -> dict:
    """Score every rung on the same tickets; ``{rung: TicketReport}`` in ladder order."""
    from .evals import evaluate_tickets

    reports = {}
    for rung in rungs:
        reports[rung] = evaluate_tickets(model, tok, tickets, rung=rung, max_new_tokens=max_new_tokens,
                                         batch_size=batch_size, progress=f"{rung} rung" if progress else False)
    return reports


def ladder_rows(reports: Mapping, baseline=None) -> list[dict]:
    """One row per rung for a table (shares as percentages, each with its 95 % Wilson interval).

    ``baseline``: a report of a constant answer (``ftcourse.evals.majority_baseline``), shown first:
    the bar a rung's accuracy must clear before it means anything. "throughput" is the batch's wall
    time divided by its tickets, not the wait of one request on its own.
    """
    rows = []
    for rung, r in ([("majority", baseline)] if baseline is not None else []) + list(reports.items()):
        acc, comp = r.rate("accuracy"), r.rate("compliance")
        rows.append({"rung": RUNG_NAMES.get(rung, rung), "n": r.n,
                     "format compliance": f"{r.compliance:.0%}", "compliance 95% CI": f"{comp.low:.0%}-{comp.high:.0%}",
                     "label accuracy": f"{r.accuracy:.0%}", "accuracy 95% CI": f"{acc.low:.0%}-{acc.high:.0%}",
                     "category accuracy": f"{r.category_accuracy:.0%}",
                     "urgency accuracy": f"{r.urgency_accuracy:.0%}", "prompt tokens": round(r.prompt_tokens),
                     "throughput: batch s / ticket": round(r.latency_s, 3)})
    return rows


def plot_ladder(reports: Mapping, title: str = "The prompt ladder on the eval set", baseline=None):
    """Four small bar charts side by side: compliance, accuracy, prompt tokens, throughput.

    Shares carry their 95 % Wilson interval as an error bar; ``baseline`` (a constant-answer report)
    is drawn as a dashed line on the accuracy panel.
    """
    import matplotlib.pyplot as plt

    names = [RUNG_NAMES.get(r, r) for r in reports]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.0))
    colours = ["#9ca3af", "#60a5fa", "#2563eb", "#1e3a8a", "#f59e0b"][: len(names)]
    for ax, (key, label, kind) in zip(axes, METRICS, strict=True):
        values = [getattr(r, key) for r in reports.values()]
        if kind == "share":
            rates = [r.rate(key) for r in reports.values()]
            err = [[max(0.0, v - q.low) for v, q in zip(values, rates, strict=True)],
                   [max(0.0, q.high - v) for v, q in zip(values, rates, strict=True)]]
            bars = ax.bar(names, values, color=colours, yerr=err, capsize=3, error_kw={"lw": 1})
            if key == "accuracy" and baseline is not None:
                ax.axhline(baseline.accuracy, ls="--", color="#dc2626", lw=1.2,
                           label=f"majority label {baseline.accuracy:.0%}")
                ax.legend(fontsize=7, loc="upper left")
            ax.set_ylim(0, 1.1)
            texts = [f"{v:.0%}" for v in values]
        elif kind == "count":
            texts = [f"{v:.0f}" for v in values]
        else:
            texts = [f"{v:.2f}" for v in values]
        if kind != "share":
            bars = ax.bar(names, values, color=colours)
        ax.bar_label(bars, texts, fontsize=8, padding=2)
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def best_rung(reports: Mapping) -> str:
    """The rung with the highest label accuracy; ties go to higher compliance, then fewer tokens."""
    return max(reports, key=lambda k: (reports[k].accuracy, reports[k].compliance, -reports[k].prompt_tokens))


def _pts(a: float, b: float) -> str:
    """The change from a to b in percentage points, signed."""
    return f"{100 * (b - a):+.0f} points"


def describe_step(lower: str, upper: str, reports: Mapping) -> str:
    """One sentence on what moving from rung ``lower`` to rung ``upper`` changed."""
    a, b = reports[lower], reports[upper]
    name_a, name_b = RUNG_NAMES.get(lower, lower), RUNG_NAMES.get(upper, upper)
    moves = []
    for key, label in (("compliance", "format compliance"), ("accuracy", "label accuracy")):
        x, y = getattr(a, key), getattr(b, key)
        if y > x:
            moves.append(f"raised {label} from {x:.0%} to {y:.0%} ({_pts(x, y)})")
        elif y < x:
            moves.append(f"lowered {label} from {x:.0%} to {y:.0%} ({_pts(x, y)})")
        else:
            moves.append(f"left {label} at {x:.0%}")
    cost = b.prompt_tokens / a.prompt_tokens if a.prompt_tokens else float("inf")
    return (f"Going from the {name_a} prompt to the {name_b} prompt {moves[0]} and {moves[1]}, "
            f"for {b.prompt_tokens:.0f} instead of {a.prompt_tokens:.0f} prompt tokens a request "
            f"({cost:.1f}x).")


def remaining_gap(reports: Mapping, target: float | None = None) -> dict:
    """What the best prompt rung still gets wrong, as shares of the eval set.

    With a ``target`` accuracy (what the desk needs), ``measured_gap`` says whether the gap is real:
    True only when even the top of the best rung's 95 % interval is below the target, so one or two
    lucky tickets could not close it. ``target_gap`` is how far the best rung is from the target.
    """
    best = best_rung(reports)
    r = reports[best]
    gap = {"best_rung": best, "compliance": r.compliance, "accuracy": r.accuracy,
           "format_gap": 1 - r.compliance, "label_gap": 1 - r.accuracy}
    if target is not None:
        rate = r.rate("accuracy")
        gap.update(target=target, target_gap=max(0.0, target - r.accuracy), accuracy_high=rate.high,
                   measured_gap=rate.high < target)
    return gap


def most_common_answer(report) -> tuple[str, int]:
    """The answer a rung gave most often, and how many times (a sign of answers that ignore the input)."""
    from collections import Counter

    if not report.outputs:
        return "", 0
    return Counter(report.outputs).most_common(1)[0]


def describe_ladder(reports: Mapping, baseline=None, target: float | None = None) -> list[str]:
    """Sentences that follow from the numbers: what each rung fixed and what gap remains.

    ``baseline``: the constant majority-label report; the best rung is compared with it, beyond the
    noise (non-overlapping 95 % intervals) or not. ``target``: the accuracy the task needs.
    """
    rungs = list(reports)
    lines = [describe_step(a, b, reports) for a, b in zip(rungs, rungs[1:], strict=False)]
    gap = remaining_gap(reports, target)
    best = RUNG_NAMES.get(gap["best_rung"], gap["best_rung"])
    n = reports[gap["best_rung"]].n
    wrong = round(gap["label_gap"] * n)
    broken = round(gap["format_gap"] * n)
    if gap["label_gap"] == 0:
        lines.append(f"The {best} prompt gets every one of the {n} tickets right: there is no gap left, so "
                     "there is nothing for fine-tuning to fix here.")
    else:
        lines.append(f"The best rung, {best}, still gets {wrong} of {n} tickets wrong "
                     f"({gap['label_gap']:.0%}), and {broken} of its answers break the format "
                     f"({gap['format_gap']:.0%}).")
        top, count = most_common_answer(reports[gap["best_rung"]])
        if count >= max(3, n // 4):
            from .evals import check_ticket_format

            shape = (" The shape is right; reading each ticket into its own labels is what is missing."
                     if check_ticket_format(top).ok else "")
            lines.append(f"Its answers repeat: {count} of {n} are the same one, {top}, so the answer barely "
                         f"depends on the ticket.{shape}")
        best_report = reports[gap["best_rung"]]
        if baseline is not None:
            ours, bar = best_report.rate("accuracy"), baseline.rate("accuracy")
            if ours.beats(bar):
                lines.append(f"Its label accuracy, {ours}, beats always answering the majority label pair "
                             f"({bar}) beyond the noise.")
            elif bar.beats(ours):
                lines.append(f"Its label accuracy, {ours}, is below a constant answer: always answering the "
                             f"majority label pair scores {bar}. The prompt taught no judgement at all.")
            else:
                lines.append(f"Its label accuracy, {ours}, cannot be told apart from a constant answer: always "
                             f"answering the majority label pair scores {bar}.")
        if target is not None:
            if gap["measured_gap"]:
                lines.append(f"The task needs {target:.0%}; even the top of the best rung's 95 % interval "
                             f"({gap['accuracy_high']:.0%}) is below it, so the gap is measured, not noise.")
            else:
                lines.append(f"The task needs {target:.0%}, and the best rung's 95 % interval reaches "
                             f"{gap['accuracy_high']:.0%}: this eval set cannot show a gap.")
        if gap["format_gap"] > 0:
            lines.append("Those are repeated, nameable misses of one stable behaviour (the house JSON and "
                         "labels) that the prompt rungs did not close: the kind of gap a fine-tune can target.")
        else:
            lines.append("Every answer keeps the format, so what remains is the labels themselves: the "
                         "prompt gave the shape, not the judgement of which label fits which ticket.")
    return lines


# ----------------------------------------------------------------------------- exercise cases
def _variants(gold: dict, rng) -> list[tuple[str, bool]]:
    """Ways a model can answer a ticket whose gold labels are ``gold``; (answer, counts as right)."""
    import json

    from .datasets import TAXONOMY

    cat, urg = gold["category"], gold["urgency"]
    other_cat = rng.choice([c for c in TAXONOMY["category"] if c != cat])
    other_urg = rng.choice([u for u in TAXONOMY["urgency"] if u != urg])
    exact = json.dumps({"category": cat, "urgency": urg})
    return [
        (exact, True),
        (f"  {exact}\n", True),
        (json.dumps({"category": cat, "urgency": urg}, separators=(",", ":")), True),
        (json.dumps({"category": other_cat, "urgency": urg}), False),
        (json.dumps({"category": cat, "urgency": other_urg}), False),
        (json.dumps({"category": other_cat, "urgency": other_urg}), False),
        (f"Sure! Here is the answer: {exact}", False),
        (f"```json\n{exact}\n```", False),
        (json.dumps({"category": cat, "urgency": urg, "reason": "the customer says so"}), False),
        (json.dumps({"urgency": urg, "category": cat}), False),
        (json.dumps({"category": cat.capitalize(), "urgency": urg.upper()}), False),
        (exact[:-2], False),
        ("", False),
        (str({"category": cat, "urgency": urg}), False),
        (f"This looks like a {cat} question, urgency {urg}.", False),
    ]


def label_accuracy_cases(seed: int = 0, n: int = 40) -> list[tuple[tuple, float]]:
    """Test cases ``((predictions, gold), expected)`` for a learner's ``label_accuracy``.

    Drawn at random (fixed by ``seed``) from right answers and the usual ways to be wrong; the
    expected value comes from ``ftcourse.evals.label_accuracy``. Always includes the empty case.
    """
    import random

    from .datasets import TAXONOMY
    from .evals import label_accuracy

    rng = random.Random(seed)
    cases: list[tuple[tuple, float]] = [(([], []), 0.0)]
    for i in range(n - 1):
        size = rng.randint(1, 8)
        gold = [{"category": rng.choice(TAXONOMY["category"]), "urgency": rng.choice(TAXONOMY["urgency"])}
                for _ in range(size)]
        preds = []
        for g in gold:
            variants = _variants(g, rng)
            # every third case is all right answers; the others mix right and wrong ones
            preds.append(variants[0][0] if i % 3 == 0 else rng.choice(variants)[0])
        cases.append(((preds, gold), label_accuracy(preds, gold)))
    return cases


__all__ = ["LESSON_RUNGS", "climb_ladder", "ladder_rows", "plot_ladder", "best_rung", "describe_step",
           "describe_ladder", "remaining_gap",
           "label_accuracy_cases", "most_common_answer"]
