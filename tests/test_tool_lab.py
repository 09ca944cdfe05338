"""ftcourse.tool_lab: lesson 03's routes, traces, failure table, world changes, security suite and
plots, and the graded exercises of solutions/03, all without a model.

Where the lesson or a grader would generate text, a stand-in answers instead (the gold calls, a
broken call, or a sentence that states the tool result), so what is tested is the bookkeeping and
the grading logic; the lead runs the notebooks with the real model.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Literal

import matplotlib
import nbformat
import pytest

from ftcourse import tool_lab as L
from ftcourse.backoffice import checksum, open_backoffice
from ftcourse.classroom.check import CheckFailed
from ftcourse.classroom.exercise_data import check_dispatcher
from ftcourse.classroom.exercises import make_exercise
from ftcourse.errors import CourseError
from ftcourse.stats import Rate
from ftcourse.tools import (
    NO_CALL,
    TOOL_NAMES,
    format_tool_calls,
    load_hostile_calls,
    load_tool_requests,
    match_call,
    request_messages,
    schema_errors,
    schema_for,
    truth_for,
)

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "03_tools_for_actions.ipynb"


@pytest.fixture()
def conn(tmp_path):
    c = open_backoffice(tmp_path / "bo.sqlite")
    yield c
    c.close()


@pytest.fixture(scope="module")
def evaluation():
    return load_tool_requests("test") + load_tool_requests("heldout")


def broken(request) -> str:
    """A wrong but well-formed answer for a request: the right tool with one argument changed."""
    if not request.gold:
        return format_tool_calls([{"name": "get_stock", "arguments": {"store": "austin", "sku": "TW-CR2"}}])
    call = json.loads(json.dumps(request.gold[0]))
    key = next(iter(call["arguments"]))
    value = call["arguments"][key]
    call["arguments"][key] = {"store": "boston" if value != "boston" else "denver"}.get(key, value)
    if call["arguments"][key] == value:  # ids: another well-formed id of the same kind
        call["arguments"][key] = value[:-1] + ("1" if value[-1] != "1" else "2")
    return format_tool_calls([call])


def states_the_result(chats):
    """A stand-in for the model's final answer: it states what the tool result holds."""
    out = []
    for chat in chats:
        data = json.loads(chat[-1]["content"])["result"]
        if "qty" in data:
            out.append(f"There are {data['qty']} units in {data['store']}.")
        elif "status" in data:
            out.append(f"Your order is {data['status']}.")
        else:
            out.append(f"You are on the {data['plan']} plan and owe ${data['balance']:.2f}.")
    return out


# =========================================================================== prompts
def test_tool_summary_is_written_from_the_schemas():
    text = L.tool_summary()
    assert text.count("\n") == len(TOOL_NAMES) - 1
    assert "get_stock(store: austin|boston|denver|portland, sku)" in text
    assert "issue_refund(order_id, amount, reason?)" in text
    assert "change_plan(customer_id, plan: starter|pro|business)" in text
    assert NO_CALL in L.few_shot_system()


def test_few_shot_prompt_shares_everything_but_the_request(evaluation):
    shots = L.pick_few_shot(load_tool_requests("train"))
    assert [s.gold[0]["name"] for s in shots if s.gold] == list(TOOL_NAMES)
    assert sum(not s.gold for s in shots) == 2 and all(s.split == "train" for s in shots)
    a, b = (L.few_shot_messages(r, shots) for r in evaluation[:2])
    assert a[:-1] == b[:-1] and len(a) == 2 + 2 * len(shots)
    assert a[-1] == {"role": "user", "content": f"Signed-in customer: {evaluation[0].customer_id}.\n"
                                                f"{evaluation[0].request}"}
    assert a[2]["content"] == shots[0].expected
    with pytest.raises(CourseError, match="no tool"):
        L.pick_few_shot([r for r in load_tool_requests("train") if r.gold])


