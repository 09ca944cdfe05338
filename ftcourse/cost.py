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


# --------------------------------------------------------------------------- break-even in days, with sliders
def _check_volume(training_cost: float, requests_per_day: float, price_per_m_tokens: float) -> None:
    for name, value in (("training_cost", training_cost), ("requests_per_day", requests_per_day),
                        ("price_per_m_tokens", price_per_m_tokens)):
        if not value >= 0:
            raise CourseError(f"{name} cannot be negative (got {value}); pass 0 or more.")


def saving_per_day(tokens_saved_per_request: float, requests_per_day: float, price_per_m_tokens: float) -> float:
    """Money saved a day: tokens saved per request x requests a day x price per million tokens / 1e6."""
    return tokens_saved_per_request * requests_per_day * price_per_m_tokens / 1e6


def cumulative_costs(days, training_cost: float, tokens_saved_per_request: float, requests_per_day: float,
                     price_per_m_tokens: float, base_cost_per_request: float = 0.0) -> dict:
    """Cumulative cost, day by day, without and with the fine-tune.

    ``days``: a number of days (the curve runs over day 0, 1, ..., days) or a sequence of days.
    Without it every request pays ``base_cost_per_request`` plus the ``tokens_saved_per_request`` tokens
    the long prompt needs; with it, the training run is paid on day 0 and every request pays only
    ``base_cost_per_request``. Returns numpy arrays ``{"day", "without", "with"}`` (money, e.g. $).
    """
    import numpy as np

    _check_volume(training_cost, requests_per_day, price_per_m_tokens)
    day = np.arange(int(days) + 1, dtype=float) if np.ndim(days) == 0 else np.asarray(days, dtype=float)
    if day.size and day.min() < 0:
        raise CourseError("days cannot be negative; count from 0, the day the fine-tune goes live.")
    base_per_day = base_cost_per_request * requests_per_day
    without = day * (base_per_day + saving_per_day(tokens_saved_per_request, requests_per_day, price_per_m_tokens))
    with_ft = training_cost + day * base_per_day
    return {"day": day, "without": without, "with": with_ft}


def break_even_day(training_cost: float, tokens_saved_per_request: float, requests_per_day: float,
                   price_per_m_tokens: float) -> float | None:
    """The day on which the savings have repaid the training run; None when nothing is saved a day."""
    _check_volume(training_cost, requests_per_day, price_per_m_tokens)
    daily = saving_per_day(tokens_saved_per_request, requests_per_day, price_per_m_tokens)
    if daily <= 0:
        return None
    return training_cost / daily


def _money(x: float) -> str:
    return f"${x:,.2f}" if abs(x) < 100 else f"${x:,.0f}"


def break_even_sentence(training_cost: float, tokens_saved_per_request: float, requests_per_day: float,
                        price_per_m_tokens: float, days: float | None = None) -> str:
    """The break-even day in words, with the arithmetic behind it."""
    day = break_even_day(training_cost, tokens_saved_per_request, requests_per_day, price_per_m_tokens)
    daily = saving_per_day(tokens_saved_per_request, requests_per_day, price_per_m_tokens)
    how = (f"{tokens_saved_per_request:,.0f} tokens saved a request x {requests_per_day:,.0f} requests a day "
           f"at {_money(price_per_m_tokens)} per million tokens")
    if day is None:
        return (f"Never: the fine-tune saves {_money(daily)} a day ({how}), so the "
                f"{_money(training_cost)} training run is never repaid.")
    beyond = f", after the {days:,.0f} days shown" if days is not None and day > days else ""
    return (f"Break-even on day {day:,.1f}{beyond} (about {day * requests_per_day:,.0f} requests): the "
            f"{_money(training_cost)} training run is repaid by saving {_money(daily)} a day ({how}).")


