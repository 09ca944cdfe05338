"""Cases and checks for the graded exercises of lessons 01, 03 and 04 that the lessons do not show.

A grader that tests a learner on the examples the lesson printed tests memory, not understanding.
This module holds what the graders use instead:

* ``copied_from_course``: how much of the course's own prompts a learner's prompt repeats word for
  word (exercise 01.2: "in your own words");
* ``answered_labels``: which labels a prompt or an adapter actually gives (exercise 01.2 asks for
  varied answers; the trivial baseline itself is ``ftcourse.evals.majority_baseline``);
* ``unseen_failure_cases``: six failing Tillwise requests in the style of lesson 01, section 4,
  that the lesson never shows (exercise 01.3);
* ``format_problem_cases``: answers and the reason each one fails the house format, most of them not
  shown in the exercise (exercise 04.1);
* ``label_mask_examples`` / ``check_answer_labels``: chat examples whose answer tokens a learner's
  label mask must find, multi-turn ones included (exercise 04.2);
* ``check_dispatcher``: a learner's tool dispatcher run on ``ftcourse.tool_lab.dispatch_cases``, with
  tools that only record that they ran (exercise 03.2).

The expected values come from ``ftcourse.evals`` and ``ftcourse.lora`` wherever those define them,
so an exercise and the lessons can never disagree on what "compliant" or "the answer tokens" mean;
``tests/test_exercise_data.py`` checks the hand-written reasons against ``check_ticket_format``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from ..diagnosis import SUPPORT_SYSTEM, FailureCase

# --------------------------------------------------------------------------- "in your own words"
_WORD = re.compile(r"\w+")


def word_ngrams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive words of ``text`` (lower case, punctuation ignored)."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def shared_phrases(text: str, reference: str, n: int = 4) -> float:
    """Share (0 to 1) of the ``n``-word phrases of ``reference`` that also appear in ``text``.

    Copying a reference gives 1.0; writing the same instructions in other words gives a few
    per cent (a label list such as "billing, payments, hardware" is shared by any triage prompt).
    """
    ref = word_ngrams(reference, n)
    return len(ref & word_ngrams(text, n)) / len(ref) if ref else 0.0


def prompt_text(messages: Sequence[dict], ticket_text: str) -> str:
    """The text of every message of a prompt, with the ticket itself taken out (once)."""
    text = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    return text.replace(ticket_text, " ", 1)


def copied_from_course(prompt_fn: Callable[[str], list], ticket_text: str) -> dict[str, float]:
    """How much of the lesson's clear prompt and vague request ``prompt_fn`` repeats word for word,
    as the share of each one's 4-word phrases found in the prompt it builds for ``ticket_text``."""
    from ..prompts import CLEAR_PROMPT, VAGUE_PROMPT

    text = prompt_text(prompt_fn(ticket_text), ticket_text)
    return {"the clear prompt": shared_phrases(text, CLEAR_PROMPT),
            "the vague request": shared_phrases(text, VAGUE_PROMPT)}