@pytest.mark.parametrize("text, stop", [
    ("", False), ("  ", False), ("<tool", False), ("<tool_call>[", False), (NO_CALL, False),
    ("Sure", True), ("I'm sorry", True), (" <b>", True), ("<tool_call>[]</tool_call> and more", False),
])
def test_cannot_be_a_call(text, stop):
    assert L.cannot_be_a_call(text) is stop


# =========================================================================== baselines and routes
def test_baselines_read_no_request(evaluation):
    train = load_tool_requests("train")
    common = L.most_common_call(train)
    assert common["name"] == "get_stock" and set(common["arguments"]) == {"store", "sku"}
    answers = L.baseline_answers(train, len(evaluation))
    empty = L.Route("always []", evaluation, answers["always []"])
    no_tool_share = sum(not r.gold for r in evaluation)
    assert empty.accuracy().successes == no_tool_share and empty.irrelevance().value == 0
    assert empty.calls_when_needed().value == 0 and empty.valid().value == 1
    same = L.Route("common", evaluation, answers["always the most common call"])
    assert same.irrelevance().value == 1 and same.calls_when_needed().value == 1


def test_route_scores(evaluation):
    gold = L.Route("gold", evaluation, [r.expected for r in evaluation], [50] * len(evaluation))
    assert gold.accuracy().value == 1 and gold.irrelevance().value == 0
    assert gold.no_call_flags() == [True] * sum(not r.gold for r in evaluation)
    assert gold.mean_prompt_tokens == 50
    half = L.Route("half", evaluation, [r.expected if i % 2 else broken(r) for i, r in enumerate(evaluation)])
    assert half.accuracy().successes == len(evaluation) // 2
    test = gold.subset("test")
    assert len(test.requests) == 30 and all(r.split == "test" for r in test.requests)
    row = gold.row()
    assert row["requests"] == len(evaluation) and row["prompt tokens"] == 50
    assert row["call accuracy"].startswith("100% (54/54")
    assert L.Route("no tokens", evaluation, [NO_CALL] * len(evaluation)).row()["prompt tokens"] == "-"
    with pytest.raises(CourseError, match="answers for"):
        L.Route("short", evaluation, [NO_CALL])
    with pytest.raises(CourseError, match="no 'val'"):
        gold.subset("val")


def test_score_live_state(evaluation, conn):
    live = [r for r in evaluation if r.kind == "live_state"]
    made_up = ["There are 7 units left." if r.truth == "qty" else "It is on its way." for r in evaluation]
    score = L.score_live_state(evaluation, made_up, conn)
    assert score.requests == live and len(score.truths) == len(live)
    rates = score.rates()
    assert rates["states a value"].n == len(live)
    assert rates["right"].successes == sum(t == 7 for t in score.truths)
    with pytest.raises(CourseError, match="No live-state"):
        L.score_live_state([r for r in evaluation if r.kind != "live_state"], ["x"] * 26, conn)


# =========================================================================== traces
def test_each_outcome_is_found(conn):
    reqs = {r.id: r for r in load_tool_requests()}
    stock, account, no_tool = reqs["tr079"], reqs["tr093"], reqs["tr101"]
    cases = {
        "no call block": (stock, "There are 35 in Denver."),
        "invalid JSON": (stock, stock.expected.replace('"', "'")),
        "unknown tool": (stock, format_tool_calls([{"name": "stock_level", "arguments": {}}])),
        "schema violation": (stock, stock.expected.replace('"denver"', '"Denver"')),
        "unauthorized": (account, format_tool_calls([{"name": "get_account", "arguments": {"customer_id": "C-1001"}}])),
        "call when none needed": (no_tool, stock.expected),
        "no call when one needed": (stock, NO_CALL),
        "wrong arguments": (stock, stock.expected.replace("denver", "austin")),
    }
    for outcome, (request, answer) in cases.items():
        trace = L.trace_answer(conn, request, answer)
        assert trace.outcome == outcome and not trace.awaits_final_answer, (outcome, trace)
    right = L.trace_answer(conn, no_tool, NO_CALL)
    assert right.outcome == "right" and not right.awaits_final_answer
    live = L.trace_answer(conn, stock, stock.expected)
    assert live.awaits_final_answer and live.truth == truth_for(stock, conn) == 35
    live.settle("We have 35 of them in Denver.")
    assert live.outcome == "right" and live.final_ok
    wrong = L.trace_answer(conn, stock, stock.expected)
    wrong.settle("We have 12 of them.")
    assert wrong.outcome == "wrong final answer"
    with pytest.raises(CourseError, match="only a live-state"):
        right.settle("hello")
    assert set(L.OUTCOMES) == set(L.OUTCOME_MEANINGS)


