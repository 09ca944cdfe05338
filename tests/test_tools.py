"""ftcourse.tools: schemas, the call format and chat template, the strict parser, the executor (the
security boundary), the AST-match metrics and the eval set of lesson 03.

The chat-template tests load the course *tokenizer* only (no weights) and are skipped when the model
has not been fetched yet.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from ftcourse import tools
from ftcourse.backoffice import checksum, open_backoffice
from ftcourse.errors import CourseError
from ftcourse.tools import (
    FAILURES,
    NO_CALL,
    Executor,
    ToolError,
    ToolRequest,
    assistant_message,
    call_accuracy,
    failure_counts,
    format_tool_calls,
    irrelevance_rate,
    load_hostile_calls,
    load_tool_requests,
    match_call,
    match_calls,
    parse_tool_calls,
    schema_errors,
    score_answer,
    tillwise_schemas,
)


@pytest.fixture()
def conn(tmp_path):
    c = open_backoffice(tmp_path / "bo.sqlite")
    yield c
    c.close()


@pytest.fixture(scope="module")
def schemas():
    return {s["function"]["name"]: s for s in tillwise_schemas()}


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def answer(*calls):
    return "<tool_call>" + json.dumps(list(calls)) + "</tool_call>"


# =========================================================================== schemas
def test_get_json_schema_gives_the_raw_schema_and_its_nullable():
    """What transformers 5 generates, before tightening: types and descriptions from the function,
    Literal hints as enums, no additionalProperties, and the non-standard `nullable` for `X | None`."""
    from transformers.utils import get_json_schema

    raw = get_json_schema(tools.TillwiseTools.issue_refund)
    params = raw["function"]["parameters"]
    assert raw["function"]["name"] == "issue_refund"
    assert raw["function"]["description"].startswith("Refund part or all of a hardware order")
    assert params["properties"]["amount"] == {"type": "number", "description": "How much to refund, in US dollars."}
    assert params["properties"]["reason"]["nullable"] is True and params["properties"]["reason"]["type"] == "string"
    assert params["required"] == ["order_id", "amount"]
    assert "additionalProperties" not in params
    store = get_json_schema(tools.TillwiseTools.get_stock)["function"]["parameters"]["properties"]["store"]
    assert store["enum"] == ["austin", "boston", "denver", "portland"]


def test_nullable_is_not_json_schema_and_tighten_fixes_it():
    from transformers.utils import get_json_schema

    raw = get_json_schema(tools.TillwiseTools.issue_refund)
    # a standard validator ignores "nullable" and rejects null...
    assert schema_errors({"order_id": "O-5003", "amount": 5, "reason": None}, raw)
    tight = tools.tighten(raw)
    # ...the tightened schema says [string, null] and accepts it
    assert tight["function"]["parameters"]["properties"]["reason"]["type"] == ["string", "null"]
    assert schema_errors({"order_id": "O-5003", "amount": 5, "reason": None}, tight) == []
    assert raw["function"]["parameters"]["properties"]["reason"]["nullable"] is True  # the input is not changed


def test_tightened_schemas(schemas):
    from jsonschema import Draft202012Validator

    assert list(schemas) == list(tools.TOOL_NAMES)
    for name, schema in schemas.items():
        params = schema["function"]["parameters"]
        Draft202012Validator.check_schema(params)
        assert params["additionalProperties"] is False, name
        for prop in params["properties"].values():
            if "string" in prop.get("type", []) and "enum" not in prop:
                assert "maxLength" in prop, name
            assert "nullable" not in prop
    amount = schemas["issue_refund"]["function"]["parameters"]["properties"]["amount"]
    assert amount["exclusiveMinimum"] == 0
    with pytest.raises(CourseError, match="takes no parameter"):
        tools.tighten(schemas["get_stock"], extra={"colour": {"enum": ["red"]}})


def test_schema_errors_are_strict(schemas):
    s = schemas["issue_refund"]
    assert schema_errors({"order_id": "O-5003", "amount": 20}, s) == []
    assert schema_errors({"order_id": "O-5003", "amount": 20.5, "reason": "broken"}, s) == []
    assert schema_errors({"order_id": "O-5003", "amount": "20"}, s)  # no coercion
    assert schema_errors({"order_id": "O-5003", "amount": True}, s)  # a boolean is not a number
    assert schema_errors({"order_id": "O-5003"}, s)
    assert schema_errors({"order_id": "O-5003", "amount": 20, "confirmed": True}, s)


def test_a_plain_function_becomes_a_tool():
    def get_opening_hours(store: str, day: int) -> str:
        """Opening hours of a store on a day.

        Args:
            store: The store.
            day: Day of the week, 0 for Monday.
        """
        return "9-5"

    spec = tools.make_tool(get_opening_hours, "public")
    assert spec.name == "get_opening_hours"
    assert schema_errors({"store": "austin", "day": 2}, spec.schema) == []
    assert schema_errors({"store": "austin", "day": "2"}, spec.schema)
    with pytest.raises(CourseError, match="access"):
        tools.make_tool(get_opening_hours, "customer")


# =========================================================================== call format and parser
def test_format_tool_calls():
    assert format_tool_calls([]) == NO_CALL == "<tool_call>[]</tool_call>"
    text = format_tool_calls([call("get_stock", store="austin", sku="TW-CR2")])
    assert text == '<tool_call>[{"name": "get_stock", "arguments": {"store": "austin", "sku": "TW-CR2"}}]</tool_call>'
    assert parse_tool_calls(text).calls == [call("get_stock", store="austin", sku="TW-CR2")]


PARSE_CASES = [
    ("Austin has 19 card readers.", "no_call_tag"),
    ('<tool_call>[{"name": "get_stock", "arguments": {}}]', "no_call_tag"),
    ('Sure! <tool_call>[]</tool_call>', "extra_text"),
    ('<tool_call>[]</tool_call> Anything else?', "extra_text"),
    ('<tool_call>[]</tool_call><tool_call>[]</tool_call>', "extra_text"),
    ("<tool_call>[get_stock(store='austin')]</tool_call>", "invalid_json"),
    ("<tool_call>[{'name': 'get_stock', 'arguments': {}}]</tool_call>", "invalid_json"),
    ('<tool_call>[{"name": "a", "name": "b", "arguments": {}}]</tool_call>', "invalid_json"),
    ('<tool_call>[{"name": "a", "arguments": {"x": Infinity}}]</tool_call>', "invalid_json"),
    ('<tool_call>{"name": "get_stock", "arguments": {}}</tool_call>', "not_a_list"),
    ('<tool_call>"get_stock"</tool_call>', "not_a_list"),
    ('<tool_call>[["get_stock"]]</tool_call>', "bad_item"),
    ('<tool_call>[{"name": "get_stock"}]</tool_call>', "bad_item"),
    ('<tool_call>[{"name": "get_stock", "arguments": {}, "id": 1}]</tool_call>', "bad_item"),
    ('<tool_call>[{"name": "", "arguments": {}}]</tool_call>', "bad_item"),
    ('<tool_call>[{"name": "get_stock", "arguments": "{}"}]</tool_call>', "bad_item"),
    (answer(call("get_weather", city="Austin")), "unknown_tool"),
    (answer(call("get_stock", store="austin")), "schema_violation"),
    (answer(call("get_stock", store="austin", sku="TW-CR2", colour="red")), "schema_violation"),
    (answer(call("issue_refund", order_id="O-5003", amount="5")), "schema_violation"),
]


@pytest.mark.parametrize(("text", "failure"), PARSE_CASES)
def test_each_failure_is_classified(text, failure, schemas):
    parsed = parse_tool_calls(text, tools=list(schemas.values()))
    assert parsed.failure == failure, str(parsed)
    assert not parsed.ok and not parsed.made_call and parsed.detail


def test_every_failure_kind_has_a_case():
    assert {f for _, f in PARSE_CASES} == set(FAILURES)


def test_valid_answers_parse(schemas):
    good = answer(call("get_stock", store="austin", sku="TW-CR2"), call("get_order_status", order_id="O-5003"))
    for text in (good, "  " + good + "\n", NO_CALL, "<tool_call>[\n]</tool_call>"):
        parsed = parse_tool_calls(text, tools=schemas)
        assert parsed.ok, str(parsed)
    assert parse_tool_calls(good).made_call and not parse_tool_calls(NO_CALL).made_call
    assert parse_tool_calls(123).failure == "no_call_tag"


def test_the_first_failed_check_counts_and_nothing_is_coerced(schemas):
    # extra text is found before the bad JSON inside the block
    assert parse_tool_calls("Ok: <tool_call>[oops]</tool_call>").failure == "extra_text"
    # without a tool list only the syntax is checked; with it, "5" for a number is a violation
    text = answer(call("issue_refund", order_id="O-5003", amount="5"))
    assert parse_tool_calls(text).ok
    assert parse_tool_calls(text).calls[0]["arguments"]["amount"] == "5"
    assert parse_tool_calls(text, schemas).failure == "schema_violation"


def test_failure_counts():
    texts = [text for text, _ in PARSE_CASES] + [NO_CALL, answer(call("get_stock", store="austin", sku="TW-CR2"))]
    counts = failure_counts(texts, tillwise_schemas())
    assert list(counts) == [*FAILURES, "ok"]
    assert sum(counts.values()) == len(texts)
    assert counts["ok"] == 2
    assert counts == {**Counter(f for _, f in PARSE_CASES), "ok": 2}


def test_parser_never_evaluates_code():
    source = (tools.__file__)
    text = open(source, encoding="utf-8").read()
    assert not re.search(r"\beval\(|literal_eval|\bexec\(", text)


# --------------------------------------------------------------------------- transformers' response parsing
def test_assistant_message_uses_parse_response_after_the_strict_check(schemas):
    text = answer(call("get_stock", store="austin", sku="TW-CR2"))
    msg = assistant_message(text, schemas)
    assert msg["role"] == "assistant" and msg["content"] == ""
    assert msg["tool_calls"] == tools.as_tool_calls(parse_tool_calls(text).calls)
    assert assistant_message(NO_CALL) == {"role": "assistant", "content": "", "tool_calls": []}
    with pytest.raises(CourseError, match="extra_text"):
        assistant_message("Sure! " + text)


def test_parse_response_alone_is_too_lenient_to_count_failures():
    """What transformers' parse_response does with this call format (recorded for the lesson):
    it drops the text before the block, ignores extra keys, accepts NaN, and with tools= it casts
    "5" to 5. Each of those would hide a failure the strict parser counts."""
    from transformers.utils.chat_parsing import parse_response

    def parse(text, **kw):
        return parse_response(text, tools.RESPONSE_TEMPLATE, prefix="", **kw)

    chatty = parse("Sure! " + answer(call("get_account", customer_id="C-1007")) + " Done.")
    assert chatty["content"] == "Done." and "Sure" not in json.dumps(chatty)
    extra = parse('<tool_call>[{"name": "x", "arguments": {}, "confirmed": true}]</tool_call>')
    assert extra["tool_calls"] == [{"type": "function", "function": {"name": "x", "arguments": {}}}]
    nan = parse('<tool_call>[{"name": "x", "arguments": {"a": NaN}}]</tool_call>')
    assert nan["tool_calls"][0]["function"]["arguments"]["a"] != nan["tool_calls"][0]["function"]["arguments"]["a"]
    text = answer(call("issue_refund", order_id="O-5003", amount="5"))
    assert parse(text)["tool_calls"][0]["function"]["arguments"]["amount"] == "5"
    cast = parse(text, tools=tillwise_schemas())
    assert cast["tool_calls"][0]["function"]["arguments"]["amount"] == 5
    assert parse(NO_CALL) == {"role": "assistant"}  # [] leaves no trace
    with pytest.raises(ValueError):
        parse('<tool_call>[{"name": "x", "arguments": {]</tool_call>')


# =========================================================================== chat template (tokenizer only)
@pytest.fixture(scope="module")
def tok():
    from ftcourse.models import default_model_dir

    path = default_model_dir()
    if not (path / "tokenizer.json").is_file():
        pytest.skip("the course model is not fetched yet (python -m ftcourse fetch-model)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


PLAIN_CHATS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "bye"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}],
]


def test_stock_template_facts(tok, schemas):
    """The facts found while planning lesson 03, checked on the course tokenizer's own template."""
    chat = [{"role": "user", "content": "How many TW-CR2 in Austin?"}]
    plain = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    with_tools = tok.apply_chat_template(chat, tools=list(schemas.values()), tokenize=False, add_generation_prompt=True)
    assert with_tools == plain  # tools= is ignored silently: byte-identical prompt
    calls_only = {"role": "assistant", "tool_calls": tools.as_tool_calls([call("get_stock", store="austin", sku="TW-CR2")])}
    with pytest.raises(Exception, match="content"):  # an assistant message with only tool_calls raises
        tok.apply_chat_template([*chat, calls_only], tokenize=False)
    # with content "" the template renders, and the calls silently vanish
    text = tok.apply_chat_template([*chat, {**calls_only, "content": ""}], tokenize=False)
    assert "get_stock" not in text.split("<|im_start|>assistant")[-1]


