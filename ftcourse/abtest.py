"""A blind A/B test: the tuned model against the base model with its best prompt (lesson 05).

Both systems answer the same held-out inputs. Each pair is shown with its sides in a random order,
so whoever judges (you, a colleague, or an automatic judge where a gold answer exists) cannot favour
the tuned model by knowing which answer is its. Only then are the sides revealed and counted:

    pairs = blind_pairs(inputs, tuned_answers, base_answers, gold=gold, seed=0)
    outcomes = judge_all(pairs, correct_fn)          # or picks_to_outcomes(pairs, human_picks)
    print(ab_decision(win_rate(outcomes)))

The decision rule counts only the decisive pairs (ties say nothing about which is better) and asks
the 95 % Wilson interval of A's win rate to clear the coin-flip baseline of 50 %.
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .stats import Rate, wilson_interval

SIDES = ("a", "b")
PICKS = ("left", "right", "tie")
OUTCOMES = ("a", "b", "tie")


@dataclass(frozen=True)
class Pair:
    """One blinded comparison: ``left`` is shown as "Answer 1", ``right`` as "Answer 2".

    ``left_is`` says which system wrote the left answer ("a" or "b"); ``gold`` is the expected
    answer when the task has one (None otherwise).
    """

    index: int
    input: str
    left: str
    right: str
    left_is: str
    gold: str | None = None

    def __post_init__(self):
        if self.left_is not in SIDES:
            raise ValueError(f"left_is must be 'a' or 'b', got {self.left_is!r}")

    @property
    def answer_a(self) -> str:
        return self.left if self.left_is == "a" else self.right

    @property
    def answer_b(self) -> str:
        return self.right if self.left_is == "a" else self.left

    def side_of(self, who: str) -> str:
        """Where system ``who`` ("a" or "b") sits: "left" or "right"."""
        if who not in SIDES:
            raise ValueError(f"who must be 'a' or 'b', got {who!r}")
        return "left" if who == self.left_is else "right"

    def outcome_of(self, pick: str) -> str:
        """Turn a side pick ("left", "right", "tie") into the system it favours ("a", "b", "tie")."""
        pick = _normal_pick(pick)
        if pick == "tie":
            return "tie"
        if pick == "left":
            return self.left_is
        return "b" if self.left_is == "a" else "a"


def blind_pairs(inputs: Sequence[str], answers_a: Sequence[str], answers_b: Sequence[str],
                gold: Sequence[str | None] | None = None, seed: int = 0) -> list[Pair]:
    """Pair A's and B's answers input by input, each pair's sides put in a seeded random order."""
    inputs, answers_a, answers_b = list(inputs), list(answers_a), list(answers_b)
    if not len(inputs) == len(answers_a) == len(answers_b):
        raise ValueError(f"one answer from each system per input is needed: {len(inputs)} inputs, "
                         f"{len(answers_a)} answers from A, {len(answers_b)} answers from B")
    if gold is not None:
        gold = list(gold)
        if len(gold) != len(inputs):
            raise ValueError(f"gold needs one entry per input (None where there is none): {len(inputs)} "
                             f"inputs, {len(gold)} gold answers")
    rng = random.Random(seed)
    pairs = []
    for i, (text, a, b) in enumerate(zip(inputs, answers_a, answers_b, strict=True)):
        left_is = "a" if rng.random() < 0.5 else "b"
        left, right = (a, b) if left_is == "a" else (b, a)
        pairs.append(Pair(i, str(text), str(left), str(right), left_is, None if gold is None else gold[i]))
    return pairs


# --------------------------------------------------------------------------- judging
def judge(pair_or_answers, correct_fn: Callable[[str, str], bool]) -> str:
    """The automatic judge where a gold answer exists: "a", "b" or "tie".

    ``pair_or_answers`` is a :class:`Pair` or a tuple ``(answer_a, answer_b, gold)``;
    ``correct_fn(answer, gold)`` says whether one answer is right (pass the task's own scorer).
    A right answer beats a wrong one; both right or both wrong is a tie.
    """
    if isinstance(pair_or_answers, Pair):
        answer_a, answer_b, gold = pair_or_answers.answer_a, pair_or_answers.answer_b, pair_or_answers.gold
    else:
        try:
            answer_a, answer_b, gold = pair_or_answers
        except (TypeError, ValueError):
            raise ValueError("judge needs a Pair or a tuple (answer_a, answer_b, gold)") from None
    if gold is None:
        raise ValueError("this pair has no gold answer, so the automatic judge cannot decide it: "
                         "judge it by hand (show_blind_ab) or pass gold= to blind_pairs")
    a_right, b_right = bool(correct_fn(answer_a, gold)), bool(correct_fn(answer_b, gold))
    if a_right == b_right:
        return "tie"
    return "a" if a_right else "b"


