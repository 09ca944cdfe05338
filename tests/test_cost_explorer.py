"""The break-even calculator of lesson 05: days until a fine-tune has paid for its training run."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")

from ftcourse.cost import (  # noqa: E402
    BreakEvenExplorer,
    break_even_day,
    break_even_explorer,
    break_even_sentence,
    cumulative_costs,
    plot_cumulative_costs,
)
from ftcourse.errors import CourseError  # noqa: E402

# 2,700 tokens saved on each of 10,000 requests a day at $1 per million tokens: $27 a day
ARGS = dict(training_cost=270.0, tokens_saved_per_request=2700, requests_per_day=10_000, price_per_m_tokens=1.0)


def test_break_even_day_is_training_cost_over_daily_saving():
    assert break_even_day(**ARGS) == pytest.approx(10.0)
    assert break_even_day(**{**ARGS, "requests_per_day": 20_000}) == pytest.approx(5.0)
    assert break_even_day(**{**ARGS, "training_cost": 0.0}) == 0.0
    assert break_even_day(**{**ARGS, "tokens_saved_per_request": 0}) is None
    assert break_even_day(**{**ARGS, "tokens_saved_per_request": -5}) is None
    assert break_even_day(**{**ARGS, "price_per_m_tokens": 0.0}) is None
    with pytest.raises(CourseError, match="training_cost cannot be negative"):
        break_even_day(**{**ARGS, "training_cost": -1.0})


def test_cumulative_costs_cross_on_the_break_even_day():
    c = cumulative_costs(20, **ARGS, base_cost_per_request=0.001)
    assert list(c["day"][:3]) == [0.0, 1.0, 2.0] and len(c["day"]) == 21
    assert c["without"][0] == 0.0 and c["with"][0] == 270.0
    assert c["without"][10] == pytest.approx(c["with"][10])  # day 10: equal
    assert c["without"][5] < c["with"][5] and c["without"][15] > c["with"][15]
    assert c["with"][1] - c["with"][0] == pytest.approx(10.0)  # $0.001 x 10,000 requests a day
    days = cumulative_costs([0, 30, 365], **ARGS)
    assert list(days["day"]) == [0, 30, 365]
    with pytest.raises(CourseError, match="negative"):
        cumulative_costs([-1, 2], **ARGS)


def test_sentence_says_the_day_or_never():
    assert break_even_sentence(**ARGS).startswith("Break-even on day 10.0")
    assert "after the 5 days shown" in break_even_sentence(**ARGS, days=5)
    assert break_even_sentence(**{**ARGS, "tokens_saved_per_request": 0}).startswith("Never")


def test_plot_marks_the_break_even_day():
    import matplotlib.pyplot as plt

    fig = plot_cumulative_costs(30, **ARGS)
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # two cost lines and the break-even line
    assert ax.lines[2].get_xdata()[0] == pytest.approx(10.0)
    assert "$" in ax.get_ylabel() and "days" in ax.get_xlabel()
    assert any("break-even" in t.get_text() for t in ax.texts)
    plt.close(fig)
    fig = plot_cumulative_costs(30, **{**ARGS, "tokens_saved_per_request": 0})
    assert any("never" in t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


def test_explorer_sliders_move_the_break_even():
    ex = BreakEvenExplorer(**ARGS, days=60, draw=False)
    assert ex.break_even() == pytest.approx(10.0)
    assert "day 10.0" in ex.summary() and "day 10.0" in ex.summary_box.value
    ex.requests_per_day.value = 100_000
    assert ex.break_even() == pytest.approx(1.0, rel=1e-6)
    assert "day 1.0" in ex.summary_box.value
    ex.tokens_saved_per_request.value = 0
    assert ex.break_even() is None and ex.summary_box.value.startswith("<b>Never")
    # log sliders span two decades either side of the default
    assert ex.training_cost.min <= math.log10(270) - 2 and ex.training_cost.max >= math.log10(270) + 2
    assert ex.requests_per_day.min == 2 and ex.requests_per_day.max == 6
    assert len(ex.sliders) == 4 and "break-even-explorer" in ex.widget._dom_classes


def test_explorer_draws_and_handles_zero_defaults(capsys):
    ex = break_even_explorer(**{**ARGS, "training_cost": 0.0}, days=30)
    assert ex.training_cost.value > 0  # a log slider cannot hold 0: it starts at its minimum
    ex.price_per_m_tokens.value = 2.0  # redraws without error
    assert ex.break_even() < 0.01