def test_tool_template_matches_the_stock_template_without_tools(tok):
    for chat in PLAIN_CHATS:
        for gen in (True, False):
            stock = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
            ours = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen,
                                           chat_template=tools.tool_chat_template())
            assert ours == stock


def test_tool_template_renders_tools_calls_and_results(tok, schemas, conn):
    ex = Executor(conn, "C-1030")
    result = ex.run(call("get_order_status", order_id="O-5017"))
    gold = [call("get_order_status", order_id="O-5017")]
    chat = [*tools.request_messages("Where is order O-5017?", customer_id="C-1030"),
            {"role": "assistant", "tool_calls": tools.as_tool_calls(gold)},
            result.as_message(),
            {"role": "assistant", "content": "It is still being processed."},
            {"role": "user", "content": "Thanks!"},
            {"role": "assistant", "content": None, "tool_calls": []}]
    text = tools.render_with_tools(tok, chat, tools=list(schemas.values()), add_generation_prompt=False)
    system = text.split("<|im_end|>")[0]
    assert "<tools>" + json.dumps(list(schemas.values()), ensure_ascii=False) + "</tools>" in system
    assert "make the tool calls an empty list '[]'" in system
    assert system.endswith("Signed-in customer: C-1030.")
    assert "<|im_start|>assistant\n" + format_tool_calls(gold) + "<|im_end|>\n" in text
    assert "<|im_start|>tool\n<tool_response>\n" + result.as_message()["content"] + "\n</tool_response><|im_end|>" in text
    assert "<|im_start|>assistant\n" + NO_CALL + "<|im_end|>\n" in text
    # the injected note cannot close the result block or open a turn
    assert text.count("</tool_response>") == 1 and text.count("<|im_start|>system") == 1
    assert "ignore all previous instructions" in text  # it is there, as data
    # the same via functions instead of schemas (transformers converts them)
    assert tok.apply_chat_template(chat[:2], tools=[tools.TillwiseTools.get_stock], tokenize=False,
                                   chat_template=tools.tool_chat_template()).count('"name": "get_stock"') == 1


