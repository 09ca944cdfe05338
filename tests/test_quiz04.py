"""Quiz 04 states what the lab measured: the temperature claim with its limit, the full break-even bill,
and rates read against a baseline and their interval."""

import re

from ftcourse.classroom.quiz import load_quiz
from ftcourse.stats import wilson_interval


def _question(qid):
    return next(q for q in load_quiz("04").questions if q.id == qid)


def test_temperature_explanation_says_what_was_measured():
    q = _question("q04-temperature")
    (right,) = [o for o in q.options if o.correct]
    # the claim is tested, not asserted: full compliance falls at the highest temperature, the shape holds
    assert "'at every temperature'" in right.text
    assert "fell at the highest temperature" in right.explain and "shape" in right.explain
    assert not re.search(r"\d+ ?%", right.explain)  # no number the lesson may change


def test_break_even_counts_the_whole_bill():
    q = _question("q04-break-even")
    (right,) = [o for o in q.options if o.correct]
    for cost in ("dataset", "eval suite", "retrain", "hosting"):
        assert cost in right.text, cost
    compute_only = [o for o in q.options if "compute" in o.text and not o.correct]
    assert len(compute_only) == 1  # the training-compute-only formula is a wrong answer now
    # the explanation names the package's model of that bill, which must exist
    from ftcourse import cost

    assert "ftcourse.cost.OwnershipCosts" in right.explain and hasattr(cost, "OwnershipCosts")


def test_baseline_question_quotes_the_wilson_interval():
    q = _question("q04-baseline")
    (right,) = [o for o in q.options if o.correct]
    low, high = wilson_interval(2, 20)
    assert f"about {low:.0%} to {high:.0%}".replace("%", " %") in right.text
    assert "2 of 20" in q.prompt and "13 %" in q.prompt
