"""ftcourse.classroom.check: every helper passes on the right value and fails with a message that teaches."""

import pytest

from ftcourse.classroom.check import (
    CheckFailed,
    expect_at_least,
    expect_close,
    expect_equal,
    expect_function,
    expect_true,
)


def test_check_failed_is_an_assertion_error():
    assert issubclass(CheckFailed, AssertionError)


def test_expect_equal(capsys):
    expect_equal(3, 3, what="token count")
    assert "\u2713 token count" in capsys.readouterr().out
    with pytest.raises(CheckFailed) as info:
        expect_equal(4, 3, what="token count", hint="count the chat template too")
    msg = str(info.value)
    assert "token count: expected 3" in msg
    assert "got: 4" in msg
    assert "hint: count the chat template too" in msg


def test_expect_true():
    expect_true([1], what="non-empty")
    with pytest.raises(CheckFailed, match="the prompt names the labels") as info:
        expect_true(False, what="the prompt names the labels", hint="list all seven")
    assert "hint: list all seven" in str(info.value)


@pytest.mark.parametrize("value", [0.5, 0.5 + 1e-4, 1 / 2])
def test_expect_close_passes(value):
    expect_close(value, 0.5, tol=1e-3, what="accuracy")


@pytest.mark.parametrize("value, expected_text", [(0.6, "got: 0.6"), ("0.5", "a number"), (float("nan"), "nan"),
                                                  (None, "a number"), (True, "a number")])
def test_expect_close_fails(value, expected_text):
    with pytest.raises(CheckFailed) as info:
        expect_close(value, 0.5, tol=1e-3, what="accuracy", hint="divide by the number of cases")
    assert expected_text in str(info.value)
    assert "accuracy" in str(info.value)


def test_expect_close_accepts_numpy_scalars():
    np = pytest.importorskip("numpy")
    expect_close(np.float32(0.25), 0.25, tol=1e-6)
    expect_at_least(np.int64(3), 2)


def test_expect_at_least():
    expect_at_least(0.9, 0.9, what="compliance")
    with pytest.raises(CheckFailed, match="at least 0.9") as info:
        expect_at_least(0.85, 0.9, what="compliance")
    assert "got: 0.85" in str(info.value)


def _accuracy(pred, gold):
    return sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)


def test_expect_function_passes(capsys):
    expect_function(_accuracy, [((["a", "b"], ["a", "a"]), 0.5), ((["x"], ["x"]), 1.0)], what="accuracy")
    assert "accuracy: 2 cases" in capsys.readouterr().out


def test_expect_function_accepts_single_argument_cases():
    expect_function(len, [("abc", 3), (([1, 2],), 2)])


def test_expect_function_reports_the_failing_case():
    def wrong(pred, gold):
        return 0.0

    with pytest.raises(CheckFailed) as info:
        expect_function(wrong, [((["a"], ["a"]), 1.0)], what="accuracy", hint="compare pairwise")
    msg = str(info.value)
    assert "accuracy(['a'], ['a']): expected 1.0" in msg
    assert "got: 0.0" in msg
    assert "hint: compare pairwise" in msg


def test_expect_function_not_implemented_says_so():
    def todo(x):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not written yet"):
        expect_function(todo, [((1,), 1)])


def test_expect_function_crash_is_reported_with_its_cause():
    with pytest.raises(CheckFailed, match="ZeroDivisionError") as info:
        expect_function(lambda x: 1 / x, [((0,), 1)], what="inverse")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_expect_function_rejects_a_non_function():
    with pytest.raises(CheckFailed, match="a function"):
        expect_function(None, [((1,), 1)], what="count_tokens")


def test_long_values_are_shortened():
    with pytest.raises(CheckFailed) as info:
        expect_equal("x" * 5000, "y", what="text")
    assert len(str(info.value)) < 600