def calls_any(fn: Callable, names: Iterable[str]) -> list[str]:
    """The names among ``names`` that appear in the source code of ``fn`` (empty when none do, or
    when the source cannot be read). Graders use it to ask for the learner's own code."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return []
    return [name for name in names if re.search(rf"\b{re.escape(name)}\b", source)]


# --------------------------------------------------------------------------- varied answers
def answered_labels(outputs: Sequence[str], key: str = "category") -> Counter:
    """How often each label of ``key`` was answered, over the answers that parse as ticket JSON."""
    from ..evals import parse_ticket

    parsed = (parse_ticket(o) for o in outputs)
    return Counter(p[key] for p in parsed if p is not None)


# --------------------------------------------------------------------------- exercise 01.3: unseen diagnosis cases
_OFFLINE_Q = ("We run a market stall and the signal keeps dropping. How many card payments can the register "
              "take in offline mode before it has to reconnect?")
_PLAN_Q = "Which Tillwise plan is our café on at the moment, and when is our next invoice due? Shop ID 20931."
_CANCEL_Q = "Please cancel the second card reader on our order 7781, we only need one. Thanks!"
_REPLY_T = ("Our receipt printer prints very faint text since Monday. We already changed the paper roll "
            "and cleaned the print head.")
_FEE_EXAMPLE_Q = ("Tillwise charges 2.6 % plus 10 cents on every card payment. We took 2 card payments of $50 "
                  "each. What did we pay in card fees, in dollars?")
_FEE_EXAMPLE_A = "Each payment: 2.6 % of 50 = 1.30, plus 0.10 = 1.40. 2 x 1.40 = 2.80. The fees are $2.80."
_FEE_Q = ("Tillwise charges 2.6 % plus 10 cents on every card payment. We took 4 card payments of $25 "
          "each. What did we pay in card fees, in dollars?")
_OUTAGE_Q = ("Your system was down for two hours on Saturday, our busiest day. What are you going to do "
             "about it?")

_CLAIMS_DONE = re.compile(r"\b(i have|i've|we have|we've|has been|have been|is now|is|are)\s+(now\s+)?"
                          r"(cancell?ed|removed|updated|changed|processed)\b", re.I)
_CANNOT = re.compile(r"\b(can ?not|can't|unable to|not able to|(do not|don't) have( the)?( ability| access)?)\b",
                     re.I)


def _does_not_pretend(answer: str) -> bool:
    """Right only if the answer admits it cannot do or see it, and claims nothing was done."""
    return bool(_CANNOT.search(answer)) and not _CLAIMS_DONE.search(answer)


def _fees_right(answer: str) -> bool:
    return bool(re.search(r"(?<![\d.])3(\.00?)?(?![\d]|\.\d*[1-9])", answer.replace("$", " ")))


def _reply_follows_house_rules(answer: str) -> bool:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s]
    return len(sentences) <= 3 and "the tillwise desk" in answer.lower()


def _offline_limit_given(answer: str) -> bool:
    return bool(re.search(r"(?<![\d.])500(?!\d)", answer.replace(",", "")))


def unseen_failure_cases() -> list[FailureCase]:
    """Six failing requests the lesson does not show, in a fixed order.

    Every cause of ``ftcourse.diagnosis.CAUSES`` appears at least once and ``missing tool`` twice,
    so the answers cannot be found by elimination.
    """
    support = {"role": "system", "content": SUPPORT_SYSTEM}
    return [
        FailureCase(
            id="card_fees",
            title="Card fees on a day's takings",
            request=_FEE_Q,
            prompt=[support, {"role": "user", "content": _FEE_EXAMPLE_Q},
                    {"role": "assistant", "content": _FEE_EXAMPLE_A}, {"role": "user", "content": _FEE_Q}],
            needed="4 x (0.65 + 0.10) = 3.00 dollars. The fee rule is in the question, and the prompt shows "
                   "the same sum worked out for two payments.",
            cause="weak base capability",
            explain="Nothing is missing from the prompt: the rule is stated and a worked example shows the steps. "
                    "A 135M-parameter model still cannot do the arithmetic, and a small fine-tune would not "
                    "create that skill. Let code compute the fees, or use a stronger model.",
            is_right=_fees_right,
        ),
        FailureCase(
            id="shop_plan",
            title="Which plan is this café on?",
            request=_PLAN_Q,
            prompt=[support, {"role": "user", "content": _PLAN_Q}],
            needed="Shop 20931's current plan and its next billing date, which only the account service holds.",
            cause="missing tool",
            explain="This is live state of one shop's account, in no document and no training set. The model "
                    "needs a tool that asks the account service; a plan name it makes up is worse than none.",
            is_right=_does_not_pretend,
        ),
        FailureCase(
            id="faint_printer_reply",
            title="A reply to a printer ticket, written to a loose request",
            request=_REPLY_T,
            prompt=[support, {"role": "user", "content": f"Write a reply to this ticket:\n\n{_REPLY_T}"}],
            needed="The desk's reply rules: at most three sentences, the next step first, signed 'The Tillwise desk'.",
            cause="ambiguous instruction",
            explain="The desk has clear rules for a reply, but the request never stated them, so any length and "
                    "any sign-off is a fair reading of 'write a reply'. Put the rules in the prompt and check "
                    "the result before anything else.",
            is_right=_reply_follows_house_rules,
        ),
        FailureCase(
            id="outage_credit",
            title="What do we owe a shop after an outage?",
            request=_OUTAGE_Q,
            prompt=[support, {"role": "user", "content": _OUTAGE_Q}],
            needed="A goodwill rule the desk never agreed on: of last month's 14 outage complaints, 8 got a free "
                   "month and 6 an apology only, depending on who answered.",
            cause="unstable desired behaviour",
            explain="There is no policy to retrieve and no instruction to write yet: the team itself answers both "
                    "ways. Agree on the rule first; training on these replies would teach the model the coin toss.",
            is_right=lambda _answer: False,  # no answer can match a rule the desk has not fixed
        ),
        FailureCase(
            id="offline_limit",
            title="How long can a register stay offline?",
            request=_OFFLINE_Q,
            prompt=[support, {"role": "user", "content": _OFFLINE_Q}],
            needed="Tillwise's product sheet: a register stores up to 500 card transactions offline.",
            cause="missing context",
            explain="The limit is written on Tillwise's product sheet, which the model has never read. Retrieve "
                    "the note and put it in the prompt; it changes with the product, so keep it out of the weights.",
            is_right=_offline_limit_given,
        ),
        FailureCase(
            id="cancel_reader",
            title="Cancel one card reader of an order",
            request=_CANCEL_Q,
            prompt=[support, {"role": "user", "content": _CANCEL_Q}],
            needed="A change to order 7781 in the order system, which only the orders service can make.",
            cause="missing tool",
            explain="This is an action on a live system. Without a tool that calls the orders service the model "
                    "can only claim it cancelled the reader, which is worse than saying it cannot.",
            is_right=_does_not_pretend,
        ),
    ]


# --------------------------------------------------------------------------- exercise 04.1: why an answer fails
FORMAT_PROBLEMS = ("not a JSON object", "wrong keys", "unknown label")

_GOOD = '{"category": "billing", "urgency": "high"}'


def format_problem_examples() -> list[tuple[str, str]]:
    """The few ``(answer, reason)`` pairs the exercise shows; the grader uses many more."""
    return [
        (_GOOD, ""),
        ("Sure! " + _GOOD, "not a JSON object"),
        ('{"urgency": "high", "category": "billing"}', "wrong keys"),
        ('{"category": "Billing", "urgency": "high"}', "unknown label"),
    ]


def format_problem_cases() -> list[tuple[tuple, str]]:
    """``((answer,), reason)`` for a learner's ``format_problem``: the examples above, then edge cases
    the exercise does not show (repeated keys, escapes, two objects, values that are not strings)."""
    nested = '{"category": {"name": "billing"}, "urgency": "high"}'
    cases = format_problem_examples() + [
        # compliant, however it is spaced or escaped
        ("\n\t" + _GOOD + "  \n", ""),
        ('{"category":"hardware","urgency":"urgent"}', ""),
        ('{ "category" : "feature_request" ,\n  "urgency" : "low" }', ""),
        ('{"category": "payments", "urgency": "\\u0068igh"}', ""),
        ('{"categ\\u006fry": "inventory", "urgency": "normal"}', ""),
        ('{"category": "how_to", "urgency": "urgent"}', ""),  # a wrong label pair, but the format is right
        # not one JSON object
        (_GOOD + "\n" + _GOOD, "not a JSON object"),
        (_GOOD + " I hope this helps.", "not a JSON object"),
        ("```json\n" + _GOOD + "\n```", "not a JSON object"),
        ("[" + _GOOD + "]", "not a JSON object"),
        (json.dumps(_GOOD), "not a JSON object"),  # a JSON string that holds the object
        ('{"category": "billing", "urgency": "high",}', "not a JSON object"),
        ("{'category': 'billing', 'urgency': 'high'}", "not a JSON object"),
        ('{"category": "billing", "urgency": "high"', "not a JSON object"),
        ("billing, high", "not a JSON object"),
        ("null", "not a JSON object"),
        ("", "not a JSON object"),
        (None, "not a JSON object"),
        # an object, but not exactly the two keys in the house order
        ('{"category": "billing"}', "wrong keys"),
        ("{}", "wrong keys"),
        ('{"category": "billing", "urgency": "high", "reason": "charged twice"}', "wrong keys"),
        ('{"category": "billing", "urgency": "high", "urgency": "low"}', "wrong keys"),
        ('{"category": "billing", "category": "billing", "urgency": "high"}', "wrong keys"),
        ('{"Category": "billing", "urgency": "high"}', "wrong keys"),
        ('{"category ": "billing", "urgency": "high"}', "wrong keys"),
        # the right keys, but a value that is not a house label
        ('{"category": "billing", "urgency": "critical"}', "unknown label"),
        ('{"category": "refund", "urgency": "high"}', "unknown label"),
        ('{"category": " billing", "urgency": "high"}', "unknown label"),
        ('{"category": ["billing"], "urgency": "high"}', "unknown label"),
        (nested, "unknown label"),
        ('{"category": "billing", "urgency": null}', "unknown label"),
        ('{"category": "billing", "urgency": 2}', "unknown label"),
    ]
    return [((answer,), reason) for answer, reason in cases]


# --------------------------------------------------------------------------- exercise 04.2: find the answer tokens
def label_mask_examples() -> list[tuple[str, list[dict]]]:
    """``(name, messages)`` chat examples for an answer-only label mask; the last turn is the answer.

    Besides a ticket and a general question, they include the cases a quick solution gets wrong:
    earlier assistant turns (only the last one is learned), and the text ``assistant`` on a line of
    its own inside the answer (only the ``<|im_start|>`` header opens a turn).
    """
    from ..datasets import load_general, load_tickets
    from ..prompts import TRIAGE_SYSTEM, few_shot_messages

    ticket = load_tickets("train")[0]
    general = load_general("mix")[0]
    few_shot_ticket = load_tickets("train")[1]
    return [
        ("a training ticket", ticket.messages),
        ("a general question (no system turn)", general["messages"]),
        ("a ticket after worked examples (earlier assistant turns)",
         [{"role": "system", "content": TRIAGE_SYSTEM}, *few_shot_messages(),
          {"role": "user", "content": few_shot_ticket.text},
          {"role": "assistant", "content": few_shot_ticket.expected}]),
        ("a follow-up question", [
            {"role": "user", "content": "What is 7 times 8?"},
            {"role": "assistant", "content": "7 times 8 is 56."},
            {"role": "user", "content": "And half of that?"},
            {"role": "assistant", "content": "Half of 56 is 28."}]),
        ("an answer that writes the word assistant on its own line", [
            {"role": "user", "content": "Write the word assistant on a line of its own, between two lines of dashes."},
            {"role": "assistant", "content": "---\nassistant\n---"}]),
    ]


def _fail(message: str):
    from .check import CheckFailed

    return CheckFailed(message)


def check_answer_labels(fn: Callable, tok, what: str = "answer_only_labels") -> None:
    """Grade a learner's ``fn(input_ids, tok) -> labels`` against ``ftcourse.lora.encode_example``.

    For each example of ``label_mask_examples`` the labels must be ``-100`` up to and including the
    last ``<|im_start|>assistant`` header, and the token ids from there to the end; on ids without
    any such header ``fn`` must raise ``ValueError``. A failure names the example, the first wrong
    position and its token.
    """
    from ..chat import render
    from ..lora.data import IGNORE, encode_example
    from .check import expect_true

    hint = ("find where the LAST '<|im_start|>assistant\\n' header ends (compare token ids, e.g. "
            "tok('<|im_start|>assistant\\n', add_special_tokens=False).input_ids); "
            f"everything up to there is {IGNORE}, everything after it, <|im_end|> included, keeps its id")
    for name, messages in label_mask_examples():
        encoded = encode_example(tok, messages)
        ids, want = list(encoded["input_ids"]), list(encoded["labels"])
        try:
            got = fn(list(ids), tok)
        except NotImplementedError:
            raise _fail(f"{what}: expected a working function\n  got: NotImplementedError: it is not written yet\n"
                        "  hint: replace `raise NotImplementedError()` with your code, run that cell, "
                        "then run this one again") from None
        except Exception as exc:
            raise _fail(f"{what} on {name}: expected a list of labels\n  got: it raised "
                        f"{type(exc).__name__}: {exc}\n  hint: {hint}") from exc
        try:
            got = [int(x) for x in got]
        except (TypeError, ValueError):
            raise _fail(f"{what} on {name}: expected a list of ints\n  got: {type(got).__name__}") from None
        if len(got) != len(ids):
            raise _fail(f"{what} on {name}: expected {len(ids)} labels, one per token\n  got: {len(got)}")
        wrong = next((i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w), None)
        if wrong is not None:
            token = tok.convert_ids_to_tokens(ids[wrong])
            part = "the prompt" if want[wrong] == IGNORE else "the answer"
            raise _fail(f"{what} on {name}: expected label {want[wrong]} at position {wrong} "
                        f"(token {token!r}, in {part})\n  got: {got[wrong]}\n  hint: {hint}")
    no_answer = tok(render(tok, [{"role": "user", "content": "Hello!"}], system=False, add_generation_prompt=False),
                    add_special_tokens=False).input_ids
    try:
        fn(list(no_answer), tok)
    except ValueError:
        pass
    except Exception as exc:
        raise _fail(f"{what} on ids with no assistant turn: expected ValueError\n  got: it raised "
                    f"{type(exc).__name__}: {exc}") from exc
    else:
        raise _fail(f"{what} on ids with no assistant turn: expected ValueError (there is no answer to learn)\n"
                    "  got: it returned labels")
    expect_true(True, what=f"{what}: {len(label_mask_examples())} examples, and one with no answer")


# --------------------------------------------------------------------------- exercise 03.2: the dispatcher
def _dispatch_tools(ran: list) -> dict:
    """The grader's tools: the Tillwise schemas, with functions that only record that they ran."""
    from ..tools import tillwise_schemas

    side_effects = {"change_plan", "issue_refund"}
    tools = {}
    for schema in tillwise_schemas():
        name = schema["function"]["name"]

        def fake(_name=name, **arguments):
            ran.append((_name, arguments))
            return {"tool": _name, "arguments": arguments}

        tools[name] = (fake, schema, name in side_effects)
    return tools


