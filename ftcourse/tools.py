"""Tools for actions: Tillwise's back-office tools, the call format, a strict parser, the executor
that guards the database, and the metrics of lesson 03.

The pieces, in the order a request goes through them:

1. **Tools** (``TillwiseTools``): plain Python methods with type hints and Google-style docstrings.
   Their JSON schemas come from ``transformers.utils.get_json_schema`` (which skips ``self``, so the
   database connection is bound in and never an argument the model could set) and are then
   tightened (``tighten``): no extra properties, length limits, patterns for ids.
2. **The call format** of SmolLM2-1.7B-Instruct: ``<tool_call>[{"name": ..., "arguments": {...}}]
   </tool_call>``, and ``<tool_call>[]</tool_call>`` when no tool fits (``format_tool_calls``).
   ``tool_chat_template()`` is a chat template that writes the tool list, assistant calls and tool
   results into the prompt the way ``tokenizer.apply_chat_template(..., tools=...)`` expects.
3. **The parser** (``parse_tool_calls``): ``json.loads`` and nothing else (never ``eval``). Every
   answer that fails is counted once, at the first check it fails, *before* any type coercion.
4. **The executor** (``Executor``): the security boundary. Allow-list, size limits, JSON Schema
   validation (Draft 2020-12), authorization by the session's customer, explicit user confirmation
   for side effects, a reason code on every refusal, and results handed back as inert JSON.
5. **Metrics**: an AST match in the style of the Berkeley Function Calling Leaderboard
   (``match_calls``), the irrelevance rate, failure counts, and answers scored against the database.
6. **The eval set** (``load_tool_requests``): hand-written requests with gold calls.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .backoffice import dollars
from .datasets import DATA_DIR, Fact, load_jsonl
from .errors import CourseError
from .evals import fact_is_correct, normalise_text
from .stats import Rate

Store = Literal["austin", "boston", "denver", "portland"]
Plan = Literal["starter", "pro", "business"]

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
NO_CALL = TOOL_CALL_OPEN + "[]" + TOOL_CALL_CLOSE  # the answer when no tool fits

CHAT_TEMPLATE_PATH = DATA_DIR / "chat_templates" / "smollm2_tools.jinja"

# Patterns of the ids the tools take (JSON Schema "pattern" is a search: anchor both ends).
SKU_PATTERN = r"^TW-[A-Z]{2,3}[0-9]{1,2}$"
ORDER_ID_PATTERN = r"^O-[0-9]{4}$"
CUSTOMER_ID_PATTERN = r"^C-[0-9]{4}$"


# =========================================================================== 1. the tools
class ToolError(Exception):
    """A tool could not do what was asked; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class TillwiseTools:
    """Tillwise's back-office services, one method per tool, over an open back office.

    The methods trust their arguments only as far as SQL goes (every query is parameterised);
    *who* may call them is the executor's business, not theirs.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # ----------------------------------------------------------------- reads
    def get_stock(self, store: Store, sku: str) -> dict:
        """Count the units of one product on the shelf of one Tillwise hardware store, right now.

        Args:
            store: The Tillwise store: austin, boston, denver or portland.
            sku: The product code, for example TW-CR2 for the card reader.
        """
        product = self.conn.execute("SELECT name FROM products WHERE sku = ?", (sku,)).fetchone()
        if product is None:
            raise ToolError("not_found", f"There is no product with SKU {sku}.")
        row = self.conn.execute("SELECT qty FROM stock WHERE store = ? AND sku = ?", (store, sku)).fetchone()
        return {"store": store, "sku": sku, "product": product[0], "qty": row[0] if row else 0}

    def get_order_status(self, order_id: str) -> dict:
        """Look up one hardware order: its status, its items and what it cost.

        Args:
            order_id: The order number, for example O-5003.
        """
        row = self.conn.execute(
            "SELECT id, placed, status, items, total_cents, refunded_cents, note FROM orders WHERE id = ?",
            (order_id,)).fetchone()
        if row is None:
            raise ToolError("not_found", f"There is no order {order_id}.")
        return {"order_id": row[0], "placed": row[1], "status": row[2], "items": json.loads(row[3]),
                "total": dollars(row[4]), "refunded": dollars(row[5]), "note": row[6]}

    def get_account(self, customer_id: str) -> dict:
        """Look up a customer's account: the shop's name, its plan and the balance it owes.

        Args:
            customer_id: The customer number, for example C-1007.
        """
        row = self.conn.execute("SELECT id, name, plan, balance_cents FROM customers WHERE id = ?",
                                (customer_id,)).fetchone()
        if row is None:
            raise ToolError("not_found", f"There is no customer {customer_id}.")
        return {"customer_id": row[0], "name": row[1], "plan": row[2], "balance": dollars(row[3])}

    # ----------------------------------------------------------------- actions (side effects)
    def check_change_plan(self, customer_id: str, plan: str) -> None:
        """Raise ``ToolError`` if ``change_plan`` would fail; change nothing."""
        row = self.conn.execute("SELECT plan FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            raise ToolError("not_found", f"There is no customer {customer_id}.")
        if row[0] == plan:
            raise ToolError("rule_violation", f"Customer {customer_id} is already on the {plan} plan.")

    def change_plan(self, customer_id: str, plan: Plan) -> dict:
        """Move a customer to another subscription plan, from the next billing period.

        Args:
            customer_id: The customer number, for example C-1007.
            plan: The new plan: starter, pro or business.
        """
        self.check_change_plan(customer_id, plan)
        old = self.conn.execute("SELECT plan FROM customers WHERE id = ?", (customer_id,)).fetchone()[0]
        with self.conn:
            self.conn.execute("UPDATE customers SET plan = ? WHERE id = ?", (plan, customer_id))
        return {"customer_id": customer_id, "old_plan": old, "plan": plan}

    def check_refund(self, order_id: str, amount: float, reason: str | None = None) -> None:
        """Raise ``ToolError`` if ``issue_refund`` would fail; change nothing."""
        row = self.conn.execute("SELECT status, total_cents, refunded_cents FROM orders WHERE id = ?",
                                (order_id,)).fetchone()
        if row is None:
            raise ToolError("not_found", f"There is no order {order_id}.")
        status, total, refunded = row
        cents = round(amount * 100)
        if cents <= 0 or abs(amount * 100 - cents) > 1e-6:
            raise ToolError("rule_violation", f"A refund must be a positive amount in whole cents, not {amount}.")
        if status == "cancelled":
            raise ToolError("rule_violation", f"Order {order_id} was cancelled and never charged: "
                                              "there is nothing to refund.")
        if cents > total - refunded:
            raise ToolError("rule_violation",
                            f"A refund of ${amount:.2f} is more than what is left to refund on order {order_id} "
                            f"(${dollars(total - refunded):.2f} of ${dollars(total):.2f}).")

    def issue_refund(self, order_id: str, amount: float, reason: str | None = None) -> dict:
        """Refund part or all of a hardware order; the money goes back to the customer's balance.

        Args:
            order_id: The order number, for example O-5003.
            amount: How much to refund, in US dollars.
            reason: A short note on why, for the records.
        """
        self.check_refund(order_id, amount, reason)
        cents = round(amount * 100)
        customer_id = self.conn.execute("SELECT customer_id FROM orders WHERE id = ?", (order_id,)).fetchone()[0]
        with self.conn:  # both rows or neither
            self.conn.execute("UPDATE orders SET refunded_cents = refunded_cents + ? WHERE id = ?", (cents, order_id))
            self.conn.execute("UPDATE customers SET balance_cents = balance_cents - ? WHERE id = ?",
                              (cents, customer_id))
        total, refunded = self.conn.execute("SELECT total_cents, refunded_cents FROM orders WHERE id = ?",
                                            (order_id,)).fetchone()
        return {"order_id": order_id, "refunded_now": dollars(cents), "refunded_in_all": dollars(refunded),
                "total": dollars(total)}


TOOL_NAMES = ("get_stock", "get_order_status", "get_account", "change_plan", "issue_refund")


# =========================================================================== 2. schemas
def tighten(schema: dict, extra: Mapping[str, dict] | None = None, max_length: int = 64) -> dict:
    """A stricter copy of a schema made by ``transformers.utils.get_json_schema``.

    ``get_json_schema`` reads the type hints and the docstring, and stops there. This adds:

    * ``"additionalProperties": false``: an argument the function does not take is an error, not
      something to ignore;
    * ``maxLength`` on every free string (``max_length`` characters);
    * whatever ``extra`` gives per parameter (``{"sku": {"pattern": ...}}``);
    * ``nullable`` rewritten. ``get_json_schema`` marks an ``X | None`` hint with
      ``"nullable": true``, a word from OpenAPI 3.0 that JSON Schema does not define: a JSON Schema
      validator ignores it and then rejects ``null``. The standard form is ``"type": [X, "null"]``.
    """
    schema = copy.deepcopy(schema)
    params = schema["function"]["parameters"]
    params["additionalProperties"] = False
    for name, prop in params.get("properties", {}).items():
        if prop.pop("nullable", False):
            types = prop.get("type", [])
            types = [types] if isinstance(types, str) else list(types)
            prop["type"] = [*types, "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        types = prop.get("type", [])
        if "string" in ([types] if isinstance(types, str) else types) and "enum" not in prop:
            prop["maxLength"] = max_length
        prop.update((extra or {}).get(name, {}))
    unknown = set(extra or {}) - set(params.get("properties", {}))
    if unknown:
        raise CourseError(f"tighten: the function takes no parameter {sorted(unknown)}; "
                          f"it takes {sorted(params.get('properties', {}))}.")
    return schema


def schema_for(function: Callable, extra: Mapping[str, dict] | None = None, max_length: int = 64) -> dict:
    """The tightened JSON schema of a tool function: ``get_json_schema`` then ``tighten``."""
    from transformers.utils import get_json_schema

    return tighten(get_json_schema(function), extra=extra, max_length=max_length)


TILLWISE_SCHEMA_EXTRAS: dict[str, dict[str, dict]] = {
    "get_stock": {"sku": {"pattern": SKU_PATTERN}},
    "get_order_status": {"order_id": {"pattern": ORDER_ID_PATTERN}},
    "get_account": {"customer_id": {"pattern": CUSTOMER_ID_PATTERN}},
    "change_plan": {"customer_id": {"pattern": CUSTOMER_ID_PATTERN}},
    "issue_refund": {"order_id": {"pattern": ORDER_ID_PATTERN},
                     "amount": {"exclusiveMinimum": 0, "maximum": 10000},
                     "reason": {"maxLength": 200}},
}


def tillwise_schemas() -> list[dict]:
    """The five tightened tool schemas, in ``TOOL_NAMES`` order: what goes into a prompt's tool list."""
    return [schema_for(getattr(TillwiseTools, n), TILLWISE_SCHEMA_EXTRAS[n]) for n in TOOL_NAMES]


