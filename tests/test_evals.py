"""ftcourse.evals: strict format checks, label metrics, fact grading, and the evaluation loops."""

from __future__ import annotations

import pytest
import torch

from ftcourse import evals
from ftcourse.datasets import Fact, FactQuestion, Ticket, load_tickets, ticket_json
from ftcourse.evals import (
    abstains,
    category_accuracy,
    check_ticket_format,
    fact_is_correct,
    format_compliance,
    label_accuracy,
    looks_like_ticket_json,
    parse_ticket,
    score_outputs,
)

GOOD = '{"category": "billing", "urgency": "high"}'


@pytest.mark.parametrize("text, expected", [
    (GOOD, (True, True, True)),
    ("  " + GOOD + "\n", (True, True, True)),  # surrounding whitespace is fine
    ('{"category":"payments","urgency":"urgent"}', (True, True, True)),  # compact spacing is fine
    ("Sure! " + GOOD, (False, False, False)),  # chatter before the JSON
    (GOOD + " Hope this helps.", (False, False, False)),  # chatter after it
    ("```json\n" + GOOD + "\n```", (False, False, False)),  # code fences
    ('{"category": "billing"}', (True, False, False)),  # a key missing
    ('{"urgency": "high", "category": "billing"}', (True, False, False)),  # wrong key order
    ('{"category": "billing", "urgency": "high", "reason": "x"}', (True, False, False)),  # extra key
    ('{"category": "billing", "urgency": 3}', (True, False, False)),  # not a string
    ('{"category": "refunds", "urgency": "high"}', (True, True, False)),  # not a taxonomy label
    ('{"category": "Billing", "urgency": "high"}', (True, True, False)),  # labels are case-sensitive
    ('{"category": "billing", "urgency": "high", "urgency": "low"}', (False, False, False)),  # repeated key
    ('["billing", "high"]', (False, False, False)),
    ("", (False, False, False)),
    ("category: billing, urgency: high", (False, False, False)),
])
def test_check_ticket_format(text, expected):
    check = check_ticket_format(text)
    assert (check.valid_json, check.exact_schema, check.allowed_labels) == expected
    assert check.ok == all(expected)
    assert (check.problem == "") == check.ok


def test_parse_ticket_is_strict():
    assert parse_ticket(GOOD) == {"category": "billing", "urgency": "high"}
    assert parse_ticket('{"category": "nonsense", "urgency": "high"}') == {"category": "nonsense", "urgency": "high"}
    assert parse_ticket("The answer is " + GOOD) is None
    assert parse_ticket('{"urgency": "high", "category": "billing"}') is None
    assert parse_ticket(None) is None


def _tickets(*labels):
    return [Ticket(id=f"x{i}", text="t", category=c, urgency=u) for i, (c, u) in enumerate(labels)]


def test_metrics_count_unparseable_answers_as_wrong():
    tickets = _tickets(("billing", "high"), ("hardware", "urgent"), ("how_to", "low"), ("account", "normal"))
    outputs = [
        GOOD,                                              # both right
        '{"category": "hardware", "urgency": "high"}',     # category right, urgency wrong
        'Sure: {"category": "how_to", "urgency": "low"}',  # right labels but not compliant
        '{"category": "inventory", "urgency": "normal"}',  # urgency right only
    ]
    assert format_compliance(outputs) == 0.75
    assert label_accuracy(outputs, tickets) == 0.25
    assert category_accuracy(outputs, tickets) == 0.5
    s = score_outputs(outputs, tickets)
    assert s == {"n": 4, "compliance": 0.75, "accuracy": 0.25, "category_accuracy": 0.5, "urgency_accuracy": 0.5}
    # gold labels may also be given as dicts or gold JSON strings
    assert label_accuracy(outputs, [t.labels for t in tickets]) == 0.25
    assert label_accuracy(outputs, [t.expected for t in tickets]) == 0.25
    assert format_compliance([]) == 0.0
    with pytest.raises(evals.CourseError):
        label_accuracy(outputs, tickets[:2])