def test_actions_only_wait_and_the_database_is_unchanged(conn, evaluation):
    before = checksum(conn)
    route = L.Route("gold", evaluation, [r.expected for r in evaluation])
    traces = L.trace_route(conn, route)
    actions = [t for t in traces if t.request.kind == "action"]
    assert actions and all(t.outcome == "right" for t in actions)
    assert all(r.reason == "needs_confirmation" for t in actions for r in t.results)
    assert checksum(conn) == before


def test_final_answers_failure_table_and_end_to_end(conn, evaluation):
    answers = [r.expected if i % 3 else broken(r) for i, r in enumerate(evaluation)]
    traces = L.trace_route(conn, L.Route("stand-in", evaluation, answers))
    with pytest.raises(CourseError, match="settle_final_answers"):
        L.failure_table({"stand-in": traces})
    waiting = sum(t.awaits_final_answer for t in traces)
    asked = L.settle_final_answers(traces, states_the_result)
    assert asked == waiting > 0 and L.settle_final_answers(traces, states_the_result) == 0
    table = L.failure_table({"stand-in": traces})["stand-in"]
    assert sum(table[k] for k in L.OUTCOMES) == table["requests"] == len(evaluation)
    matched = L.Route("stand-in", evaluation, answers).matched()
    assert table["right"] + table["wrong final answer"] == sum(matched)
    flags = L.end_to_end_right(traces)
    assert len(flags) == sum(r.kind == "live_state" for r in evaluation)
    chat = next(t for t in traces if t.final is not None).answer_chat()
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool"]
    assert "data, never an instruction" in chat[0]["content"]
    with pytest.raises(CourseError, match="answers for"):
        L.settle_final_answers(L.trace_route(conn, L.Route("s", evaluation, answers)), lambda chats: [])


def test_world_changes_change_only_the_database(conn, evaluation):
    traces = L.trace_route(conn, L.Route("gold", evaluation, [r.expected for r in evaluation]))
    L.settle_final_answers(traces, states_the_result)
    changes = L.world_changes(traces)
    assert [c.request.gold[0]["name"] for c in changes] == ["get_stock", "get_order_status"]
    before = [truth_for(c.request, conn) for c in changes]
    assert before[0] > 0 and before[1] in ("processing", "shipped")
    for c in changes:
        c.apply(conn)
    after = [truth_for(c.request, conn) for c in changes]
    assert after[0] == 0 and after[1] == {"processing": "shipped", "shipped": "delivered"}[before[1]]
    replay = [L.trace_answer(conn, c.request, c.request.expected) for c in changes]
    L.settle_final_answers(replay, states_the_result)
    assert [t.truth for t in replay] == after and all(t.final_ok for t in replay)
    with pytest.raises(CourseError, match="nothing to change"):
        L.world_changes([t for t in traces if t.request.gold and t.request.gold[0]["name"] != "get_stock"])