def plot_cumulative_costs(days, training_cost: float, tokens_saved_per_request: float, requests_per_day: float,
                          price_per_m_tokens: float, base_cost_per_request: float = 0.0, ax=None):
    """Cumulative cost in $ against days, without and with the fine-tune; the break-even day marked."""
    import matplotlib.pyplot as plt

    curves = cumulative_costs(days, training_cost, tokens_saved_per_request, requests_per_day, price_per_m_tokens,
                              base_cost_per_request)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    ax.plot(curves["day"], curves["without"], label="no fine-tune (long prompt)")
    ax.plot(curves["day"], curves["with"], label="fine-tuned (training run + short prompt)")
    day = break_even_day(training_cost, tokens_saved_per_request, requests_per_day, price_per_m_tokens)
    last = float(curves["day"].max()) if curves["day"].size else 0.0
    if day is not None and day <= last:
        ax.axvline(day, ls="--", color="grey", lw=1)
        ax.annotate(f"break-even\nday {day:,.1f}", (day, 0), xytext=(6, 10), textcoords="offset points",
                    fontsize=8)
    else:
        note = "never breaks even" if day is None else f"break-even on day {day:,.0f}, beyond the plot"
        ax.annotate(note, (0.98, 0.04), xycoords="axes fraction", ha="right", fontsize=8)
    ax.set_xlabel("days since the fine-tune went live")
    ax.set_ylabel("cumulative cost ($)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _log_range(value: float, decades: int = 2) -> tuple[float, float, float]:
    """(min exponent, max exponent, start value) for a FloatLogSlider around ``value``."""
    centre = value if value > 0 else 1.0
    low, high = math.floor(math.log10(centre)) - decades, math.ceil(math.log10(centre)) + decades
    return float(low), float(high), value if value > 0 else 10.0 ** low


class BreakEvenExplorer:
    """Four sliders and a plot of the cumulative costs; ``summary()`` says the break-even day in words.

    Drive it in tests: ``ex.requests_per_day.value = 1e5`` then ``ex.break_even()`` / ``ex.summary()``.
    """

    def __init__(self, training_cost: float, tokens_saved_per_request: float, requests_per_day: float,
                 price_per_m_tokens: float, days: int = 365, draw: bool = True):
        import ipywidgets as w

        _check_volume(training_cost, requests_per_day, price_per_m_tokens)
        self.days, self.draw = int(days), draw
        style, layout = {"description_width": "210px"}, w.Layout(width="640px")
        lo, hi, start = _log_range(training_cost)
        self.training_cost = w.FloatLogSlider(value=start, base=10, min=lo, max=hi, step=0.05,
                                              description="training cost ($)", readout_format=",.2f",
                                              style=style, layout=layout)
        top_tokens = max(1000, int(round(abs(tokens_saved_per_request) * 4)))
        self.tokens_saved_per_request = w.IntSlider(value=int(round(tokens_saved_per_request)),
                                                    min=min(0, int(round(tokens_saved_per_request))), max=top_tokens,
                                                    step=max(1, top_tokens // 400),
                                                    description="tokens saved per request", style=style,
                                                    layout=layout)
        lo, hi, start = _log_range(requests_per_day)
        self.requests_per_day = w.FloatLogSlider(value=start, base=10, min=lo, max=hi, step=0.05,
                                                 description="requests per day", readout_format=",.0f",
                                                 style=style, layout=layout)
        top_price = max(1.0, price_per_m_tokens * 5)
        self.price_per_m_tokens = w.FloatSlider(value=price_per_m_tokens, min=0.0, max=top_price,
                                                step=top_price / 500, description="price per M tokens ($)",
                                                readout_format=".3f", style=style, layout=layout)
        self.sliders = [self.training_cost, self.tokens_saved_per_request, self.requests_per_day,
                        self.price_per_m_tokens]
        self.summary_box = w.HTML()
        self.summary_box.add_class("break-even-summary")
        self.output = w.Output()
        self.output.add_class("break-even-plot")
        for slider in self.sliders:
            slider.observe(self._update, names="value")
        self.widget = w.VBox([*self.sliders, self.summary_box, self.output])
        self.widget.add_class("break-even-explorer")
        self._update()

    def values(self) -> dict:
        """The four numbers as the sliders hold them now."""
        return {"training_cost": float(self.training_cost.value),
                "tokens_saved_per_request": float(self.tokens_saved_per_request.value),
                "requests_per_day": float(self.requests_per_day.value),
                "price_per_m_tokens": float(self.price_per_m_tokens.value)}

    def break_even(self) -> float | None:
        return break_even_day(**self.values())

    def summary(self) -> str:
        return break_even_sentence(**self.values(), days=self.days)

    def _update(self, _change=None) -> None:
        import html

        self.summary_box.value = f"<b>{html.escape(self.summary())}</b>"
        if not self.draw:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.output.clear_output(wait=True)
        with self.output:
            fig = plot_cumulative_costs(self.days, **self.values())
            display(fig)
            plt.close(fig)


def break_even_explorer(training_cost: float, tokens_saved_per_request: float, requests_per_day: float,
                        price_per_m_tokens: float, days: int = 365, show: bool = True) -> BreakEvenExplorer:
    """Sliders around your measured numbers and the cumulative-cost plot; returns the explorer object."""
    explorer = BreakEvenExplorer(training_cost, tokens_saved_per_request, requests_per_day, price_per_m_tokens,
                                 days=days)
    if show:
        from IPython.display import display

        display(explorer.widget)
    return explorer