def test_gold_answers_score_perfectly():
    tickets = load_tickets("test")
    gold = [t.expected for t in tickets]
    assert format_compliance(gold) == 1.0
    assert label_accuracy(gold, tickets) == 1.0
    # a model that always answers the most common label gets far less
    constant = [ticket_json("how_to", "low")] * len(tickets)
    assert label_accuracy(constant, tickets) < 0.3


def test_format_failures_reasons():
    counts = evals.format_failures([GOOD, "hello", '{"category": "x", "urgency": "low"}', '{"a": 1}'])
    assert counts == {"not a JSON object": 1, "unknown label": 1, "wrong keys": 1}


def test_looks_like_ticket_json():
    assert looks_like_ticket_json(GOOD)
    assert looks_like_ticket_json('Here you go: {"category": "how_to", "urgency": "low"}')
    assert looks_like_ticket_json("{'category': 'how_to'}")
    assert not looks_like_ticket_json("Paris is the capital of France.")
    assert not looks_like_ticket_json("The category of this word is noun.")
    assert not looks_like_ticket_json('{"name": "Ada", "age": 36}')


FACT = Fact(id="price_pro", topic="Pro plan price", note="The Pro plan costs $49 per month.",
            answer="$49 per month", keywords=["49"])


@pytest.mark.parametrize("answer, ok", [
    ("The Pro plan costs $49 per month.", True),
    ("$49", True),
    ("It is 49 dollars.", True),
    ("$49.00 a month", True),
    ("The Pro plan costs $149 per month.", False),
    ("It costs $59.", False),
    ("$49.50", False),
    ("", False),
])
def test_fact_is_correct_matches_whole_numbers(answer, ok):
    assert fact_is_correct(answer, FACT) is ok


def test_fact_keywords_alternatives_and_thousands():
    fact = Fact(id="x", topic="t", note="n", answer="14 days", keywords=["14|fourteen", "days"])
    assert fact_is_correct("Fourteen DAYS after purchase", fact)
    assert fact_is_correct("within 14 days", fact)
    assert not fact_is_correct("within 14 weeks", fact)
    big = Fact(id="y", topic="t", note="n", answer="5,000", keywords=["5000"])
    assert fact_is_correct("up to 5,000 transactions", big)
    assert fact_is_correct("up to 5000 transactions", big)
    assert not fact_is_correct("up to 15,000", big)


def test_abstains():
    assert abstains("I don't know the answer to that.")
    assert abstains("I'm not sure; please contact Tillwise support.")
    assert not abstains("The Pro plan costs $49 per month.")


# --------------------------------------------------------------------------- loops, with a tiny model
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ftcourse.models import fetch_model

    tok = AutoTokenizer.from_pretrained(fetch_model(verbose=False))
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_evaluate_tickets_runs_every_rung(tiny_model, tokenizer):
    tickets = load_tickets("val")[:4]
    tokens = {}
    for rung in ("bare", "vague", "clear", "few_shot"):
        report = evals.evaluate_tickets(tiny_model, tokenizer, tickets, rung=rung, max_new_tokens=4, progress=False)
        assert len(report.outputs) == 4 and report.n == 4 and report.rung == rung
        assert report.compliance == 0.0  # a random model never writes the JSON
        assert report.latency_s > 0
        tokens[rung] = report.prompt_tokens
    # each rung of the ladder costs more prompt tokens than the one before
    assert tokens["bare"] < tokens["vague"] < tokens["clear"] < tokens["few_shot"]
    assert tokens["few_shot"] > 300