def _schemas_by_name(tools) -> dict[str, dict]:
    """``{name: schema}`` from schemas, functions, ``ToolSpec`` values or a mapping of them."""
    if isinstance(tools, Mapping):
        tools = list(tools.values())
    out = {}
    for tool in tools:
        if isinstance(tool, ToolSpec):
            schema = tool.schema
        elif isinstance(tool, dict):
            schema = tool
        elif callable(tool):
            schema = schema_for(tool)
        else:
            raise CourseError(f"A tool must be a schema dict, a function or a ToolSpec, not {type(tool).__name__}.")
        fn = schema.get("function", schema)
        out[fn["name"]] = schema
    return out


def _parameters(schema: dict) -> dict:
    return schema.get("function", schema).get("parameters", {"type": "object", "properties": {}})


def schema_errors(arguments, schema: dict) -> list[str]:
    """Why ``arguments`` do not fit the tool's ``schema`` (JSON Schema Draft 2020-12); ``[]`` if they do."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_parameters(schema))
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}" for e in errors]


# =========================================================================== 3. the call format
def format_tool_calls(calls: Sequence[Mapping]) -> str:
    """The 1.7B's call format for ``calls`` (``[{"name", "arguments"}]``); ``[]`` gives ``NO_CALL``.

    It is byte for byte what ``tool_chat_template()`` writes for an assistant message with the same
    ``tool_calls``, so training data built here matches prompts rendered there.
    """
    plain = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
    return TOOL_CALL_OPEN + json.dumps(plain, ensure_ascii=False) + TOOL_CALL_CLOSE


def as_tool_calls(calls: Sequence[Mapping]) -> list[dict]:
    """Calls in the shape chat templates take in an assistant message's ``tool_calls``."""
    return [{"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]


def tool_chat_template() -> str:
    """The tool-aware ChatML template for SmolLM2 (pass it as ``chat_template=``).

    Without tools it renders exactly what the stock template renders. With ``tools=`` the system turn
    holds SmolLM2-1.7B's function-calling prompt and the schemas; assistant ``tool_calls`` come out
    in the call format and role-``tool`` messages inside ``<tool_response>`` tags.
    """
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def render_with_tools(tokenizer, messages: Sequence[Mapping], tools: Sequence | None = None,
                      add_generation_prompt: bool = True) -> str:
    """The prompt text for ``messages`` with the tool list ``tools`` (schemas or functions)."""
    schemas = list(_schemas_by_name(tools).values()) if tools else None
    return tokenizer.apply_chat_template(list(messages), tools=schemas, tokenize=False,
                                         add_generation_prompt=add_generation_prompt,
                                         chat_template=tool_chat_template())


# =========================================================================== 4. the strict parser
# Each answer fails at most once, at the first of these checks it does not pass (in this order).
FAILURES = ("no_call_tag", "extra_text", "invalid_json", "not_a_list", "bad_item", "unknown_tool",
            "schema_violation")
FAILURE_MEANINGS = {
    "no_call_tag": "no complete <tool_call>...</tool_call> block",
    "extra_text": "text outside the one <tool_call> block (or several blocks)",
    "invalid_json": "the block is not valid JSON (json.loads fails, a key repeats, or NaN/Infinity)",
    "not_a_list": "the JSON is not a list of calls",
    "bad_item": 'a call is not an object with exactly "name" (text) and "arguments" (an object)',
    "unknown_tool": "a call names a tool that is not in the list",
    "schema_violation": "a call's arguments do not fit its tool's schema",
}
_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


@dataclass(frozen=True)
class ParsedAnswer:
    """One model answer, parsed. ``ok`` with ``calls == []`` is the explicit "no tool fits"."""

    text: str
    calls: list = field(default_factory=list)
    failure: str | None = None  # one of FAILURES, or None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def made_call(self) -> bool:
        """A usable call was made: the answer parsed and holds at least one call."""
        return self.ok and bool(self.calls)

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {len(self.calls)} call(s)" if self.calls else "ok: no call ([])"
        return f"{self.failure}: {self.detail}"


def _reject_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"repeated key {sorted(k for k in set(keys) if keys.count(k) > 1)[0]!r}")
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str):
    """``json.loads`` that also refuses repeated keys and NaN/Infinity (both are legal to Python's
    parser, and both are ways to smuggle in a value a reader of the text would not see)."""
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def parse_tool_calls(text: str, tools=None) -> ParsedAnswer:
    """Parse an answer in the call format, strictly, and say what is wrong with it if anything.

    The whole answer (spaces aside) must be one ``<tool_call>[...]</tool_call>`` block whose JSON is
    a list of ``{"name": ..., "arguments": {...}}``. With ``tools`` (schemas, functions or a toolset)
    the names must be in it and the arguments must fit the schemas. Nothing is ever coerced:
    ``"5"`` stays a string and fails a ``number`` parameter.
    """
    if not isinstance(text, str):
        return ParsedAnswer(repr(text), failure="no_call_tag", detail="the answer is not text")
    stripped = text.strip()
    blocks = list(_BLOCK.finditer(stripped))
    if not blocks:
        return ParsedAnswer(text, failure="no_call_tag", detail=FAILURE_MEANINGS["no_call_tag"])
    if len(blocks) > 1 or blocks[0].start() != 0 or blocks[0].end() != len(stripped):
        return ParsedAnswer(text, failure="extra_text",
                            detail=f"{len(blocks)} block(s), {len(stripped) - sum(len(b[0]) for b in blocks)} "
                                   "characters outside them")
    try:
        value = loads_strict(blocks[0].group(1))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return ParsedAnswer(text, failure="invalid_json", detail=str(exc))
    if not isinstance(value, list):
        return ParsedAnswer(text, failure="not_a_list", detail=f"got a JSON {_json_type(value)}")
    for i, item in enumerate(value):
        problem = _item_problem(item)
        if problem:
            return ParsedAnswer(text, failure="bad_item", detail=f"call {i}: {problem}")
    if tools is not None:
        schemas = _schemas_by_name(tools)
        for i, item in enumerate(value):
            if item["name"] not in schemas:
                return ParsedAnswer(text, failure="unknown_tool",
                                    detail=f"call {i}: {item['name']!r} is not one of {sorted(schemas)}")
            errors = schema_errors(item["arguments"], schemas[item["name"]])
            if errors:
                return ParsedAnswer(text, failure="schema_violation", detail=f"call {i}: {errors[0]}")
    return ParsedAnswer(text, calls=value)