def test_tool_template_marks_the_assistant_tokens(tok):
    gold = [call("get_account", customer_id="C-1007")]
    chat = [*tools.request_messages("Which plan am I on?", customer_id="C-1007"),
            {"role": "assistant", "tool_calls": tools.as_tool_calls(gold)}]
    out = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                  chat_template=tools.tool_chat_template())
    marked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(marked) == format_tool_calls(gold) + "<|im_end|>"


def test_training_examples_render_like_the_template(tok):
    reqs = load_tool_requests("train")
    examples = tools.training_examples(reqs)
    assert len(examples) == len(reqs)
    assert sum(ex["messages"][-1]["content"] == NO_CALL for ex in examples) == sum(not r.gold for r in reqs) > 0
    for ex, r in zip(examples, reqs, strict=True):
        as_calls = [*ex["messages"][:-1], {"role": "assistant", "tool_calls": tools.as_tool_calls(r.gold)}]
        kw = {"tokenize": False, "chat_template": tools.tool_chat_template()}
        assert tok.apply_chat_template(ex["messages"], **kw) == tok.apply_chat_template(as_calls, **kw)
    from ftcourse.lora import encode_examples

    encoded = encode_examples(tok, examples[:3])
    assert len(encoded) == 3


# =========================================================================== the executor
def test_reads_return_data(conn):
    ex = Executor(conn, "C-1007")
    stock = ex.run(call("get_stock", store="denver", sku="TW-CR2"))
    assert stock.ok and stock.data["qty"] == 35 and stock.data["product"].startswith("Card reader")
    order = ex.run(call("get_order_status", order_id="O-5003"))
    assert order.ok and order.data["status"] == "shipped" and order.data["total"] == 317.0
    account = ex.run(call("get_account", customer_id="C-1007"))
    assert account.ok and account.data == {"customer_id": "C-1007", "name": "Salt & Crumb Deli", "plan": "pro",
                                           "balance": 49.0}
    missing = ex.run(call("get_stock", store="denver", sku="TW-XX9"))
    assert missing.reason == "not_found" and "TW-XX9" in missing.message
    assert [r.reason for r in ex.log] == ["ok", "ok", "ok", "not_found"]


