"""Five failing Tillwise requests, each with a different cause: the diagnosis section of lesson 01.

"The model answered wrong, let's fine-tune it" is not a diagnosis. Each case below fails for one
named reason, and each reason has its own fix:

============================  ===================================================  ======================
cause                         what it looks like                                   smallest fix
============================  ===================================================  ======================
missing context               the answer depends on a fact the model never saw     retrieval / database
missing tool                  the answer depends on live state or an action        a tool call
ambiguous instruction         the request never said what a good answer is         a clearer prompt
weak base capability          fails even with worked examples in its context       a stronger model
unstable desired behaviour    the team itself disagrees on the right answer        settle the rule first
============================  ===================================================  ======================

``run_failure_cases(model, tok)`` sends every case to the model in one batch and returns what came
back; ``failure_table(results)`` shows it without giving the causes away; ``score_diagnosis(answers)``
grades a dict ``{case_id: cause}`` (used by the exercise notebook). The widget that lets the learner
match each case with its cause is classroom machinery: ``ftcourse.classroom.show_diagnosis_quiz``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

CAUSES = (
    "missing context",
    "missing tool",
    "ambiguous instruction",
    "weak base capability",
    "unstable desired behaviour",
)

# The decision-tree input (ftcourse.decide.recommend) that each cause corresponds to.
CAUSE_TO_TREE = {
    "missing context": dict(missing="facts"),
    "missing tool": dict(missing="actions"),
    "ambiguous instruction": dict(missing="instructions"),
    "weak base capability": dict(missing="behaviour", repeated=True, stable=True, has_eval=True,
                                 tried_clear_prompt=True, tried_few_shot=True, works_in_context=False),
    "unstable desired behaviour": dict(missing="behaviour", repeated=True, stable=False),
}

SUPPORT_SYSTEM = "You are the support assistant of Tillwise, point-of-sale software for small shops and cafés."


@dataclass(frozen=True)
class FailureCase:
    """One request that went wrong, the evidence, and (kept out of the table) its cause."""

    id: str
    title: str
    request: str  # what the shop wrote
    prompt: list  # the chat messages the model is sent
    needed: str  # what a right answer needed, in one line
    cause: str  # one of CAUSES
    explain: str  # why that is the cause, and the fix
    is_right: Callable[[str], bool] = field(repr=False, compare=False, default=lambda _a: False)

    def recommendation(self):
        """What the decision tree recommends for this cause."""
        from .decide import recommend

        return recommend(**CAUSE_TO_TREE[self.cause])


def _contains_number(number: str) -> Callable[[str], bool]:
    pattern = re.compile(r"(?<![\d.])" + re.escape(number) + r"(?![\d])")
    return lambda answer: bool(pattern.search(answer.replace(",", "")))


def _is_ticket_json(answer: str) -> bool:
    from .evals import check_ticket_format

    return check_ticket_format(answer).ok


_NO_ACCESS = re.compile(r"\b(can ?not|can't|unable to|not able to|(do not|don't) have( the)?( ability to)?)"
                        r" (access|see|check|look up|view|confirm)", re.I)
_CLAIMS_STATUS = re.compile(r"\b(has|have|was|were|is) (been |already |now )?(sent|paid|processed|arrived|reached|"
                            r"delayed|on its way)\b|\b(processing|in the process of)\b|\byes\b", re.I)


def _admits_it_cannot_see(answer: str) -> bool:
    """Right only if it says it cannot see the payout and does not make up a status anyway."""
    from .evals import abstains

    return (abstains(answer) or bool(_NO_ACCESS.search(answer))) and not _CLAIMS_STATUS.search(answer)


def _ticket_prompt(text: str) -> list:
    from .prompts import ticket_prompt

    return ticket_prompt(text, "clear")


def _vague_prompt(text: str) -> list:
    from .prompts import ticket_prompt

    return ticket_prompt(text, "vague")


_REFUND_Q = ("We signed up for Tillwise Pro ten days ago and it is not right for our bakery. "
             "Can we still get our money back, and until when?")
_PAYOUT_Q = "Has yesterday's payout of our card takings reached our bank yet? Our shop ID is 20417."
_PRINTER_T = "Our receipt printer has been printing blank receipts since this morning. We write receipts by hand."
_TOTAL_Q = ("An order has 3 card readers at $59 each and 2 receipt printers at $129 each, "
            "minus a $25 discount. What is the order total in dollars?")
_TOTAL_EXAMPLE_Q = ("An order has 2 cash drawers at $45 each and 1 scanner at $30, minus a $10 discount. "
                    "What is the order total in dollars?")
_TOTAL_EXAMPLE_A = "2 x 45 = 90. 90 + 30 = 120. 120 - 10 = 110. The total is $110."
_BATTERY_T = ("The card reader battery runs flat by mid-afternoon, so we charge it over lunch and carry on "
              "taking cards.")


def failure_cases() -> list[FailureCase]:
    """The five cases, in a fixed order (one per cause, not in the order of CAUSES)."""
    return [
        FailureCase(
            id="vague_printer",
            title="A printer ticket, triaged with a vague request",
            request=_PRINTER_T,
            prompt=_vague_prompt(_PRINTER_T),
            needed='The desk\'s JSON: {"category": "hardware", "urgency": "normal"}.',
            cause="ambiguous instruction",
            explain="The request ('sort out this ticket') never said the answer must be the house JSON "
                    "with the house labels. Say so: the task, the exact format, the labels, the rules.",
            is_right=_is_ticket_json,
        ),
        FailureCase(
            id="payout_arrived",
            title="Did yesterday's payout arrive?",
            request=_PAYOUT_Q,
            prompt=[{"role": "system", "content": SUPPORT_SYSTEM}, {"role": "user", "content": _PAYOUT_Q}],
            needed="The live status of shop 20417's payout, which only the payouts service knows.",
            cause="missing tool",
            explain="No text the model was trained on, and no document, holds today's status of one "
                    "shop's payout. The model needs a tool that asks the payouts service; anything else "
                    "is a guess.",
            is_right=_admits_it_cannot_see,
        ),
        FailureCase(
            id="battery_urgency",
            title="How urgent is a battery that runs flat?",
            request=_BATTERY_T,
            prompt=_ticket_prompt(_BATTERY_T),
            needed="A settled rule: last month the desk labelled 9 such tickets 'normal' and 7 'high'.",
            cause="unstable desired behaviour",
            explain="Whatever the model answers, half of the team's own labels call it wrong, because the "
                    "team has not agreed on the rule. Settle it and relabel; training on split labels "
                    "teaches the model the split.",
            is_right=lambda _answer: False,  # no answer can match a target the team has not fixed
        ),
        FailureCase(
            id="refund_ten_days",
            title="A refund question after ten days",
            request=_REFUND_Q,
            prompt=[{"role": "system", "content": SUPPORT_SYSTEM}, {"role": "user", "content": _REFUND_Q}],
            needed="Tillwise's refund policy: a new subscription is refunded in full within 14 days.",
            cause="missing context",
            explain="The refund window is on Tillwise's policy sheet, which the model has never seen, and it "
                    "changes when the policy does. Retrieve the policy note and put it in the prompt; do not "
                    "train it into the weights.",
            is_right=_contains_number("14"),
        ),
        FailureCase(
            id="order_total",
            title="Adding up a hardware order",
            request=_TOTAL_Q,
            prompt=[{"role": "system", "content": SUPPORT_SYSTEM},
                    {"role": "user", "content": _TOTAL_EXAMPLE_Q},
                    {"role": "assistant", "content": _TOTAL_EXAMPLE_A},
                    {"role": "user", "content": _TOTAL_Q}],
            needed="3 x 59 + 2 x 129 - 25 = 410 dollars.",
            cause="weak base capability",
            explain="The prompt is clear and even holds a worked example, yet a 135M-parameter model "
                    "cannot do the arithmetic. A small fine-tune steers what a model can already do; it "
                    "does not create the missing skill. Use a stronger model, or let code do the sum.",
            is_right=_contains_number("410"),
        ),
    ]


@dataclass
class CaseResult:
    case: FailureCase
    answer: str

    @property
    def right(self) -> bool:
        return bool(self.case.is_right(self.answer))


def run_failure_cases(model, tok, cases=None, max_new_tokens: int = 32) -> list[CaseResult]:
    """Send every case to the model (one greedy batch) and keep the answers."""
    from .chat import generate_batch

    cases = list(cases or failure_cases())
    answers = generate_batch(model, tok, [c.prompt for c in cases], max_new_tokens=max_new_tokens,
                             progress=False)
    return [CaseResult(c, a) for c, a in zip(cases, answers, strict=True)]


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def failure_table(results: list[CaseResult], width: int = 110) -> list[dict]:
    """Rows to display: the case, the request, the model's answer, what was needed. No causes."""
    return [{"case": r.case.id, "request": _clip(r.case.request, width), "model answered": _clip(r.answer, width),
             "a right answer needed": r.case.needed, "right?": "yes" if r.right else "no"} for r in results]