def _item_problem(item) -> str:
    if not isinstance(item, dict):
        return f"a JSON {_json_type(item)}, not an object"
    if set(item) != {"name", "arguments"}:
        return f'keys {sorted(item)}, not exactly ["arguments", "name"]'
    if not isinstance(item["name"], str) or not item["name"]:
        return "the name is not a non-empty string"
    if not isinstance(item["arguments"], dict):
        return f"the arguments are a JSON {_json_type(item['arguments'])}, not an object"
    return ""


# Transformers' response parsing (transformers >= 5: tokenizer.parse_response / chat_parsing) with a
# response template for this call format. It builds the assistant message a chat template takes back.
# It is lenient by design (it keeps text around the block, skips extra keys, accepts NaN, and with
# tools= it casts "5" to 5), so the course runs it only on answers parse_tool_calls accepted.
RESPONSE_TEMPLATE = {
    "version": 1,
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "content": {},
        "tool_calls": {"open": TOOL_CALL_OPEN, "close": TOOL_CALL_CLOSE, "content": "json", "transform_each": True,
                       "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{arguments}"}}},
    },
}


def assistant_message(text: str, tools=None) -> dict:
    """The assistant message (``{"role", "content"?, "tool_calls"?}``) for an answer, to put back in
    the chat. Strict first (``parse_tool_calls``); a failed answer raises ``CourseError`` with why.
    A ``[]`` answer becomes ``tool_calls == []``."""
    from transformers.utils.chat_parsing import parse_response

    parsed = parse_tool_calls(text, tools)
    if not parsed.ok:
        raise CourseError(f"Not a valid call answer ({parsed}); count it as a failure instead of repairing it.")
    message = parse_response(text.strip(), RESPONSE_TEMPLATE, prefix="")
    message.setdefault("tool_calls", [])  # transformers drops an empty list
    message.setdefault("content", "")
    return message


