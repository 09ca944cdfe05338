"""Quiz 03 holds what the issue asks for (where authorization belongs; why the call format is a
fine-tuning target when the answer is not), and its answer keys agree with the course's own parser
and AST match."""

import json
import re

from ftcourse.classroom.quiz import grade, load_quiz, validate_quiz_file
from ftcourse.tools import match_call, parse_tool_calls, tillwise_schemas


def _question(qid):
    return next(q for q in load_quiz("03").questions if q.id == qid)


def test_quiz_03_is_valid_and_complete():
    quiz = load_quiz("03")
    assert validate_quiz_file(quiz.path) == []
    assert len(quiz.questions) >= 8
    assert {q.kind for q in quiz.questions} == {"single", "multi", "match"}
    ids = {q.id for q in quiz.questions}
    assert {"q03-authorization", "q03-format-not-answer"} <= ids


def test_authorization_belongs_in_the_executor():
    q = _question("q03-authorization")
    assert "Where does the refusal belong" in q.prompt
    (right,) = [o for o in q.options if o.correct]
    assert "executor" in right.text and "signed-in session" in right.text
    wrong = " ".join(o.text for o in q.options if not o.correct)
    for place in ("system prompt", "fine-tune", "result"):  # the tempting wrong places are offered
        assert place in wrong, place


def test_the_format_is_the_target_and_the_answer_is_not():
    q = _question("q03-format-not-answer")
    assert "format" in q.prompt and "answer" in q.prompt
    (right,) = [o for o in q.options if o.correct]
    assert "every request" in right.text and "database" in right.text
    assert "seed 000" in q.source


def _call(text: str) -> dict:
    """`name(key=value, ...)` as written in an option, values in JSON."""
    name, args = re.fullmatch(r"`(\w+)\((.*)\)`", text).groups()
    arguments = {k: json.loads(v) for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', args)}
    return {"name": name, "arguments": arguments}


def test_ast_match_key_agrees_with_the_course_metric():
    q = _question("q03-ast-match")
    schemas = {s["function"]["name"]: s for s in tillwise_schemas()}
    gold = {"name": "issue_refund", "arguments": {"order_id": "O-5003", "amount": 59.0}}
    for option in q.options:
        call = _call(option.text)
        assert match_call(call, gold, schemas["issue_refund"]).ok == option.correct, option.text
    assert not grade(q, range(len(q.options))).correct


def test_strict_parser_key_agrees_with_the_parser():
    q = _question("q03-strict-parser")
    schemas = tillwise_schemas()
    answers = [o for o in q.options if o.text.startswith("`")]
    assert len(answers) >= 4
    for option in answers:
        text = option.text[1:-1]
        assert parse_tool_calls(text, tools=schemas).ok != option.correct, option.text
    (spaces,) = [o for o in q.options if "newline" in o.text]
    gold = '<tool_call>[{"name": "get_stock", "arguments": {"store": "denver", "sku": "TW-CR2"}}]</tool_call>'
    assert parse_tool_calls("\n" + gold + "  ", tools=schemas).ok and not spaces.correct


def test_match_question_uses_every_choice_and_no_single_choice_passes():
    q = _question("q03-which-mechanism")
    answers = [item.answer for item in q.items]
    assert set(answers) == set(q.choices)
    assert grade(q, answers).correct
    for choice in q.choices:
        assert not grade(q, [choice] * len(q.items)).correct
    assert [item.answer for item in q.items if "right now" in item.text] == ["A tool call"]
