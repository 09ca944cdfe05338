"""When does a fine-tune pay for itself? Break-even arithmetic for lesson 04.

A fine-tune is a one-time cost (the training run) bought to make every later request cheaper (a
shorter prompt, a shorter answer, less time). It pays off after

    break-even requests = one-time cost / saving per request

The functions below work in whatever unit you give them: seconds of this machine, dollars, tokens.

>>> break_even_requests(training_cost=30.0, cost_before=0.5, cost_after=0.2)  # seconds
100.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import CourseError


def break_even_requests(training_cost: float, cost_before: float, cost_after: float) -> float:
    """Requests after which the saving has paid for the training (``inf`` if nothing is saved)."""
    if training_cost < 0:
        raise CourseError("training_cost cannot be negative.")
    saving = cost_before - cost_after
    if saving <= 0:
        return math.inf
    return training_cost / saving


def request_cost(prompt_tokens: float, output_tokens: float, price_in_per_m: float,
                 price_out_per_m: float) -> float:
    """Price of one request given token counts and prices per million input / output tokens."""
    return (prompt_tokens * price_in_per_m + output_tokens * price_out_per_m) / 1e6


@dataclass
class BreakEven:
    """One break-even comparison, with its inputs kept for the table."""

    name: str
    training_cost: float
    cost_before: float
    cost_after: float
    unit: str

    @property
    def saving_per_request(self) -> float:
        return self.cost_before - self.cost_after

    @property
    def requests(self) -> float:
        return break_even_requests(self.training_cost, self.cost_before, self.cost_after)

    def as_row(self) -> dict:
        return {"comparison": self.name, "one-time cost": f"{self.training_cost:,.4g} {self.unit}",
                "per request before": f"{self.cost_before:.4g} {self.unit}",
                "per request after": f"{self.cost_after:.4g} {self.unit}",
                "break-even requests": "never" if math.isinf(self.requests) else f"{self.requests:,.0f}"}


def plot_break_even(cases: list[BreakEven], max_requests: float | None = None):
    """Cumulative cost against number of requests, with and without the fine-tune, one panel a case."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cases), figsize=(4.8 * len(cases), 3.2), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        top = max_requests or (case.requests * 2.5 if math.isfinite(case.requests) else 1000)
        xs = [0, top]
        ax.plot(xs, [x * case.cost_before for x in xs], label="long prompt, no training")
        ax.plot(xs, [case.training_cost + x * case.cost_after for x in xs], label="fine-tuned, short prompt")
        if math.isfinite(case.requests):
            ax.axvline(case.requests, ls="--", color="grey", lw=1)
            ax.annotate(f"break-even\n{case.requests:,.0f} requests", (case.requests, 0),
                        xytext=(6, 10), textcoords="offset points", fontsize=8)
        ax.set_title(case.name, fontsize=10)
        ax.set_xlabel("requests served")
        ax.set_ylabel(f"cumulative cost ({case.unit})")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the whole cost of owning a fine-tune
@dataclass
class OwnershipCosts:
    """What owning a fine-tune costs beyond the training run, in money (seeds 001 and 002).

    One-time: building the dataset (``dataset_examples`` x ``minutes_per_example`` of someone's time),
    an eval suite (``eval_suite_hours``), and the training run. Every month: hosting the tuned model
    (``hosting_per_month``), retraining (``retrains_per_year`` runs, each needing ``refresh_hours`` of
    data and eval work plus a training run) and keeping the eval suite alive (``eval_upkeep_hours``).
    Every figure is an input you replace with your own.
    """

    training_run: float  # money for one training run
    dataset_examples: int
    minutes_per_example: float = 2.0
    hourly_rate: float = 60.0
    eval_suite_hours: float = 16.0
    hosting_per_month: float = 0.0
    retrains_per_year: float = 4.0  # seed 002: quarterly is a reasonable starting cadence
    refresh_hours: float = 8.0
    eval_upkeep_hours: float = 2.0  # per month

    @property
    def dataset(self) -> float:
        return self.dataset_examples * self.minutes_per_example / 60 * self.hourly_rate

    @property
    def one_time(self) -> float:
        return self.dataset + self.eval_suite_hours * self.hourly_rate + self.training_run

    @property
    def per_month(self) -> float:
        retrain = self.retrains_per_year / 12 * (self.refresh_hours * self.hourly_rate + self.training_run)
        return self.hosting_per_month + retrain + self.eval_upkeep_hours * self.hourly_rate

    def breakdown(self) -> dict[str, float]:
        """Each cost on its own line, for a table."""
        return {"dataset (one-time)": self.dataset, "eval suite (one-time)": self.eval_suite_hours * self.hourly_rate,
                "training run (one-time)": self.training_run, "hosting (per month)": self.hosting_per_month,
                "retraining (per month)": self.retrains_per_year / 12 * (self.refresh_hours * self.hourly_rate
                                                                         + self.training_run),
                "eval upkeep (per month)": self.eval_upkeep_hours * self.hourly_rate}


def ownership_break_even(costs: OwnershipCosts, saving_per_request: float, requests_per_month: float) -> dict:
    """When does a fine-tune pay for *owning* it, not only for its training run?

    The saving per request must first cover the monthly costs; what is left repays the one-time costs.
    Returns ``{"min_requests_per_month", "months", "requests"}``: the volume below which the fine-tune
    never pays (``inf`` if nothing is saved), and at ``requests_per_month`` the months and requests until
    it has paid back (``inf`` if it never does).
    """
    if saving_per_request <= 0:
        return {"min_requests_per_month": math.inf, "months": math.inf, "requests": math.inf}
    floor = costs.per_month / saving_per_request
    surplus = requests_per_month * saving_per_request - costs.per_month
    months = costs.one_time / surplus if surplus > 0 else math.inf
    return {"min_requests_per_month": floor, "months": months, "requests": months * requests_per_month}