# =========================================================================== 5. the executor
ACCESS_RULES = ("public", "customer", "order")
REASONS = {
    "ok": "done",
    # from the parser
    **FAILURE_MEANINGS,
    # from the executor
    "too_large": "the answer or an argument is longer than the executor accepts",
    "too_many_calls": "more calls in one answer than the executor accepts",
    "unauthorized": "the call touches another customer's account or order",
    "not_found": "no such record",
    "rule_violation": "the action breaks a business rule",
    "needs_confirmation": "waiting for the user to confirm; nothing has been done",
    "declined": "the user did not confirm; nothing was done",
    "unknown_action": "no pending action with that token in this session",
    "tool_error": "the tool failed",
}


@dataclass(frozen=True)
class Limits:
    """Size limits the executor checks before it parses or validates anything."""

    max_answer_chars: int = 4000  # a whole model answer
    max_calls: int = 4  # calls in one answer
    max_arguments_chars: int = 1000  # one call's arguments, as JSON
    max_string_chars: int = 256  # any one string inside the arguments


@dataclass(frozen=True)
class ToolSpec:
    """A tool the executor may run.

    ``access`` says whose data the call touches: ``"public"`` (anyone), ``("customer", param)``
    (the customer whose id is in ``param`` must be the session's) or ``("order", param)`` (the order
    in ``param`` must belong to the session's customer). ``side_effect`` tools need the user's
    confirmation; ``precheck`` (same arguments) raises ``ToolError`` if the action would fail, so
    the user is never asked to confirm something impossible.
    """

    function: Callable
    schema: dict
    access: str | tuple[str, str]
    side_effect: bool = False
    precheck: Callable | None = None

    @property
    def name(self) -> str:
        return self.schema["function"]["name"]

    def __post_init__(self):
        access = self.access
        kind = access if isinstance(access, str) else access[0] if len(access) == 2 else None
        if kind not in ACCESS_RULES or (kind == "public") != isinstance(access, str):
            raise CourseError(f"Tool {self.name}: access must be 'public', ('customer', param) or "
                              f"('order', param), not {self.access!r}.")


def make_tool(function: Callable, access: str | tuple[str, str], side_effect: bool = False,
              precheck: Callable | None = None, extra: Mapping[str, dict] | None = None) -> ToolSpec:
    """A ``ToolSpec`` for ``function``, its schema generated from the function and tightened."""
    return ToolSpec(function=function, schema=schema_for(function, extra), access=access,
                    side_effect=side_effect, precheck=precheck)


def tillwise_toolset(conn: sqlite3.Connection) -> dict[str, ToolSpec]:
    """The five Tillwise tools over ``conn``, keyed by name: the executor's allow-list."""
    t = TillwiseTools(conn)
    x = TILLWISE_SCHEMA_EXTRAS
    specs = [
        make_tool(t.get_stock, "public", extra=x["get_stock"]),
        make_tool(t.get_order_status, ("order", "order_id"), extra=x["get_order_status"]),
        make_tool(t.get_account, ("customer", "customer_id"), extra=x["get_account"]),
        make_tool(t.change_plan, ("customer", "customer_id"), side_effect=True, precheck=t.check_change_plan,
                  extra=x["change_plan"]),
        make_tool(t.issue_refund, ("order", "order_id"), side_effect=True, precheck=t.check_refund,
                  extra=x["issue_refund"]),
    ]
    return {s.name: s for s in specs}


