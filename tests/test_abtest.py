"""The blind A/B test of lesson 05 on tiny hand-made answers (no model)."""

import pytest

from ftcourse.abtest import (
    BlindAB,
    Pair,
    ab_decision,
    blind_pairs,
    decisive_pairs_needed,
    judge,
    judge_all,
    picks_to_outcomes,
    show_blind_ab,
    win_rate,
)

INPUTS = ["ticket 1", "ticket 2", "ticket 3", "ticket 4"]
TUNED = ["billing", "bug", "refund", "other"]
BASE = ["billing", "feature", "refund <b>now</b>", "bug"]
GOLD = ["billing", "bug", "refund", "bug"]


def exact(answer, gold):
    return answer.strip() == gold


def test_pairs_keep_each_answer_with_its_system_and_randomise_sides():
    pairs = blind_pairs(INPUTS * 10, TUNED * 10, BASE * 10, seed=3)
    assert [p.index for p in pairs] == list(range(40))
    for p, a, b in zip(pairs, TUNED * 10, BASE * 10, strict=True):
        assert (p.answer_a, p.answer_b) == (a, b)
        assert {p.left, p.right} == {a, b}
        assert p.side_of(p.left_is) == "left"
    sides = [p.left_is for p in pairs]
    assert 5 < sides.count("a") < 35  # both sides get used
    assert sides == [p.left_is for p in blind_pairs(INPUTS * 10, TUNED * 10, BASE * 10, seed=3)]
    assert sides != [p.left_is for p in blind_pairs(INPUTS * 10, TUNED * 10, BASE * 10, seed=4)]


def test_length_mismatch_names_the_lengths():
    with pytest.raises(ValueError, match="4 inputs, 3 answers from A, 4 answers from B"):
        blind_pairs(INPUTS, TUNED[:3], BASE)
    with pytest.raises(ValueError, match="4 inputs, 2 gold"):
        blind_pairs(INPUTS, TUNED, BASE, gold=GOLD[:2])
    with pytest.raises(ValueError, match="left_is"):
        Pair(0, "x", "l", "r", "c")


def test_judge_right_beats_wrong_and_equal_is_a_tie():
    assert judge(("bug", "feature", "bug"), exact) == "a"
    assert judge(("feature", "bug", "bug"), exact) == "b"
    assert judge(("bug", "bug", "bug"), exact) == "tie"
    assert judge(("x", "y", "bug"), exact) == "tie"
    pairs = blind_pairs(INPUTS, TUNED, BASE, gold=GOLD, seed=1)
    assert judge_all(pairs, exact) == ["tie", "a", "a", "b"]  # independent of the sides
    with pytest.raises(ValueError, match="no gold"):
        judge(blind_pairs(INPUTS, TUNED, BASE)[0], exact)


def test_picks_unblind_through_the_sides():
    pairs = [Pair(0, "i", "A", "B", "a"), Pair(1, "i", "B", "A", "b"), Pair(2, "i", "A", "B", "a")]
    assert picks_to_outcomes(pairs, ["left", "left", "tie"]) == ["a", "b", "tie"]
    assert picks_to_outcomes(pairs, ["right", "2", "1"]) == ["b", "a", "a"]
    with pytest.raises(ValueError, match="3 pairs, 2 picks"):
        picks_to_outcomes(pairs, ["left", "left"])
    with pytest.raises(ValueError, match="'left'"):
        picks_to_outcomes(pairs, ["left", "up", "tie"])


def test_win_rate_counts_decisive_pairs_and_ties_as_half():
    r = win_rate(["a", "a", "b", "tie", "a", "tie"])
    assert (r["wins"], r["losses"], r["ties"], r["n"], r["n_decisive"]) == (3, 1, 2, 6, 4)
    assert (r["rate"].successes, r["rate"].n) == (3, 4)
    assert r["tie_as_half"].value == pytest.approx(4 / 6)
    assert r["tie_as_half"].low < 4 / 6 < r["tie_as_half"].high
    assert r["baseline"] == 0.5
    rb = win_rate(["a", "a", "b", "tie"], who="b")
    assert (rb["wins"], rb["losses"]) == (1, 2)
    with pytest.raises(ValueError, match="picks_to_outcomes"):
        win_rate(["left"])


