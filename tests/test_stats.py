"""Wilson intervals, rates and the paired sign test."""

import pytest

from ftcourse.stats import Rate, beats_paired, wilson_interval


def test_wilson_known_values():
    lo, hi = wilson_interval(8, 60)  # the majority baseline of the ticket test set
    assert 0.06 < lo < 0.07 and 0.24 < hi < 0.25
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_narrows_with_n():
    small, large = wilson_interval(5, 10), wilson_interval(50, 100)
    assert small[1] - small[0] > large[1] - large[0]


def test_wilson_refuses_nonsense():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 3)


def test_rate_prints_n_and_interval():
    r = Rate.from_flags([True, False, False, True])
    assert (r.successes, r.n) == (2, 4)
    assert "2/4" in str(r) and "95 % CI" in str(r)


def test_beats_needs_more_than_one_case():
    assert not Rate.of(31, 60).beats(Rate.of(30, 60))
    assert Rate.of(32, 60).beats(Rate.of(8, 60))


def test_paired_sign_test():
    a = [True] * 10 + [False] * 50
    b = [False] * 10 + [False] * 50
    assert beats_paired(a, b)
    assert not beats_paired(b, a)
    assert not beats_paired([True, False], [False, True])


def test_two_proportion_test_is_less_strict_than_interval_overlap():
    from ftcourse.stats import significantly_above

    late, early = Rate.of(54, 60), Rate.of(43, 60)
    assert significantly_above(late, early) and not significantly_above(early, late)
    assert not significantly_above(Rate.of(31, 60), Rate.of(30, 60))