def tool_result_json(payload) -> str:
    """``payload`` as JSON that cannot close the ``<tool_response>`` block or fake a special token:
    ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same JSON value)."""
    text = json.dumps(payload, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True)
class ToolResult:
    """What the executor did with one call (or with an answer it could not parse)."""

    name: str | None
    arguments: dict | None
    reason: str  # "ok" or a refusal code (see REASONS)
    message: str
    data: dict | None = None
    token: str | None = field(default=None, repr=False)  # for "needs_confirmation": the user side's key

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @property
    def refused(self) -> bool:
        return not self.ok

    def as_message(self) -> dict:
        """The role-``tool`` message for the model: JSON data, never instructions, never the token."""
        payload = {"ok": True, "result": self.data} if self.ok else {
            "ok": False, "refused": self.reason, "why": self.message}
        return {"role": "tool", "name": self.name or "unknown", "content": tool_result_json(payload)}

    def __str__(self) -> str:
        call = f"{self.name}({json.dumps(self.arguments)})" if self.name else "(no call)"
        return f"{call} -> {self.reason}: {self.message if not self.ok else json.dumps(self.data)}"


@dataclass(frozen=True)
class PendingAction:
    """A side-effecting call waiting for the user's yes. ``summary`` is written by the executor from
    the database, not by the model."""

    token: str
    name: str
    arguments: dict
    summary: str


class Executor:
    """Runs model calls for one signed-in customer, and refuses whatever it should not run.

    ``ask_user(action) -> bool``, if given, is called for every side-effecting call and must come
    from the *user's* side (a button, ``input()``); without it a side-effecting call returns
    ``needs_confirmation`` with a token, and the user side calls ``confirm(token)`` (or
    ``decline(token)``). No tool can confirm: ``confirm`` is a method of the executor, not a tool.

    Every decision is appended to ``log``; every side effect that ran, to ``side_effects``.
    """

    def __init__(self, conn: sqlite3.Connection, customer_id: str, tools: Mapping[str, ToolSpec] | None = None,
                 ask_user: Callable[[PendingAction], bool] | None = None, limits: Limits | None = None):
        self.conn = conn
        self.customer_id = customer_id
        self.tools = dict(tools) if tools is not None else tillwise_toolset(conn)
        self.ask_user = ask_user
        self.limits = limits or Limits()
        self.pending: dict[str, PendingAction] = {}
        self.log: list[ToolResult] = []
        self.side_effects: list[tuple[str, dict]] = []

    # ----------------------------------------------------------------- entry points
    def run_answer(self, text: str) -> list[ToolResult]:
        """Parse a model answer strictly and run each call. A refused answer gives one result."""
        if not isinstance(text, str) or len(text) > self.limits.max_answer_chars:
            size = len(text) if isinstance(text, str) else "?"
            return [self._refuse(None, None, "too_large",
                                 f"The answer has {size} characters; the limit is {self.limits.max_answer_chars}.")]
        parsed = parse_tool_calls(text)
        if not parsed.ok:
            return [self._refuse(None, None, parsed.failure, parsed.detail)]
        if len(parsed.calls) > self.limits.max_calls:
            return [self._refuse(None, None, "too_many_calls",
                                 f"{len(parsed.calls)} calls; the limit is {self.limits.max_calls} per answer.")]
        return [self.run(call) for call in parsed.calls]

    def run(self, call) -> ToolResult:
        """Check one call (``{"name", "arguments"}``) and run it, or refuse it with a reason."""
        problem = _item_problem(call)
        if problem:
            return self._refuse(None, None, "bad_item", problem)
        name, args = call["name"], call["arguments"]
        spec = self.tools.get(name)
        if spec is None:
            return self._refuse(name[:40], None, "unknown_tool",
                                f"There is no tool {name[:40]!r}. The tools are: {', '.join(self.tools)}.")
        try:
            json.dumps(args, allow_nan=False)
        except (TypeError, ValueError):
            return self._refuse(name, None, "bad_item", "The arguments are not plain JSON values.")
        size = _size_problem(args, self.limits)
        if size:
            return self._refuse(name, None, "too_large", size)
        errors = schema_errors(args, spec.schema)
        if errors:
            return self._refuse(name, args, "schema_violation", "; ".join(errors[:3]))
        refusal = self._authorize(spec, args)
        if refusal:
            return self._refuse(name, args, *refusal)
        if spec.side_effect:
            return self._request_confirmation(spec, args)
        return self._execute(spec, args)

    def confirm(self, token: str) -> ToolResult:
        """The user said yes to a pending action: check it again (the world may have changed) and run it."""
        action = self.pending.pop(token, None)
        if action is None:
            return self._refuse(None, None, "unknown_action", "No pending action has this token in this session.")
        spec = self.tools[action.name]
        refusal = self._authorize(spec, action.arguments)
        if refusal:
            return self._refuse(action.name, action.arguments, *refusal)
        return self._execute(spec, action.arguments)

    def decline(self, token: str) -> ToolResult:
        """The user said no: forget the pending action."""
        action = self.pending.pop(token, None)
        if action is None:
            return self._refuse(None, None, "unknown_action", "No pending action has this token in this session.")
        return self._refuse(action.name, action.arguments, "declined", "The user did not confirm; nothing was done.")

    # ----------------------------------------------------------------- the checks
    def _authorize(self, spec: ToolSpec, args: dict) -> tuple[str, str] | None:
        if spec.access == "public":
            return None
        kind, param = spec.access
        value = args.get(param)
        if kind == "customer":
            if value != self.customer_id:
                return "unauthorized", f"This session belongs to customer {self.customer_id}; " \
                                       f"it cannot read or change customer {value}."
            return None
        row = self.conn.execute("SELECT customer_id FROM orders WHERE id = ?", (value,)).fetchone()
        if row is None:
            # A real system might answer "not found" for other customers' orders too, so that no one
            # can probe which order numbers exist; the course keeps the two apart to show each check.
            return "not_found", f"There is no order {value}."
        if row[0] != self.customer_id:
            return "unauthorized", f"Order {value} belongs to another customer; this session is {self.customer_id}."
        return None

    def _request_confirmation(self, spec: ToolSpec, args: dict) -> ToolResult:
        if spec.precheck is not None:
            try:
                spec.precheck(**args)
            except ToolError as exc:
                return self._refuse(spec.name, args, exc.reason, exc.message)
        action = PendingAction(token=secrets.token_urlsafe(12), name=spec.name, arguments=copy.deepcopy(args),
                               summary=self.describe(spec.name, args))
        if self.ask_user is not None:
            if self.ask_user(action) is True:
                return self._execute(spec, action.arguments)
            return self._refuse(spec.name, args, "declined", "The user did not confirm; nothing was done.")
        self.pending[action.token] = action
        return self._record(ToolResult(spec.name, args, "needs_confirmation",
                                       f"Asked the user to confirm: {action.summary} Nothing has been done yet.",
                                       token=action.token))

    def describe(self, name: str, args: dict) -> str:
        """A plain sentence for the confirmation prompt, built from the database."""
        if name == "issue_refund":
            total = self.conn.execute("SELECT total_cents FROM orders WHERE id = ?", (args["order_id"],)).fetchone()
            return (f"Refund ${args['amount']:.2f} on order {args['order_id']} "
                    f"(order total ${dollars(total[0]):.2f}) to customer {self.customer_id}?")
        if name == "change_plan":
            old = self.conn.execute("SELECT plan FROM customers WHERE id = ?", (args["customer_id"],)).fetchone()
            return f"Change customer {args['customer_id']} from the {old[0]} plan to the {args['plan']} plan?"
        return f"Run {name} with {json.dumps(args)}?"

    def _execute(self, spec: ToolSpec, args: dict) -> ToolResult:
        try:
            data = spec.function(**args)
        except ToolError as exc:
            return self._refuse(spec.name, args, exc.reason, exc.message)
        except (sqlite3.Error, TypeError, ValueError) as exc:
            return self._refuse(spec.name, args, "tool_error", f"{spec.name} failed ({type(exc).__name__}).")
        if spec.side_effect:
            self.side_effects.append((spec.name, copy.deepcopy(args)))
        return self._record(ToolResult(spec.name, args, "ok", "done", data=data))

    def _refuse(self, name, args, reason: str, message: str) -> ToolResult:
        return self._record(ToolResult(name, args, reason, message))

    def _record(self, result: ToolResult) -> ToolResult:
        self.log.append(result)
        return result