def test_decision_ships_only_when_the_interval_clears_half():
    ship = ab_decision(win_rate(["a"] * 18 + ["b"] * 2 + ["tie"] * 5))
    assert ship.startswith("Ship tuned") and "25 pairs, 5 ties, 20 decisive" in ship
    prefer = ab_decision(win_rate(["a"] * 2 + ["b"] * 18), name_b="few-shot prompt")
    assert prefer.startswith("Prefer few-shot prompt")
    unclear = ab_decision(win_rate(["a"] * 6 + ["b"] * 4 + ["tie"] * 3))
    assert unclear.startswith("No measured difference") and "keep the cheaper one" in unclear
    assert "10 decisive" in unclear and "3 ties" in unclear
    assert f"about {decisive_pairs_needed(0.6)} decisive pairs" in unclear
    assert "no pair was decisive" in ab_decision(win_rate(["tie", "tie"]))


def test_decisive_pairs_needed_is_where_the_interval_leaves_half():
    from ftcourse.stats import wilson_interval

    n = decisive_pairs_needed(0.75)
    assert wilson_interval(0.75 * n, n)[0] > 0.5
    assert decisive_pairs_needed(0.25) == n
    assert decisive_pairs_needed(0.5) is None


def test_widget_walks_the_pairs_and_unblinds():
    pairs = blind_pairs(INPUTS, TUNED, BASE, gold=GOLD, seed=1)
    seen = []
    view = BlindAB(pairs, on_done=seen.append, correct_fn=exact)
    assert "abtest" in view.widget._dom_classes
    assert view.progress.value == "pair 1 of 4"
    assert "ticket 1" in view.input_box.value
    assert "Answer 1" in view.answer_left.value and "Answer 2" in view.answer_right.value
    # pick the tuned answer on pair 2 and 3, the base answer on pair 4, tie on pair 1
    view.tie_button.click()
    assert view.progress.value == "pair 2 of 4"
    for pair in pairs[1:3]:
        if pair.index == 2:
            assert "&lt;b&gt;now&lt;/b&gt;" in view.answer_left.value + view.answer_right.value  # escaped
            assert "pre-wrap" in view.answer_left.value
        (view.left_button if pair.left_is == "a" else view.right_button).click()
    (view.right_button if pairs[3].left_is == "a" else view.left_button).click()
    assert view.done and seen == [view]
    assert view.outcomes() == ["tie", "a", "a", "b"]
    assert view.agreement().successes == 4
    assert view.left_button.disabled and view.tie_button.disabled
    text = view.result_box.value
    assert "abtest-result" in view.result_box._dom_classes
    assert "<table>" in text and "tuned" in text and "Automatic judge" in text and "agree" in text
    assert "No measured difference" in text
    view.left_button.click()  # ignored once done
    assert len(view.picks) == 4


def test_widget_without_gold_has_no_judge_and_classes_are_stable():
    pairs = blind_pairs(INPUTS[:2], TUNED[:2], BASE[:2])
    view = BlindAB(pairs, correct_fn=exact)
    for button, cls in ((view.left_button, "abtest-pick-left"), (view.right_button, "abtest-pick-right"),
                        (view.tie_button, "abtest-tie")):
        assert cls in button._dom_classes
    view.pick("left")
    view.pick("right")
    assert view.judge_outcomes() is None and view.agreement() is None
    assert "Automatic judge" not in view.result_box.value
    with pytest.raises(ValueError, match="no pairs"):
        BlindAB([])


def test_show_blind_ab_returns_the_view(capsys):
    view = show_blind_ab(blind_pairs(["q"], ["x"], ["y"]), title="Try it")
    assert isinstance(view, BlindAB) and "Try it" in view.title.value