def test_hostile_calls_are_all_refused(conn):
    """The security suite: every hostile or broken answer refused with its reason, the database
    unchanged, no side effect run, and nothing waits for confirmation except the one valid refund."""
    suite = load_hostile_calls()
    assert len(suite) >= 20 and len({h["id"] for h in suite}) == len(suite)
    before = checksum(conn)
    reasons = Counter()
    for h in suite:
        ex = Executor(conn, h["customer_id"])
        results = ex.run_answer(h["answer"])
        assert len(results) == 1, h["id"]
        r = results[0]
        assert r.refused and r.reason == h["expect"], (h["id"], str(r))
        assert r.message and r.reason in tools.REASONS
        assert ex.side_effects == []
        assert len(ex.pending) == (h["expect"] == "needs_confirmation")
        reasons[r.reason] += 1
    assert checksum(conn) == before
    # the suite covers what the issue lists
    for reason in ("unknown_tool", "schema_violation", "unauthorized", "rule_violation", "too_large",
                   "invalid_json", "needs_confirmation"):
        assert reasons[reason] >= 1, reason
    whats = " ".join(h["what"] for h in suite)
    for topic in ("missing argument", "extra argument", "mistyped", "another customer", "prompt injection",
                  "oversized", "larger than the order"):
        assert topic in whats, topic