def _size_problem(args: dict, limits: Limits) -> str:
    text = json.dumps(args, ensure_ascii=False)
    if len(text) > limits.max_arguments_chars:
        return f"The arguments are {len(text)} characters of JSON; the limit is {limits.max_arguments_chars}."
    longest = max((len(s) for s in _strings_in(args)), default=0)
    if longest > limits.max_string_chars:
        return f"An argument holds {longest} characters; the limit is {limits.max_string_chars}."
    return ""


def _strings_in(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings_in(v)


# =========================================================================== 6. metrics
@dataclass(frozen=True)
class CallMatch:
    """An answer's calls against the gold calls. ``reason`` is "match" or the first problem found."""

    ok: bool
    reason: str
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


MATCH_REASONS = ("match", "unparseable", "irrelevant_call", "no_call", "wrong_count", "wrong_function",
                 "missing_arg", "extra_arg", "wrong_type", "wrong_value")


def _json_type(value) -> str:
    if isinstance(value, bool):  # before int: True is an int to Python, not to JSON Schema
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _strict_equal(got, want) -> tuple[bool, str]:
    """(same?, "wrong_type" | "wrong_value" | ""). No coercion: ``"5"`` is not ``5``, ``True`` is not
    ``1``. JSON has one number type, so an integer answer equals a number gold of the same value
    (``20`` for ``20.0``), as the BFCL checker allows; ``5.0`` for an integer gold is a wrong type."""
    tg, tw = _json_type(got), _json_type(want)
    if tg != tw and not (tg == "integer" and tw == "number"):
        return False, "wrong_type"
    if tw == "array":
        if len(got) != len(want):
            return False, "wrong_value"
        for g, w in zip(got, want, strict=True):
            same, why = _strict_equal(g, w)
            if not same:
                return False, why
        return True, ""
    if tw == "object":
        if set(got) != set(want):
            return False, "wrong_value"
        for k in want:
            same, why = _strict_equal(got[k], want[k])
            if not same:
                return False, why
        return True, ""
    return (got == want, "" if got == want else "wrong_value")


def match_call(call: Mapping, gold: Mapping, schema: dict | None = None) -> CallMatch:
    """One call against one gold call, the way BFCL's AST checker scores it.

    Right function; every required parameter (by the schema) and every gold argument present; no
    parameter the function does not take; each gold argument with the same JSON type and value.
    An optional parameter the gold leaves out may be given (its type is the schema's business).
    Without ``schema`` the gold's arguments are the whole parameter list.
    """
    if call.get("name") != gold["name"]:
        return CallMatch(False, "wrong_function", f"{call.get('name')!r} instead of {gold['name']!r}")
    args, want = call.get("arguments", {}), gold["arguments"]
    params = _parameters(schema) if schema else {"properties": dict.fromkeys(want), "required": list(want)}
    missing = [k for k in [*params.get("required", []), *want] if k not in args]
    if missing:
        return CallMatch(False, "missing_arg", f"{missing[0]!r} is missing")
    extra = [k for k in args if k not in params.get("properties", {})]
    if extra:
        return CallMatch(False, "extra_arg", f"{gold['name']} takes no {extra[0]!r}")
    for k, w in want.items():
        same, why = _strict_equal(args[k], w)
        if not same:
            return CallMatch(False, why, f"{k}: {args[k]!r} ({_json_type(args[k])}), gold {w!r} ({_json_type(w)})")
    return CallMatch(True, "match")


def match_calls(calls: Sequence[Mapping], gold: Sequence[Mapping], tools=None) -> CallMatch:
    """All calls of an answer against all gold calls, in any order (parallel calls as in BFCL).
    ``gold == []`` means no tool should be called: only ``[]`` matches."""
    schemas = _schemas_by_name(tools) if tools is not None else {}
    if not gold:
        return CallMatch(not calls, "match" if not calls else "irrelevant_call",
                         "" if not calls else f"called {calls[0].get('name')!r} when no tool was needed")
    if not calls:
        return CallMatch(False, "no_call", "answered [] when a call was needed")
    if len(calls) != len(gold):
        return CallMatch(False, "wrong_count", f"{len(calls)} calls, gold has {len(gold)}")
    unused = list(calls)
    for g in gold:
        results = [match_call(c, g, schemas.get(g["name"])) for c in unused]
        hit = next((i for i, r in enumerate(results) if r.ok), None)
        if hit is None:
            same_name = [r for c, r in zip(unused, results, strict=True) if c.get("name") == g["name"]]
            return (same_name or results)[0]
        unused.pop(hit)
    return CallMatch(True, "match")


def score_answer(text: str, gold: Sequence[Mapping], tools=None) -> CallMatch:
    """Parse ``text`` (syntax only: tool names and types are the AST match's to judge) and match it."""
    parsed = parse_tool_calls(text)
    if not parsed.ok:
        return CallMatch(False, "unparseable", str(parsed))
    return match_calls(parsed.calls, gold, tools)


def _golds(requests) -> list[list[dict]]:
    return [r.gold if isinstance(r, ToolRequest) else list(r) for r in requests]


def match_flags(answers: Sequence[str], requests: Sequence, tools=None) -> list[CallMatch]:
    """``score_answer`` for each (answer, request) pair. ``requests``: ``ToolRequest`` or gold lists."""
    golds = _golds(requests)
    if len(answers) != len(golds):
        raise CourseError(f"{len(answers)} answers for {len(golds)} requests; pass one answer per request.")
    return [score_answer(a, g, tools) for a, g in zip(answers, golds, strict=True)]


def call_accuracy(answers: Sequence[str], requests: Sequence, tools=None) -> Rate:
    """Share of answers whose calls AST-match the gold (``[]`` must match ``[]``), with n and a 95 % CI."""
    return Rate.from_flags(m.ok for m in match_flags(answers, requests, tools))


def call_rate(answers: Sequence[str]) -> Rate:
    """Share of answers that parse and make at least one call."""
    return Rate.from_flags(parse_tool_calls(a).made_call for a in answers)


def irrelevance_rate(answers: Sequence[str], requests: Sequence) -> Rate:
    """Among the requests that need no tool (gold ``[]``): the share of answers that still make a
    call (parse and hold one or more calls). Lower is better; a model that always answers ``[]``
    scores 0 % here and fails every request that needs a call."""
    golds = _golds(requests)
    if len(answers) != len(golds):
        raise CourseError(f"{len(answers)} answers for {len(golds)} requests; pass one answer per request.")
    return Rate.from_flags(parse_tool_calls(a).made_call for a, g in zip(answers, golds, strict=True) if not g)


def failure_counts(answers: Sequence[str], tools=None) -> dict[str, int]:
    """How many answers fail at each parser check (``FAILURES`` order), and how many are ``ok``."""
    counts = Counter(parse_tool_calls(a, tools).failure or "ok" for a in answers)
    return {k: counts.get(k, 0) for k in (*FAILURES, "ok")}


def match_reasons(matches: Sequence[CallMatch]) -> dict[str, int]:
    """How many matches ended at each reason (``MATCH_REASONS`` order)."""
    counts = Counter(m.reason for m in matches)
    return {k: counts.get(k, 0) for k in MATCH_REASONS}


# =========================================================================== 7. the eval set
REQUEST_KINDS = ("live_state", "action", "no_tool")
REQUEST_SPLITS = ("train", "val", "test", "heldout")

SHORT_SYSTEM = "You are Tillwise's back-office assistant."


@dataclass(frozen=True)
class ToolRequest:
    """One hand-written request of ``tool_requests.jsonl``.

    ``gold`` is the call list the model should answer with (``[]``: no tool fits). For a live-state
    question, ``truth`` names the field of the gold call's result that answers it: run the gold call
    against the back office (``truth_for``) and you have the right answer as of now.
    """

    id: str
    kind: str
    split: str
    customer_id: str
    request: str
    gold: list
    truth: str | None = None
    topic: str = ""

    @property
    def expected(self) -> str:
        """The gold answer written in the call format."""
        return format_tool_calls(self.gold)


def load_tool_requests(split: str | None = None, kind: str | None = None) -> list[ToolRequest]:
    """The eval set of lesson 03, optionally one ``split`` (train / val / test / heldout) and one
    ``kind`` (live_state / action / no_tool). ``heldout`` is in wording unlike the other splits."""
    if split is not None and split not in REQUEST_SPLITS:
        raise CourseError(f"Unknown split {split!r}; use one of {', '.join(REQUEST_SPLITS)}.")
    if kind is not None and kind not in REQUEST_KINDS:
        raise CourseError(f"Unknown kind {kind!r}; use one of {', '.join(REQUEST_KINDS)}.")
    rows = [ToolRequest(**r) for r in load_jsonl("tool_requests")]
    return [r for r in rows if (split is None or r.split == split) and (kind is None or r.kind == kind)]


def request_messages(request: ToolRequest | str, customer_id: str | None = None,
                     system: str = SHORT_SYSTEM) -> list[dict]:
    """System and user turns for a request: the system line names the signed-in customer, which is
    how the model knows whose ``customer_id`` to use."""
    if isinstance(request, ToolRequest):
        customer_id, text = customer_id or request.customer_id, request.request
    else:
        text = request
    if not customer_id:
        raise CourseError("Say which customer is signed in: pass customer_id='C-1007' (or a ToolRequest).")
    return [{"role": "system", "content": f"{system}\nSigned-in customer: {customer_id}."},
            {"role": "user", "content": text}]


def training_examples(requests: Sequence[ToolRequest], system: str = SHORT_SYSTEM) -> list[dict]:
    """Chat examples (``{"id", "messages"}``) whose answer is the gold call list in the call format,
    ``<tool_call>[]</tool_call>`` included: the "no tool" examples that teach the model when not to
    call. They fit ``ftcourse.lora.encode_examples``."""
    return [{"id": r.id, "messages": [*request_messages(r, system=system),
                                      {"role": "assistant", "content": r.expected}]} for r in requests]


def truth_for(request: ToolRequest, conn: sqlite3.Connection):
    """The right answer to a live-state question as of now: run its gold call (a read) directly on
    the back office and take the ``truth`` field of the result."""
    if request.kind != "live_state" or not request.truth:
        raise CourseError(f"{request.id} is a {request.kind} request: only live-state questions have a truth.")
    call = request.gold[0]
    if call["name"] not in ("get_stock", "get_order_status", "get_account"):
        raise CourseError(f"{request.id}: a live-state truth comes from a read tool, not {call['name']}.")
    return getattr(TillwiseTools(conn), call["name"])(**call["arguments"])[request.truth]


_NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                 "fifteen sixteen seventeen eighteen nineteen twenty").split()


