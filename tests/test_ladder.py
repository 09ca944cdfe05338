"""Ladder helpers: tables, plots and sentences that follow from the numbers."""

import pytest

from ftcourse.evals import TicketReport
from ftcourse.ladder import best_rung, describe_ladder, describe_step, ladder_rows, plot_ladder, remaining_gap


def report(rung, compliance, accuracy, tokens, n=50):
    return TicketReport(compliance=compliance, accuracy=accuracy, category_accuracy=accuracy, prompt_tokens=tokens,
                        latency_s=0.1, outputs=[], urgency_accuracy=accuracy, rung=rung, n=n)


@pytest.fixture
def climbing():
    return {"vague": report("vague", 0.0, 0.0, 60), "clear": report("clear", 0.6, 0.3, 400),
            "few_shot": report("few_shot", 0.9, 0.4, 600)}


def test_sentences_follow_the_numbers(climbing):
    lines = describe_ladder(climbing)
    assert "raised format compliance from 0% to 60% (+60 points)" in lines[0]
    assert "raised label accuracy from 0% to 30%" in lines[0]
    assert "(6.7x)" in lines[0]
    assert "few-shot" in lines[1] and "raised label accuracy from 30% to 40%" in lines[1]
    assert "still gets 30 of 50 tickets wrong (60%)" in lines[2]
    assert "5 of its answers break the format (10%)" in lines[2]


def test_sentences_say_so_when_a_rung_makes_things_worse():
    r = {"clear": report("clear", 0.8, 0.5, 400), "few_shot": report("few_shot", 0.7, 0.5, 600)}
    line = describe_step("clear", "few_shot", r)
    assert "lowered format compliance from 80% to 70%" in line and "left label accuracy at 50%" in line
    assert best_rung(r) == "clear"  # same accuracy, higher compliance


def test_no_gap_means_nothing_to_fine_tune():
    r = {"vague": report("vague", 0.2, 0.1, 60), "clear": report("clear", 1.0, 1.0, 400)}
    assert "no gap left" in describe_ladder(r)[-1]
    assert remaining_gap(r)["label_gap"] == 0


def test_best_rung_prefers_accuracy_then_fewer_tokens():
    r = {"clear": report("clear", 1.0, 0.5, 400), "few_shot": report("few_shot", 1.0, 0.5, 600)}
    assert best_rung(r) == "clear"
    r["few_shot"] = report("few_shot", 0.9, 0.6, 600)
    assert best_rung(r) == "few_shot"


def test_rows_and_plot(climbing):
    rows = ladder_rows(climbing)
    assert [row["rung"] for row in rows] == ["vague", "clear", "few-shot"]
    assert rows[1]["format compliance"] == "60%"
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_ladder(climbing)
    assert len(fig.axes) == 4


def test_label_accuracy_cases_catch_sloppy_metrics():
    import json

    from ftcourse.evals import parse_ticket
    from ftcourse.ladder import label_accuracy_cases

    cases = label_accuracy_cases(seed=1, n=60)
    assert cases[0] == (([], []), 0.0)
    assert cases == label_accuracy_cases(seed=1, n=60)  # repeatable
    values = [expected for _, expected in cases]
    assert 1.0 in values and any(0 < v < 1 for v in values)

    def strict(preds, gold):
        if not gold:
            return 0.0
        hits = 0
        for p, g in zip(preds, gold, strict=True):
            got = parse_ticket(p)
            hits += got is not None and got["category"] == g["category"] and got["urgency"] == g["urgency"]
        return hits / len(gold)

    def lenient(preds, gold):  # finds the labels anywhere in the answer: too kind
        if not gold:
            return 0.0
        return sum(g["category"] in p and g["urgency"] in p for p, g in zip(preds, gold, strict=True)) / len(gold)

    def category_only(preds, gold):
        if not gold:
            return 0.0
        hits = 0
        for p, g in zip(preds, gold, strict=True):
            try:
                hits += json.loads(p).get("category") == g["category"]
            except (ValueError, AttributeError):
                pass
        return hits / len(gold)

    def passes(fn):
        return all(abs(fn(*args) - expected) < 1e-9 for args, expected in cases)

    assert passes(strict)
    assert not passes(lenient)
    assert not passes(category_only)


def test_repeated_answers_are_called_out():
    same = '{"category": "billing", "urgency": "normal"}'
    r = {"vague": report("vague", 0.0, 0.0, 60, n=8),
         "few_shot": TicketReport(compliance=1.0, accuracy=0.25, category_accuracy=0.5, prompt_tokens=600,
                                  latency_s=0.1, outputs=[same] * 6 + ['{"category": "how_to", "urgency": "low"}'] * 2,
                                  urgency_accuracy=0.3, rung="few_shot", n=8)}
    lines = describe_ladder(r)
    assert any(f"6 of 8 are the same one, {same}" in line and "shape is right" in line for line in lines)
    assert "Every answer keeps the format" in lines[-1]


def test_baseline_and_target_sentences(climbing):
    base = report("majority", 1.0, 0.5, 0, n=50)
    lines = describe_ladder(climbing, baseline=base, target=0.8)
    assert any("cannot be told apart" in line for line in lines)  # 20/50 against 25/50 is within the noise
    assert any("below a constant answer" in line for line in describe_ladder(climbing, baseline=report("m", 1, 0.9, 0)))
    assert any("beats always answering" in line for line in describe_ladder(climbing, baseline=report("m", 1, 0.1, 0)))
    gap = remaining_gap(climbing, target=0.8)
    assert gap["measured_gap"] and gap["accuracy_high"] < 0.8
    assert not remaining_gap(climbing, target=0.45)["measured_gap"]
    rows = ladder_rows(climbing, baseline=base)
    assert rows[0]["rung"].startswith("majority") and "accuracy 95% CI" in rows[0]