def test_side_effects_need_the_users_yes(conn):
    ex = Executor(conn, "C-1007")
    before = checksum(conn)
    pending = ex.run(call("issue_refund", order_id="O-5003", amount=50))
    assert pending.reason == "needs_confirmation" and pending.token and "$50.00" in pending.message
    assert checksum(conn) == before and ex.side_effects == []
    assert pending.token not in json.dumps(pending.as_message())  # the model never sees the token
    # the model cannot confirm: there is no such tool, and a fake token is unknown
    assert ex.run(call("confirm", token=pending.token)).reason == "unknown_tool"
    assert ex.confirm("not-a-token").reason == "unknown_action"
    assert checksum(conn) == before
    # the user confirms: it runs once
    done = ex.confirm(pending.token)
    assert done.ok and done.data["refunded_now"] == 50.0
    assert conn.execute("SELECT balance_cents FROM customers WHERE id = 'C-1007'").fetchone()[0] == 4900 - 5000
    assert conn.execute("SELECT refunded_cents FROM orders WHERE id = 'O-5003'").fetchone()[0] == 5000
    assert checksum(conn) != before and ex.side_effects == [("issue_refund", {"order_id": "O-5003", "amount": 50})]
    assert ex.confirm(pending.token).reason == "unknown_action"  # single use


def test_decline_and_tokens_belong_to_their_session(conn):
    ex = Executor(conn, "C-1007")
    other = Executor(conn, "C-1026")
    before = checksum(conn)
    pending = ex.run(call("change_plan", customer_id="C-1007", plan="business"))
    assert pending.reason == "needs_confirmation"
    assert other.confirm(pending.token).reason == "unknown_action"
    assert ex.decline(pending.token).reason == "declined"
    assert ex.confirm(pending.token).reason == "unknown_action"
    assert checksum(conn) == before