def truth_keywords(truth) -> list[str]:
    """The keywords an answer must hold to state ``truth`` (see ``ftcourse.evals.fact_is_correct``)."""
    if isinstance(truth, bool):
        raise CourseError("A truth is a number or a word, not a boolean.")
    if isinstance(truth, int):
        alternatives = [str(truth)] + ([_NUMBER_WORDS[truth]] if 0 <= truth < len(_NUMBER_WORDS) else [])
        if truth == 0:
            alternatives += ["none", "no units", "out of stock", "sold out"]
        return ["|".join(alternatives)]
    if isinstance(truth, float):  # money
        amount = abs(truth)
        text = f"{amount:.2f}"
        forms = [text, text.removesuffix(".00")] if text.endswith(".00") else [text, text.rstrip("0")]
        keywords = ["|".join(dict.fromkeys(forms))]
        if truth == 0:
            keywords = ["0|0.00|zero|nothing|no balance"]
        elif truth < 0:
            keywords.append("credit")
        return keywords
    if isinstance(truth, str):
        return [truth]
    raise CourseError(f"No keywords for a truth of type {type(truth).__name__}.")


_STATED_VALUE = {
    "qty": re.compile(r"(?<![\w.$-])\d+(?![\w]|\.\d)|\b(?:" + "|".join(_NUMBER_WORDS)
                      + r"|none left|sold out|out of stock|in stock)\b"),
    "status": re.compile(r"\b(?:processing|being processed|shipped|dispatched|in transit|on its way|delivered"
                         r"|arrived|cancell?ed)\b"),
    "plan": re.compile(r"\b(?:starter|pro|business)\s+(?:plan|tier|subscription)\b"
                       r"|\bon\s+(?:the\s+)?(?:starter|pro|business)\b"),
    "balance": re.compile(r"\$\s?\d|\b\d+(?:\.\d\d)?\s?(?:dollars|usd)\b|\bnothing (?:is )?(?:due|owed|owing)\b"
                          r"|\bno balance\b|\bcredit of\b"),
}