def check_dispatcher(dispatch: Callable, what: str = "dispatch") -> None:
    """Grade a learner's ``dispatch(answer, tools, customer_id)`` on ``dispatch_cases``: good answers
    give ``("ok", result)`` (the tool ran once), ``("no_call", None)`` or ``("needs_confirmation",
    None)`` (nothing ran); every bad answer gives ``("refused", why)`` with a reason, and runs nothing."""
    from ..tool_lab import DISPATCH_CUSTOMER, dispatch_cases
    from .check import CheckFailed, expect_true

    good, bad = dispatch_cases()

    def call(answer):
        ran: list = []
        try:
            got = dispatch(answer, _dispatch_tools(ran), DISPATCH_CUSTOMER)
        except NotImplementedError:
            raise CheckFailed(f"{what}: expected a working function\n  got: NotImplementedError: it is not "
                              "written yet\n  hint: replace `raise NotImplementedError()` with your code, run "
                              "that cell, then run this one again") from None
        except Exception as exc:
            raise CheckFailed(f"{what}({answer!r:.120}): expected a result, not an exception\n  got: it raised "
                              f"{type(exc).__name__}: {exc}\n  hint: a dispatcher refuses bad input with a "
                              "reason; it never crashes on it") from exc
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise CheckFailed(f"{what}({answer!r:.120}): expected a pair (status, value)\n  got: {got!r:.200}")
        return tuple(got), ran

    for name, answer, expected in good:
        got, ran = call(answer)
        if expected[0] == "ok":
            want_ran = [(expected[1], expected[2])]
            if got[0] != "ok" or ran != want_ran:
                raise CheckFailed(f"{what} on {name}: expected ('ok', result) and the tool run once with "
                                  f"{expected[2]}\n  got: {got!r:.200}; tools run: {ran}")
            if got[1] != {"tool": expected[1], "arguments": expected[2]}:
                raise CheckFailed(f"{what} on {name}: expected the tool's own result as the value\n  got: {got[1]!r:.200}")
        else:
            if got != (expected[0], None) or ran:
                raise CheckFailed(f"{what} on {name}: expected ({expected[0]!r}, None) and no tool run\n"
                                  f"  got: {got!r:.200}; tools run: {ran}\n  hint: "
                                  + ("an empty list means no tool fits" if expected[0] == "no_call" else
                                     "a side-effecting tool runs only after the user says yes"))
    for name, answer in bad:
        got, ran = call(answer)
        if got[0] != "refused" or not isinstance(got[1], str) or not got[1].strip() or ran:
            raise CheckFailed(f"{what} on {name} ({answer!r:.100}): expected ('refused', why) with a reason, "
                              f"and no tool run\n  got: {got!r:.200}; tools run: {ran}\n  hint: check it in the "
                              "order of the rules; every refusal says why")
    expect_true(True, what=f"{what}: {len(good)} good answers handled, {len(bad)} bad ones refused, nothing run "
                           "that should not be")


__all__ = ["word_ngrams", "shared_phrases", "prompt_text", "copied_from_course", "calls_any",
           "answered_labels", "unseen_failure_cases", "FORMAT_PROBLEMS",
           "format_problem_examples", "format_problem_cases", "label_mask_examples", "check_answer_labels",
           "check_dispatcher"]