def judge_all(pairs: Sequence[Pair], correct_fn: Callable[[str, str], bool]) -> list[str]:
    """:func:`judge` on every pair, in order."""
    return [judge(p, correct_fn) for p in pairs]


def _normal_pick(pick) -> str:
    key = str(pick).strip().lower()
    key = {"1": "left", "2": "right", "same": "tie", "=": "tie"}.get(key, key)
    if key not in PICKS:
        raise ValueError(f"a pick is 'left' (answer 1), 'right' (answer 2) or 'tie', got {pick!r}")
    return key


def picks_to_outcomes(pairs: Sequence[Pair], picks: Sequence[str]) -> list[str]:
    """Unblind side picks ("left" / "right" / "tie", also "1" / "2") into "a" / "b" / "tie"."""
    pairs, picks = list(pairs), list(picks)
    if len(pairs) != len(picks):
        raise ValueError(f"one pick per pair is needed: {len(pairs)} pairs, {len(picks)} picks")
    return [p.outcome_of(k) for p, k in zip(pairs, picks, strict=True)]


# --------------------------------------------------------------------------- counting and deciding
@dataclass(frozen=True)
class ScoreRate:
    """A share whose successes may be fractional (a tie counted as half a win), with its n.

    The interval is Wilson's formula applied to the fractional count: an approximation, good
    enough to read next to the decisive-pairs rate, which is the one the decision uses.
    """

    score: float
    n: int

    @property
    def value(self) -> float:
        return self.score / self.n if self.n else float("nan")

    @property
    def low(self) -> float:
        return wilson_interval(self.score, self.n)[0]

    @property
    def high(self) -> float:
        return wilson_interval(self.score, self.n)[1]

    def __str__(self) -> str:
        return f"{self.value:.0%} ({self.score:g}/{self.n}; 95 % CI {self.low:.0%}-{self.high:.0%})"


def win_rate(outcomes: Sequence[str], who: str = "a") -> dict:
    """Count a list of "a" / "b" / "tie" outcomes from the side of ``who``.

    Returns ``wins``, ``losses``, ``ties``, ``n`` (all pairs), ``n_decisive`` (pairs not tied),
    ``rate`` (a :class:`~ftcourse.stats.Rate` of wins over decisive pairs, 95 % Wilson interval),
    ``tie_as_half`` (a :class:`ScoreRate` over all pairs, each tie worth half a win), ``baseline``
    (0.5: the win rate of a coin flip) and ``who``.
    """
    if who not in SIDES:
        raise ValueError(f"who must be 'a' or 'b', got {who!r}")
    outcomes = list(outcomes)
    bad = sorted({repr(o) for o in outcomes if o not in OUTCOMES})
    if bad:
        raise ValueError(f"outcomes are 'a', 'b' or 'tie'; got {', '.join(bad)} "
                         "(turn side picks into outcomes with picks_to_outcomes)")
    other = "b" if who == "a" else "a"
    wins, losses, ties = outcomes.count(who), outcomes.count(other), outcomes.count("tie")
    return {"who": who, "wins": wins, "losses": losses, "ties": ties, "n": len(outcomes),
            "n_decisive": wins + losses, "rate": Rate.of(wins, wins + losses),
            "tie_as_half": ScoreRate(wins + ties / 2, len(outcomes)), "baseline": 0.5}


def decisive_pairs_needed(win_share: float, limit: int = 100_000) -> int | None:
    """Decisive pairs needed before a win rate of ``win_share`` has its whole 95 % interval off 50 %.

    None when ``win_share`` is 50 % (no number of pairs separates a coin flip from 50 %) or above
    ``limit``.
    """
    p = max(win_share, 1 - win_share)
    if not p > 0.5:
        return None
    n = 1
    while n <= limit:
        if wilson_interval(p * n, n)[0] > 0.5:
            return n
        n = n + 1 if n < 64 else int(n * 1.05) + 1
    return None