def states_a_value(answer: str, request: ToolRequest | str) -> bool:
    """Does a free-text answer state a value for the question (a quantity, a status, a plan, an
    amount), right or wrong? Without a tool, such an answer was made up: that is what "invents an
    answer" counts. ``request`` is a live-state ``ToolRequest`` or its ``truth`` field name.
    A heuristic on purpose (patterns, not understanding): read a sample of what it flags."""
    name = request.truth if isinstance(request, ToolRequest) else request
    if name not in _STATED_VALUE:
        raise CourseError(f"No value pattern for {name!r}; use a live-state request or one of {sorted(_STATED_VALUE)}.")
    return bool(_STATED_VALUE[name].search(normalise_text(answer or "")))


def answer_is_correct(answer: str, truth) -> bool:
    """Does a free-text answer state ``truth`` (a quantity, a status, a plan, a balance)?"""
    fact = Fact(id="truth", topic="live state", note="", answer=str(truth), keywords=truth_keywords(truth))
    return fact_is_correct(answer, fact)


# =========================================================================== 8. hostile calls
HOSTILE_CALLS_PATH = DATA_DIR / "backoffice" / "hostile_calls.jsonl"


def load_hostile_calls() -> list[dict]:
    """The security suite: model answers that must all be refused (``{"id", "customer_id", "what",
    "answer", "expect"}``; ``expect`` is the reason code the executor must give)."""
    return load_jsonl(Path(HOSTILE_CALLS_PATH))