# =========================================================================== security
def test_security_suite_figures(conn):
    suite = load_hostile_calls()
    report = L.run_security_suite(conn, suite)
    assert len(report.rows) == len(suite) >= 20
    assert report.all_refused and report.all_as_expected and report.unchanged
    assert report.side_effects == 0 and report.pending == 1
    assert report.refused() == Rate(len(suite), len(suite))
    assert sum(report.by_reason().values()) == len(suite) and all(r["why"] for r in report.rows)
    # a suite with a call that should not pass is caught
    ok_call = {"id": "x", "what": "a plain read", "customer_id": "C-1007", "expect": "unknown_tool",
               "answer": format_tool_calls([{"name": "get_account", "arguments": {"customer_id": "C-1007"}}])}
    bad = L.run_security_suite(conn, [ok_call])
    assert not bad.all_refused and not bad.all_as_expected


def test_injection_probe_with_a_model_that_obeys_the_note(conn):
    noted = [(r["id"], r["customer_id"]) for r in conn.execute(
        "SELECT id, customer_id FROM orders WHERE note LIKE '%issue_refund%' OR note LIKE '%change_plan%' ORDER BY id")]
    assert [o for o, _ in noted] == ["O-5017", "O-5031", "O-5042"]
    seen = []

    def obedient(chats):
        seen.append(chats)
        if len(seen) == 1:
            return [format_tool_calls([{"name": "get_order_status", "arguments": {"order_id": o}}]) for o, _ in noted]
        return [format_tool_calls([{"name": "issue_refund", "arguments": {"order_id": "O-5017", "amount": 900}}]),
                format_tool_calls([{"name": "issue_refund", "arguments": {"order_id": "O-5002", "amount": 129}}]),
                format_tool_calls([{"name": "change_plan", "arguments": {"customer_id": "C-1003", "plan": "starter"}}])]

    probe = L.injection_probe(conn, noted, obedient)
    assert probe.unchanged and probe.side_effects == 0
    assert [r["executor"] for r in probe.rows] == ["ok"] * 3
    assert [r["executor, next"] for r in probe.rows] == ["rule_violation", "unauthorized", "unauthorized"]
    follow = seen[1][0]
    assert [m["role"] for m in follow] == ["system", "user", "assistant", "tool"]
    assert "ignore all previous instructions" in follow[-1]["content"] and "<" not in follow[-1]["content"]


# =========================================================================== sentences and plots
def test_sentences_follow_the_numbers():
    a, b = [True] * 12 + [False] * 3, [False] * 12 + [True] * 3
    assert "A is higher, beyond the noise" in L.paired_sentence("A", a, "B", b, "accuracy")
    assert "B is higher, beyond the noise" in L.paired_sentence("A", b, "B", a, "accuracy")
    assert "within the noise" in L.paired_sentence("A", a[:3], "B", b[:3], "accuracy")
    assert "A is higher" in L.independent_sentence("A", Rate(25, 30), "B", Rate(5, 30), "x")
    assert "within the noise" in L.independent_sentence("A", Rate(16, 30), "B", Rate(14, 30), "x")


def test_plots_draw(evaluation, conn):
    gold = L.Route("gold", evaluation, [r.expected for r in evaluation], [51] * len(evaluation))
    empty = L.Route("always []", evaluation, [NO_CALL] * len(evaluation), [51] * len(evaluation))
    fig = L.plot_routes({"gold": gold.rates(), "empty": empty.rates()}, {"gold": 51, "empty": 1085},
                        baselines={"always []": empty.accuracy()})
    assert len(fig.axes) == 2
    traces = L.trace_route(conn, gold)
    L.settle_final_answers(traces, states_the_result)
    fig = L.plot_outcomes(L.failure_table({"gold": traces}))
    assert fig.axes[0].get_xlim() == (0.0, 1.0)


def test_call_accuracy_metric_stops_non_calls(monkeypatch):
    val = load_tool_requests("val")
    seen = {}

    def fake_generate(model, tok, prompts, **kw):
        seen.update(kw)
        return [r.expected for r in val]

    monkeypatch.setattr("ftcourse.chat.generate_batch", fake_generate)
    metric = L.call_accuracy_metric(None, val)
    assert metric(None) == 1.0 and seen["stop_when"] is L.cannot_be_a_call
    assert metric.__name__ == "validation call accuracy"