def test_evaluate_tickets_scores_what_the_model_says(monkeypatch, tokenizer):
    """Replace generation by a fake that answers the gold label for half the tickets."""
    tickets = load_tickets("val")[:6]
    seen = {}

    def fake_generate_batch(model, tok, prompts, **kwargs):
        seen["prompts"] = prompts
        return [t.expected if i % 2 == 0 else "I think this is about billing." for i, t in enumerate(tickets)]

    monkeypatch.setattr("ftcourse.chat.generate_batch", fake_generate_batch)
    report = evals.evaluate_tickets(None, tokenizer, tickets, prompts=lambda text: "Triage: " + text)
    assert report.compliance == 0.5 and report.accuracy == 0.5 and report.category_accuracy == 0.5
    assert seen["prompts"][0] == "Triage: " + tickets[0].text
    assert report.rung is None
    with pytest.raises(evals.CourseError):
        evals.evaluate_tickets(None, tokenizer, tickets, prompts=["only one"])


def test_evaluate_facts_grades_per_kind(monkeypatch):
    facts = [FACT]
    questions = [
        FactQuestion(id="q1", fact_id="price_pro", kind="trained", question="How much is Pro?"),
        FactQuestion(id="q2", fact_id="price_pro", kind="paraphrase", question="Pro price per month?"),
        FactQuestion(id="q3", fact_id=None, kind="untaught", question="Is there a student discount?"),
    ]
    answers = {"How much is Pro?": "$49 a month.", "Pro price per month?": "It is $39.",
               "Is there a student discount?": "I don't know, please check with Tillwise support."}
    seen = {}

    def fake_generate_batch(model, tok, prompts, **kwargs):
        seen["prompts"] = prompts
        return [answers[p if isinstance(p, str) else p[-1]["content"]] for p in prompts]

    monkeypatch.setattr("ftcourse.chat.generate_batch", fake_generate_batch)
    report = evals.evaluate_facts(None, None, questions, facts)
    assert report.correct == [True, False, True]
    assert report.per_kind == {"trained": 1.0, "paraphrase": 0.0, "untaught": 1.0}
    assert report.accuracy == pytest.approx(2 / 3)
    ctx = evals.evaluate_facts(None, None, questions, facts,
                               context_fn=lambda q: [{"role": "system", "content": "notes"},
                                                     {"role": "user", "content": q}])
    assert seen["prompts"][0][0]["content"] == "notes" and ctx.correct == report.correct


@pytest.mark.model
def test_real_model_ladder_examples_fix_the_format(course_model):
    """The base model ignores the format when only told about it, but copies it from examples."""
    model, tok = course_model
    tickets = load_tickets("val")[:6]
    bare = evals.evaluate_tickets(model, tok, tickets, rung="bare", progress=False)
    few = evals.evaluate_tickets(model, tok, tickets, rung="few_shot", progress=False)
    assert bare.compliance <= 0.2
    assert few.compliance >= 0.5 > bare.compliance
    assert few.prompt_tokens > 5 * bare.prompt_tokens


def test_cannot_be_ticket_json_only_gives_up_on_hopeless_answers():
    from ftcourse.evals import cannot_be_ticket_json

    for partial in ["", "  \n", "{", ' {"categ', '{"category": "billing", "urgency": "high"}']:
        assert not cannot_be_ticket_json(partial), partial
    for partial in ["Sure", "\nThe ticket", "[", '"category"']:
        assert cannot_be_ticket_json(partial), partial
        # and such an answer indeed fails whatever comes after it
        assert not check_ticket_format(partial + ' {"category": "billing", "urgency": "high"}').ok


def test_majority_baseline_reads_no_ticket():
    from ftcourse.datasets import load_tickets
    from ftcourse.evals import majority_baseline, majority_labels

    train, test = load_tickets("train"), load_tickets("test")
    top = majority_labels(train)
    report = majority_baseline(train, test)
    assert report.compliance == 1.0 and report.prompt_tokens == 0 and report.n == len(test)
    assert report.accuracy == sum(t.labels == top for t in test) / len(test)
    assert report.rate().n == len(test) and report.correct.count(True) == round(report.accuracy * len(test))
    # each field's own majority is at least as good as the pair's field
    assert report.category_accuracy >= sum(t.category == top["category"] for t in test) / len(test)