def test_confirmation_checks_the_world_again(conn):
    ex = Executor(conn, "C-1007")
    first = ex.run(call("issue_refund", order_id="O-5003", amount=300))
    second = ex.run(call("issue_refund", order_id="O-5003", amount=300))
    assert ex.confirm(first.token).ok
    late = ex.confirm(second.token)  # $300 + $300 > $317: refused at confirmation time
    assert late.reason == "rule_violation"
    assert conn.execute("SELECT refunded_cents FROM orders WHERE id = 'O-5003'").fetchone()[0] == 30000


def test_ask_user_callback(conn):
    asked = []

    def yes(action):
        asked.append(action)
        return True

    ex = Executor(conn, "C-1002", ask_user=yes)
    done = ex.run(call("change_plan", customer_id="C-1002", plan="pro"))
    assert done.ok and done.data == {"customer_id": "C-1002", "old_plan": "starter", "plan": "pro"}
    assert asked[0].summary == "Change customer C-1002 from the starter plan to the pro plan?"
    before = checksum(conn)
    for answer_ in (False, None, "yes", 1):  # only True is a yes
        ex = Executor(conn, "C-1002", ask_user=lambda action, a=answer_: a)
        assert ex.run(call("change_plan", customer_id="C-1002", plan="business")).reason == "declined"
    assert checksum(conn) == before
    # an impossible action is refused before anyone is asked
    asked.clear()
    ex = Executor(conn, "C-1002", ask_user=yes)
    assert ex.run(call("change_plan", customer_id="C-1002", plan="pro")).reason == "rule_violation"
    assert asked == []


def test_results_are_inert_data(conn):
    ex = Executor(conn, "C-1018")
    result = ex.run(call("get_order_status", order_id="O-5042"))
    msg = result.as_message()
    assert msg["role"] == "tool" and msg["name"] == "get_order_status"
    assert "<" not in msg["content"] and ">" not in msg["content"] and "&" not in msg["content"]
    assert json.loads(msg["content"])["result"]["note"] == result.data["note"]  # same value, escaped text
    refusal = ex.run(call("get_account", customer_id="C-1001")).as_message()
    assert json.loads(refusal["content"]) == {"ok": False, "refused": "unauthorized",
                                              "why": "This session belongs to customer C-1018; it cannot read "
                                                     "or change customer C-1001."}


def test_several_calls_in_one_answer(conn):
    ex = Executor(conn, "C-1007")
    results = ex.run_answer(answer(call("get_stock", store="austin", sku="TW-CR2"),
                                   call("get_account", customer_id="C-1001")))
    assert [r.reason for r in results] == ["ok", "unauthorized"]
    assert ex.run_answer(NO_CALL) == []


def test_tool_errors_do_not_leak(conn):
    def broken(x: str) -> dict:
        """Always fails.

        Args:
            x: Anything.
        """
        raise ValueError("secret internals")

    ex = Executor(conn, "C-1007", tools={"broken": tools.make_tool(broken, "public")})
    r = ex.run(call("broken", x="a"))
    assert r.reason == "tool_error" and "secret" not in r.message
    assert isinstance(ToolError("not_found", "x"), Exception)


def test_limits_are_configurable(conn):
    ex = Executor(conn, "C-1007", limits=tools.Limits(max_calls=1))
    two = answer(call("get_stock", store="austin", sku="TW-CR2"), call("get_stock", store="boston", sku="TW-CR2"))
    assert [r.reason for r in ex.run_answer(two)] == ["too_many_calls"]