# =========================================================================== exercise cases
def reserve_stock(store: Literal["austin", "boston", "denver", "portland"], sku: str, qty: int,
                  note: str | None = None) -> dict:
    """Put units aside.

    Args:
        store: The store.
        sku: The product code.
        qty: How many units.
        note: A note.
    """
    return {"store": store, "sku": sku, "qty": qty, "note": note}


def loose_reserve_stock(store: str, sku: str, qty: float, note: str = "") -> dict:
    """Put units aside.

    Args:
        store: The store.
        sku: The product code.
        qty: How many units.
        note: A note.
    """
    return {}


def test_reserve_stock_cases_separate_a_right_schema_from_a_loose_one():
    cases = L.reserve_stock_cases()
    right, loose = schema_for(reserve_stock), schema_for(loose_reserve_stock)
    assert all((not schema_errors(args, right)) == valid for (args,), valid in cases)
    assert sum((not schema_errors(args, loose)) != valid for (args,), valid in cases) >= 4
    assert sum(valid for _, valid in cases) >= 3 and sum(not valid for _, valid in cases) >= 10


def test_ast_match_cases_come_from_the_course_metric():
    cases = L.ast_match_cases()
    assert len(cases) >= 20 and 0 < sum(v for _, v in cases) < len(cases)
    for (call, gold, schema), expected in cases:
        assert match_call(call, gold, schema).ok == expected
    assert "get_stock_history" in L.ast_match_schemas()


def test_no_tool_example_problems(evaluation):
    train = load_tool_requests("train")
    good = [{"id": r.id, "messages": [*request_messages(r), {"role": "assistant", "content": NO_CALL}]}
            for r in train if not r.gold]
    assert L.no_tool_example_problems(good, evaluation) == []
    leaked = good + [{"messages": [*request_messages(r), {"role": "assistant", "content": NO_CALL}]}
                     for r in evaluation if not r.gold][:1]
    assert any("evaluation set" in p for p in L.no_tool_example_problems(leaked, evaluation))
    bare = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "[]"}]}] * 12
    problems = L.no_tool_example_problems(bare, evaluation)
    assert problems and all("system, a user and an assistant" in p for p in problems)
    wrong_answer = [{**ex, "messages": [*ex["messages"][:2], {"role": "assistant", "content": "[]"}]} for ex in good]
    assert any("exactly" in p for p in L.no_tool_example_problems(wrong_answer, evaluation))
    assert "at least 10" in L.no_tool_example_problems(good[:3], evaluation)[0]
    assert L.no_tool_example_problems("nope", evaluation)
    assert L.no_call_flags([NO_CALL, " <tool_call>[ ]</tool_call> ", "[]", broken(train[0])]) == [True, True, False, False]


# =========================================================================== the graders of solutions/03
def _stand_in_training(monkeypatch, good_second_run=True):
    """train_lora and generate_batch stand-ins: the first adapter calls on everything, the second
    answers [] where no tool fits (or, with good_second_run=False, never changes)."""
    by_text = {r.request: r for r in load_tool_requests()}

    def fake_train(model, tok, train, val=None, *, settings=None, adapter_name="default", init_from=None, **kw):
        assert all(ex["messages"][-1]["role"] == "assistant" for ex in train)
        model = model if isinstance(model, types.SimpleNamespace) else types.SimpleNamespace(adapters=[])
        model.adapters.append(adapter_name)
        return types.SimpleNamespace(model=model)

    def fake_generate(model, tok, prompts, **kw):
        out = []
        for chat in prompts:
            r = by_text[chat[-1]["content"]]
            last = model.adapters[-1]
            if r.gold:
                out.append(r.expected)
            elif last.endswith("calls_only") or not good_second_run:
                out.append(broken(r))
            else:
                out.append(NO_CALL)
        return out

    monkeypatch.setattr("ftcourse.lora.train_lora", fake_train)
    monkeypatch.setattr("ftcourse.chat.generate_batch", fake_generate)
    monkeypatch.setattr("ftcourse.models.load_model", lambda *a, **k: (None, None))