def ab_decision(result: dict, name_a: str = "tuned", name_b: str = "base + best prompt") -> str:
    """The decision rule as a sentence, from a :func:`win_rate` result.

    ``name_a`` names the side whose win rate ``result`` holds (``result["who"]``), ``name_b`` the other.
    Ship A only when the lower end of the 95 % interval of its win rate over decisive pairs is above
    50 %; prefer B when the upper end is below 50 %; otherwise no difference was measured.
    """
    rate: Rate = result["rate"]
    n, ties, decisive = result["n"], result["ties"], result["n_decisive"]
    counts = f"{n} pair{'s' if n != 1 else ''}, {ties} tie{'s' if ties != 1 else ''}, {decisive} decisive"
    if decisive == 0:
        return (f"No measured difference: no pair was decisive ({counts}). Keep the cheaper one, or "
                "collect more pairs where the two answers differ.")
    shown = (f"{name_a} won {rate.successes} of {decisive} decisive pairs: {rate.value:.0%} "
             f"(95 % CI {rate.low:.0%}-{rate.high:.0%}); {counts}")
    if rate.low > 0.5:
        return f"Ship {name_a}: {shown}. The whole interval is above 50 %, so {name_a} wins beyond the noise."
    if rate.high < 0.5:
        return (f"Prefer {name_b}: {shown}. The whole interval is below 50 %, so {name_b} wins beyond "
                "the noise.")
    needed = decisive_pairs_needed(rate.value)
    more = (f" If the win rate stayed at {rate.value:.0%}, about {needed} decisive pairs would settle it."
            if needed and needed > decisive else "")
    return (f"No measured difference: {shown}. The interval contains 50 %, so keep the cheaper one, "
            f"or collect more pairs.{more}")


# --------------------------------------------------------------------------- the widget
def _answer_html(label: str, text: str) -> str:
    return (f"<div style='border:1px solid #ccc;padding:6px;height:100%'><b>{label}</b>"
            f"<div style='white-space:pre-wrap;font-family:monospace;font-size:90%'>{html.escape(text)}</div></div>")