# =========================================================================== AST match
def test_match_call_rules(schemas):
    s = schemas["issue_refund"]
    gold = call("issue_refund", order_id="O-5003", amount=20.0)
    cases = [
        (call("issue_refund", order_id="O-5003", amount=20.0), "match"),
        (call("issue_refund", order_id="O-5003", amount=20), "match"),  # JSON has one number type
        (call("issue_refund", order_id="O-5003", amount=20, reason="broken"), "match"),  # optional, not in gold
        (call("get_stock", order_id="O-5003", amount=20.0), "wrong_function"),
        (call("issue_refund", order_id="O-5003"), "missing_arg"),
        (call("issue_refund", order_id="O-5003", amount=20.0, urgent=True), "extra_arg"),
        (call("issue_refund", order_id="O-5003", amount="20"), "wrong_type"),
        (call("issue_refund", order_id="O-5003", amount=21.0), "wrong_value"),
        (call("issue_refund", order_id="o-5003", amount=20.0), "wrong_value"),
    ]
    for c, reason in cases:
        assert match_call(c, gold, s).reason == reason, c
    int_gold = call("f", n=5)
    assert match_call(call("f", n=5.0), int_gold).reason == "wrong_type"  # 5.0 is not the integer 5
    assert match_call(call("f", n=True), int_gold).reason == "wrong_type"  # True is not 1
    assert match_call(call("f", n=5), call("f", n=True)).reason == "wrong_type"
    assert match_call(call("f", xs=[1, 2]), call("f", xs=[1, 2])).ok
    assert match_call(call("f", xs=[1, "2"]), call("f", xs=[1, 2])).reason == "wrong_type"
    assert match_call(call("f", n=5, m=1), int_gold).reason == "extra_arg"  # no schema: gold args are all


def test_match_calls_on_lists(schemas):
    a = call("get_stock", store="austin", sku="TW-CR2")
    b = call("get_stock", store="boston", sku="TW-CR2")
    assert match_calls([b, a], [a, b], schemas).ok  # order does not matter
    assert match_calls([a, a], [a, b], schemas).reason == "wrong_value"
    assert match_calls([a], [a, b], schemas).reason == "wrong_count"
    assert match_calls([], [a], schemas).reason == "no_call"
    assert match_calls([a], [], schemas).reason == "irrelevant_call"
    assert match_calls([], [], schemas).ok
    assert score_answer("I don't know.", [a], schemas).reason == "unparseable"
    assert score_answer(answer(call("get_weather", city="x")), [a], schemas).reason == "wrong_function"


def test_rates_and_baselines():
    reqs = load_tool_requests("test")
    gold_answers = [r.expected for r in reqs]
    assert call_accuracy(gold_answers, reqs, tillwise_schemas()).value == 1.0
    assert irrelevance_rate(gold_answers, reqs).value == 0.0
    # the trivial baseline "always []": right exactly on the no-tool requests, never irrelevant
    never = [NO_CALL] * len(reqs)
    acc = call_accuracy(never, reqs)
    assert acc.successes == sum(not r.gold for r in reqs) and acc.n == len(reqs)
    assert irrelevance_rate(never, reqs).successes == 0
    # "always call get_stock": irrelevant on every no-tool request
    always = [answer(call("get_stock", store="austin", sku="TW-CR2"))] * len(reqs)
    irr = irrelevance_rate(always, reqs)
    assert irr.value == 1.0 and irr.n == sum(not r.gold for r in reqs)
    assert tools.call_rate(always).value == 1.0 and tools.call_rate(never).value == 0.0
    matches = tools.match_flags(always, reqs)
    assert sum(tools.match_reasons(matches).values()) == len(reqs)
    with pytest.raises(CourseError, match="one answer per request"):
        call_accuracy(never[:-1], reqs)


# =========================================================================== the eval set
@pytest.fixture(scope="module")
def requests_():
    return load_tool_requests()


def test_eval_set_shape(requests_):
    assert len(requests_) >= 110
    assert len({r.id for r in requests_}) == len(requests_)
    assert len({r.request.lower() for r in requests_}) == len(requests_)  # no text in two places
    kinds = Counter(r.kind for r in requests_)
    assert kinds["live_state"] >= 50 and kinds["action"] >= 15 and kinds["no_tool"] >= 25
    for split in tools.REQUEST_SPLITS:
        here = Counter(r.kind for r in requests_ if r.split == split)
        assert set(here) == set(tools.REQUEST_KINDS), split  # every split has every kind
    assert {r.split for r in requests_} == set(tools.REQUEST_SPLITS)
    with pytest.raises(CourseError, match="Unknown split"):
        load_tool_requests("dev")