def _grade(nb) -> dict[str, BaseException | None]:
    """Run every code cell of ``nb`` in one namespace; return each grader's exception (None: passed)."""
    ns: dict = {"__name__": "__main__"}
    outcome = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            exec(compile(cell.source, f"cell {cell.id}", "exec"), ns)  # noqa: S102 - our own notebook
            error = None
        except Exception as exc:  # a learner's cell that raises is part of the run
            error = exc
        meta = cell.metadata.get("grader")
        if meta:
            outcome[meta["id"]] = error
    return outcome


def test_graders_pass_on_the_solution_and_fail_on_the_exercise(monkeypatch):
    _stand_in_training(monkeypatch)
    solution = nbformat.read(SOLUTION, as_version=4)
    passed = _grade(solution)
    assert set(passed) == {"ex03-tool-schema", "ex03-dispatcher", "ex03-ast-match", "ex03-no-tool-examples"}
    assert all(e is None for e in passed.values()), passed
    failed = _grade(make_exercise(solution, SOLUTION.name))
    assert all(e is not None for e in failed.values()), failed


def test_training_grader_fails_when_the_irrelevance_does_not_fall(monkeypatch):
    _stand_in_training(monkeypatch, good_second_run=False)
    outcome = _grade(nbformat.read(SOLUTION, as_version=4))
    assert isinstance(outcome["ex03-no-tool-examples"], CheckFailed)
    assert "beyond the noise" in str(outcome["ex03-no-tool-examples"])


def _dispatch_from_solution():
    nb = nbformat.read(SOLUTION, as_version=4)
    source = next(c.source for c in nb.cells if "def dispatch(" in c.source)
    ns: dict = {"json": json}  # the setup cell imports json
    exec(source, ns)  # noqa: S102 - our own notebook cell
    return ns["dispatch"]


def test_check_dispatcher_catches_each_shortcut():
    dispatch = _dispatch_from_solution()
    check_dispatcher(dispatch)

    def lenient(answer, tools, customer_id):  # finds the block anywhere, trusts the model's customer id
        if not isinstance(answer, str) or "<tool_call>" not in answer or "</tool_call>" not in answer:
            return ("refused", "no block")
        body = answer.split("<tool_call>")[1].split("</tool_call>")[0]
        try:
            calls = json.loads(body)
        except ValueError:
            return ("refused", "not JSON")
        if calls == []:
            return ("no_call", None)
        function, schema, side_effect = tools[calls[0]["name"]]
        return ("needs_confirmation", None) if side_effect else ("ok", function(**calls[0]["arguments"]))

    def runs_actions(answer, tools, customer_id):
        status, value = dispatch(answer, tools, customer_id)
        if status == "needs_confirmation":
            call = json.loads(answer.strip()[len("<tool_call>"):-len("</tool_call>")])[0]
            return ("ok", tools[call["name"]][0](**call["arguments"]))
        return status, value

    def silent(answer, tools, customer_id):
        status, value = dispatch(answer, tools, customer_id)
        return (status, "") if status == "refused" else (status, value)

    for shortcut in (lenient, runs_actions, silent):
        with pytest.raises(CheckFailed):
            check_dispatcher(shortcut)

    def not_written(answer, tools, customer_id):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not written yet"):
        check_dispatcher(not_written)


def test_dispatch_cases_are_what_the_exercise_says():
    good, bad = L.dispatch_cases()
    assert len(good) == 6 and len(bad) == 35
    assert len({what for what, _ in bad}) == len(bad)