@dataclass
class DiagnosisScore:
    right: int
    total: int
    wrong: dict[str, tuple[str, str]]  # case id -> (your cause, the cause)

    @property
    def all_right(self) -> bool:
        return self.right == self.total


def normalise_cause(cause: str) -> str:
    """Accept small variations: case, spaces, underscores, 'behavior'."""
    text = re.sub(r"[\s_\-]+", " ", str(cause)).strip().lower().replace("behavior", "behaviour")
    for c in CAUSES:
        if text == c or (text == "unstable behaviour" and c == "unstable desired behaviour"):
            return c
    return text


def score_diagnosis(answers: Mapping[str, str], cases=None) -> DiagnosisScore:
    """Grade ``{case_id: cause}`` against the cases; every case must be answered with one of CAUSES."""
    cases = list(cases or failure_cases())
    wrong = {}
    for c in cases:
        given = normalise_cause(answers.get(c.id, "")) if c.id in answers else "(no answer)"
        if given != c.cause:
            wrong[c.id] = (given, c.cause)
    return DiagnosisScore(right=len(cases) - len(wrong), total=len(cases), wrong=wrong)


__all__ = ["CAUSES", "CAUSE_TO_TREE", "FailureCase", "CaseResult", "failure_cases", "run_failure_cases",
           "failure_table", "score_diagnosis", "DiagnosisScore", "normalise_cause"]