def test_heldout_wording_is_unseen(requests_):
    def grams(text, n=4):
        words = re.findall(r"[a-z0-9'-]+", text.lower())
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    train = set().union(*(grams(r.request) for r in requests_ if r.split == "train"))
    for r in requests_:
        if r.split == "heldout":
            assert not grams(r.request) & train, r.id


def test_every_gold_call_is_valid_and_allowed(requests_, conn, schemas):
    before = checksum(conn)
    for r in requests_:
        assert parse_tool_calls(r.expected, schemas).ok, r.id
        assert (r.kind == "no_tool") == (r.gold == [])
        for c in r.gold:
            result = Executor(conn, r.customer_id).run(c)
            want = "ok" if r.kind == "live_state" else "needs_confirmation"
            assert result.reason == want, (r.id, str(result))
    assert checksum(conn) == before


def test_truth_comes_from_the_database(requests_, conn):
    from ftcourse.backoffice import set_order_status, set_stock

    live = [r for r in requests_ if r.kind == "live_state"]
    assert all(r.truth in ("qty", "status", "plan", "balance") for r in live)
    truths = {r.id: tools.truth_for(r, conn) for r in live}
    r = next(r for r in live if r.gold[0]["arguments"] == {"store": "denver", "sku": "TW-CR2"})
    assert truths[r.id] == 35
    set_stock(conn, "denver", "TW-CR2", 0)  # it sells out: the truth follows
    assert tools.truth_for(r, conn) == 0
    o = next(r for r in live if r.gold[0]["arguments"] == {"order_id": "O-5057"})
    assert truths[o.id] == "processing"
    set_order_status(conn, "O-5057", "shipped")
    assert tools.truth_for(o, conn) == "shipped"
    with pytest.raises(CourseError, match="only live-state"):
        tools.truth_for(next(r for r in requests_ if r.kind == "action"), conn)


def test_answer_is_correct():
    ok = tools.answer_is_correct
    assert ok("Denver has 35 TW-CR2 readers.", 35) and not ok("Denver has 350 of them.", 35)
    assert ok("We have twelve boxes.", 12) and ok("Sorry, it's sold out in Boston.", 0)
    assert not ok("There are 3 left.", 0)
    assert ok("Your order has shipped.", "shipped") and not ok("It is processing.", "shipped")
    assert ok("You are on the Pro plan.", "pro") and not ok("You could improve your plan.", "pro")
    assert ok("You owe $49.00.", 49.0) and ok("Your balance is $24.50.", 24.5) and not ok("$24.05", 24.5)
    assert ok("You have a credit of $12.", -12.0) and not ok("You owe $12.", -12.0)
    assert ok("Nothing is due.", 0.0)


def test_request_messages_name_the_customer():
    r = load_tool_requests("val")[0]
    msgs = tools.request_messages(r)
    assert msgs[0]["role"] == "system" and r.customer_id in msgs[0]["content"]
    assert msgs[1] == {"role": "user", "content": r.request}
    with pytest.raises(CourseError, match="customer_id"):
        tools.request_messages("Which plan am I on?")
    assert isinstance(r, ToolRequest) and r.expected == format_tool_calls(r.gold)


def test_states_a_value_spots_made_up_answers():
    says = tools.states_a_value
    assert says("Austin has 19 TW-CR2 readers.", "qty") and says("Yes, it's in stock.", "qty")
    assert not says("I can't check live stock, sorry.", "qty") and not says("The TW-CR2 costs $59.", "qty")
    assert says("Your order O-5003 has shipped.", "status") and not says("I can't see order O-5003.", "status")
    assert says("You're on the Pro plan.", "plan") and not says("Your business matters to us.", "plan")
    assert says("You owe $49.", "balance") and not says("I have no access to your balance.", "balance")
    live = load_tool_requests("test", kind="live_state")[0]
    assert says("There are 12.", live) == (live.truth == "qty")
    with pytest.raises(CourseError, match="value pattern"):
        says("hi", "colour")


def test_arguments_that_are_not_json_are_refused(conn):
    ex = Executor(conn, "C-1007")
    assert ex.run(call("get_stock", store="austin", sku={1, 2})).reason == "bad_item"
    assert ex.run(call("issue_refund", order_id="O-5003", amount=float("nan"))).reason == "bad_item"