class BlindAB:
    """Judge the pairs one at a time, blind; after the last pick the sides are revealed.

    State is plain Python: ``picks`` (side picks so far), ``done``, ``outcomes()``, ``result()``.
    Drive it in tests with ``view.left_button.click()``, ``view.right_button.click()``,
    ``view.tie_button.click()`` (or ``view.pick("left")``).
    """

    def __init__(self, pairs: Sequence[Pair], title: str = "Blind A/B test: which answer is better?",
                 on_done: Callable[[BlindAB], None] | None = None,
                 correct_fn: Callable[[str, str], bool] | None = None,
                 name_a: str = "tuned", name_b: str = "base + best prompt"):
        import ipywidgets as w

        self.pairs = list(pairs)
        if not self.pairs:
            raise ValueError("no pairs to judge: build them with blind_pairs(inputs, answers_a, answers_b)")
        self.on_done, self.correct_fn = on_done, correct_fn
        self.name_a, self.name_b = name_a, name_b
        self.picks: list[str] = []
        self.done = False

        self.title = w.HTML(f"<h4>{html.escape(title)}</h4>")
        self.progress = w.Label()
        self.progress.add_class("abtest-progress")
        self.input_box = w.HTML()
        self.input_box.add_class("abtest-input")
        layout = w.Layout(width="50%")
        self.answer_left, self.answer_right = w.HTML(layout=layout), w.HTML(layout=layout)
        self.answer_left.add_class("abtest-answer-left")
        self.answer_right.add_class("abtest-answer-right")
        self.left_button = w.Button(description="1 is better")
        self.left_button.add_class("abtest-pick-left")
        self.right_button = w.Button(description="2 is better")
        self.right_button.add_class("abtest-pick-right")
        self.tie_button = w.Button(description="Same / can't tell")
        self.tie_button.add_class("abtest-tie")
        self.left_button.on_click(lambda _b: self.pick("left"))
        self.right_button.on_click(lambda _b: self.pick("right"))
        self.tie_button.on_click(lambda _b: self.pick("tie"))
        self.buttons = w.HBox([self.left_button, self.right_button, self.tie_button])
        self.result_box = w.HTML()
        self.result_box.add_class("abtest-result")
        self.widget = w.VBox([self.title, self.progress, self.input_box,
                              w.HBox([self.answer_left, self.answer_right]), self.buttons, self.result_box])
        self.widget.add_class("abtest")
        self._show_current()

    # -- state
    @property
    def current(self) -> int:
        """Index of the pair on screen (``len(pairs)`` once done)."""
        return len(self.picks)

    def pick(self, side: str) -> None:
        """Record a pick for the pair on screen and move on; ignored once done."""
        if self.done:
            return
        self.picks.append(_normal_pick(side))
        if len(self.picks) == len(self.pairs):
            self.done = True
            self._finish()
        else:
            self._show_current()

    def outcomes(self) -> list[str]:
        """The picks so far, unblinded: "a" / "b" / "tie"."""
        return picks_to_outcomes(self.pairs[:len(self.picks)], self.picks)

    def result(self) -> dict:
        """:func:`win_rate` of A over the picks so far."""
        return win_rate(self.outcomes(), who="a")

    def judge_outcomes(self) -> list[str | None] | None:
        """The automatic judge's verdict a pair (None where a pair has no gold); None without a correct_fn."""
        if self.correct_fn is None or all(p.gold is None for p in self.pairs):
            return None
        return [None if p.gold is None else judge(p, self.correct_fn) for p in self.pairs]

    def agreement(self) -> Rate | None:
        """How often your picks match the automatic judge, over the judged pairs picked so far."""
        verdicts = self.judge_outcomes()
        if verdicts is None:
            return None
        same = [mine == theirs for mine, theirs in zip(self.outcomes(), verdicts, strict=False) if theirs is not None]
        return Rate.from_flags(same)

    # -- display
    def _show_current(self) -> None:
        k, n = self.current, len(self.pairs)
        pair = self.pairs[k]
        self.progress.value = f"pair {k + 1} of {n}"
        self.input_box.value = (f"<div><b>Input</b><div style='white-space:pre-wrap'>{html.escape(pair.input)}"
                                "</div></div>")
        self.answer_left.value = _answer_html("Answer 1", pair.left)
        self.answer_right.value = _answer_html("Answer 2", pair.right)

    def _name(self, outcome: str) -> str:
        return {"a": self.name_a, "b": self.name_b, "tie": "tie"}[outcome]

    def _finish(self) -> None:
        n = len(self.pairs)
        self.progress.value = f"all {n} pairs judged"
        for button in (self.left_button, self.right_button, self.tie_button):
            button.disabled = True
        self.input_box.value = ""
        self.answer_left.value = self.answer_right.value = ""
        self.result_box.value = self.result_html()
        if callable(self.on_done):
            self.on_done(self)

    def result_html(self) -> str:
        """The unblinded table and the decision, as HTML."""
        esc = html.escape
        verdicts = self.judge_outcomes()
        head = ["pair", "input", "your pick", "answer 1 was", "your pick favours"]
        if verdicts is not None:
            head += ["judge (gold)", "agree"]
        rows = []
        for i, (pair, pick, outcome) in enumerate(zip(self.pairs, self.picks, self.outcomes(), strict=False)):
            text = pair.input if len(pair.input) <= 60 else pair.input[:57] + "..."
            cells = [str(pair.index + 1), esc(text),
                     {"left": "Answer 1", "right": "Answer 2", "tie": "same"}[pick],
                     esc(self._name(pair.left_is)), esc(self._name(outcome))]
            if verdicts is not None:
                verdict = verdicts[i]
                cells += ["-", "-"] if verdict is None else [esc(self._name(verdict)),
                                                              "yes" if verdict == outcome else "no"]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        table = ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")
        result = self.result()
        lines = [f"<p><b>Your verdict:</b> {esc(self.name_a)} won {result['wins']}, {esc(self.name_b)} won "
                 f"{result['losses']}, {result['ties']} tie(s) out of {result['n']} pairs. Win rate of "
                 f"{esc(self.name_a)} over decisive pairs: {esc(str(result['rate']))} (a coin flip: 50 %); "
                 f"ties as half a win: {esc(str(result['tie_as_half']))}.</p>",
                 f"<p><b>Decision:</b> {esc(ab_decision(result, self.name_a, self.name_b))}</p>"]
        if verdicts is not None:
            judged = [v for v in verdicts if v is not None]
            auto = win_rate(judged)
            lines.append(f"<p><b>Automatic judge</b> (right beats wrong, on the {len(judged)} pairs with a gold "
                         f"answer): {esc(ab_decision(auto, self.name_a, self.name_b))}</p>")
            lines.append(f"<p><b>You and the judge agree</b> on {esc(str(self.agreement()))} of the judged "
                         "pairs.</p>")
        return table + "".join(lines)


def show_blind_ab(pairs: Sequence[Pair], title: str = "Blind A/B test: which answer is better?",
                  on_done: Callable[[BlindAB], None] | None = None,
                  correct_fn: Callable[[str, str], bool] | None = None,
                  name_a: str = "tuned", name_b: str = "base + best prompt") -> BlindAB:
    """Show a :class:`BlindAB` in the notebook and return it (read ``.picks``, ``.result()`` later)."""
    from IPython.display import display

    view = BlindAB(pairs, title=title, on_done=on_done, correct_fn=correct_fn, name_a=name_a, name_b=name_b)
    display(view.widget)
    return view


__all__ = ["Pair", "blind_pairs", "judge", "judge_all", "picks_to_outcomes", "ScoreRate", "win_rate",
           "decisive_pairs_needed", "ab_decision", "BlindAB", "show_blind_ab"]
