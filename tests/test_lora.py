"""ftcourse.lora on a tiny random Llama: masking, padding, learning, adapters on disk, merging."""

from __future__ import annotations

import json

import pytest
import torch

from ftcourse import lora
from ftcourse.chat import generate_batch
from ftcourse.errors import CourseError

SYSTEM = "You triage Tillwise support tickets."


def _example(ticket: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ticket},
                         {"role": "assistant", "content": answer}]}


EXAMPLES = [
    _example("The card reader is dead and we cannot take cards.", '{"category": "hardware", "urgency": "urgent"}'),
    _example("I was charged twice this month.", '{"category": "billing", "urgency": "high"}'),
    _example("How do I add a discount button?", '{"category": "how_to", "urgency": "low"}'),
    _example("Please add dark mode.", '{"category": "feature_request", "urgency": "low"}'),
    _example("Stock counts are wrong after the import, we fix them by hand for now.",
             '{"category": "inventory", "urgency": "normal"}'),
    _example("Staff cannot log in, two-factor codes never arrive.", '{"category": "account", "urgency": "high"}'),
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ftcourse.models import fetch_model

    tok = AutoTokenizer.from_pretrained(fetch_model(verbose=False))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_model(tokenizer, seed: int = 0):
    """A tiny random Llama (hidden 32, 2 layers) with the course tokenizer's vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


# --------------------------------------------------------------------------- masking
def test_labels_cover_exactly_the_answer_and_its_end_token(tokenizer):
    enc = lora.encode_example(tokenizer, EXAMPLES[0])
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels)
    learned = [i for i, lab in zip(ids, labels, strict=True) if lab != lora.IGNORE]
    assert tokenizer.decode(learned) == '{"category": "hardware", "urgency": "urgent"}<|im_end|>'
    # masked positions are one block at the start: the whole prompt, ending with the assistant header
    first = next(i for i, lab in enumerate(labels) if lab != lora.IGNORE)
    assert all(lab == lora.IGNORE for lab in labels[:first])
    assert all(lab == tok for lab, tok in zip(labels[first:], ids[first:], strict=True))
    assert tokenizer.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert "You triage Tillwise" in tokenizer.decode(ids[:first])


def test_prompt_part_matches_what_generation_sees(tokenizer):
    from ftcourse.chat import render

    ex = EXAMPLES[1]
    enc = lora.encode_example(tokenizer, ex)
    first = next(i for i, lab in enumerate(enc["labels"]) if lab != lora.IGNORE)
    served = tokenizer(render(tokenizer, ex["messages"][:-1], system=False), add_special_tokens=False).input_ids
    assert enc["input_ids"][:first] == served


def test_system_false_drops_the_default_system_turn(tokenizer):
    plain = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
    short = lora.encode_example(tokenizer, plain, system=False)
    default = lora.encode_example(tokenizer, plain, system=None)
    assert len(default["input_ids"]) - len(short["input_ids"]) >= 15
    assert "SmolLM" in tokenizer.decode(default["input_ids"]) and "SmolLM" not in tokenizer.decode(short["input_ids"])


def test_an_example_must_end_with_an_answer(tokenizer):
    with pytest.raises(CourseError):
        lora.encode_example(tokenizer, [{"role": "user", "content": "hi"}])
    with pytest.raises(CourseError):
        lora.messages_of(42)


def test_token_stats(tokenizer):
    enc = lora.encode_examples(tokenizer, EXAMPLES)
    stats = lora.token_stats(enc)
    assert stats["examples"] == len(EXAMPLES)
    assert 0 < stats["answer_share"] < 1
    assert stats["mean_answer_tokens"] < stats["mean_tokens"]


# --------------------------------------------------------------------------- padding
def test_collate_pads_to_the_longest_in_the_batch(tokenizer):
    enc = lora.encode_examples(tokenizer, EXAMPLES[:3])
    lengths = [len(e["input_ids"]) for e in enc]
    batch = lora.collate(enc, tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert (batch["labels"][row, n:] == lora.IGNORE).all()
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["input_ids"][row, :n].tolist() == enc[row]["input_ids"]
    fixed = lora.collate(enc, tokenizer.pad_token_id, pad_to=128)
    assert fixed["input_ids"].shape == (3, 128)


def test_padding_does_not_change_the_loss(tokenizer):
    model = tiny_model(tokenizer)
    enc = lora.encode_examples(tokenizer, EXAMPLES[:2])
    tight = lora.collate(enc, tokenizer.pad_token_id)
    loose = lora.collate(enc, tokenizer.pad_token_id, pad_to=tight["input_ids"].shape[1] + 17)
    with torch.no_grad():
        a, b = lora.answer_loss(model, tight), lora.answer_loss(model, loose)
    assert torch.allclose(a, b, atol=1e-5)


def test_answer_loss_equals_the_library_loss(tokenizer):
    model = tiny_model(tokenizer)
    batch = lora.collate(lora.encode_examples(tokenizer, EXAMPLES), tokenizer.pad_token_id)
    with torch.no_grad():
        ours = lora.answer_loss(model, batch)
        theirs = model(**batch).loss
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_batch_stream_covers_every_example_each_epoch():
    stream = lora.batch_stream(10, 4, seed=1)
    epoch = [i for _ in range(3) for i in next(stream)]
    assert sorted(epoch) == list(range(10))
    again = lora.batch_stream(10, 4, seed=1)
    assert [next(again) for _ in range(3)] != [] and next(lora.batch_stream(10, 4, seed=1)) == next(
        lora.batch_stream(10, 4, seed=1))


# --------------------------------------------------------------------------- training
def test_a_few_steps_reduce_the_loss(tokenizer):
    model = tiny_model(tokenizer)
    before = lora.dataset_loss(model, lora.encode_examples(tokenizer, EXAMPLES), tokenizer.pad_token_id)
    result = lora.train_lora(model, tokenizer, EXAMPLES, EXAMPLES, max_steps=12, batch_size=6, r=4,
                             learning_rate=1e-2, eval_every=6, progress=False, plot=False,
                             target_modules=("q_proj", "v_proj", "o_proj", "up_proj", "down_proj"))
    after = lora.dataset_loss(result.model, lora.encode_examples(tokenizer, EXAMPLES), tokenizer.pad_token_id)
    assert after < before - 0.05
    assert result.n_steps == 12 and len(result.evals) == 2
    assert result.evals[-1]["val_loss"] == pytest.approx(after, rel=1e-4)
    assert result.train_seconds > 0 and result.trained_tokens > 0
    trainable, total = lora.trainable_parameters(result.model)
    assert 0 < trainable < total / 10


def test_only_the_adapter_trains(tokenizer):
    model = tiny_model(tokenizer)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    result = lora.train_lora(model, tokenizer, EXAMPLES, max_steps=3, batch_size=3, learning_rate=1e-2,
                             progress=False, plot=False)
    for name, p in result.model.named_parameters():
        if "lora_" not in name:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, frozen[key]), name


def test_early_stopping_on_the_metric(tokenizer):
    model = tiny_model(tokenizer)
    calls = []

    def metric(m):
        calls.append(1)
        return 0.5 * len(calls)  # 0.5 at the first check, 1.0 at the second

    result = lora.train_lora(model, tokenizer, EXAMPLES, metric=metric, target=0.95, max_steps=50,
                             eval_every=2, batch_size=2, progress=False, plot=False)
    assert result.reached_step == 4 and result.n_steps == 4 and result.stopped_early
    assert result.curve() == ([2, 4], [0.5, 1.0])
    assert result.seconds_to_target == result.evals[-1]["train_s"]


def test_no_target_runs_every_step(tokenizer):
    result = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, metric=lambda m: 1.0, target=None,
                             max_steps=4, eval_every=2, batch_size=2, progress=False, plot=False)
    assert result.n_steps == 4 and result.reached_step is None and not result.stopped_early


def test_a_second_adapter_on_the_same_base(tokenizer):
    first = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, max_steps=2, batch_size=3,
                            progress=False, plot=False)
    second = lora.train_lora(first.model, tokenizer, EXAMPLES, max_steps=2, batch_size=3, progress=False,
                             plot=False, adapter_name="mix")
    assert second.model is first.model
    assert set(second.model.peft_config) == {"default", "mix"}
    with pytest.raises(CourseError):
        lora.add_lora(second.model, adapter_name="mix")


# --------------------------------------------------------------------------- adapters
def _trained(tokenizer):
    model = tiny_model(tokenizer)
    return lora.train_lora(model, tokenizer, EXAMPLES, max_steps=4, batch_size=3, learning_rate=2e-2,
                           progress=False, plot=False).model


def test_adapter_save_and_load_round_trip(tokenizer, tmp_path):
    trained = _trained(tokenizer)
    path = lora.save_adapter(trained, tmp_path / "adapter")
    assert (path / "adapter_config.json").is_file()
    size = lora.folder_bytes(path)
    assert 0 < size < lora.model_bytes(tiny_model(tokenizer)) / 5
    loaded = lora.load_adapter(tiny_model(tokenizer), path)  # same seed: same frozen base weights
    batch = lora.collate(lora.encode_examples(tokenizer, EXAMPLES), tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(trained(**batch).logits, loaded(**batch).logits, atol=1e-6)
    plain = tiny_model(tokenizer)
    with torch.no_grad():
        assert not torch.allclose(plain(**batch).logits, loaded(**batch).logits, atol=1e-4)


def test_load_adapter_needs_a_saved_adapter(tokenizer, tmp_path):
    with pytest.raises(CourseError):
        lora.load_adapter(tiny_model(tokenizer), tmp_path)


def test_merged_equals_unmerged(tokenizer):
    trained = _trained(tokenizer)
    prompts = [ex["messages"][:-1] for ex in EXAMPLES]
    batch = lora.collate(lora.encode_examples(tokenizer, EXAMPLES), tokenizer.pad_token_id)
    with torch.no_grad():
        before = trained(**batch).logits
    unmerged = generate_batch(trained, tokenizer, prompts, max_new_tokens=6, progress=False)
    merged = lora.merge_adapter(trained, keep_original=True)
    assert not hasattr(merged, "peft_config") or not getattr(merged, "peft_config", None)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        assert torch.allclose(before, merged(**batch).logits, atol=1e-5)
    assert generate_batch(merged, tokenizer, prompts, max_new_tokens=6, progress=False) == unmerged
    with torch.no_grad():  # keep_original left the adapter model untouched
        assert torch.allclose(before, trained(**batch).logits, atol=1e-6)


# --------------------------------------------------------------------------- helpers
def test_mix_examples_hits_the_share():
    task = list(range(30))
    extra = [f"g{i}" for i in range(4)]
    mixed = lora.mix_examples(task, extra, share=0.25, seed=0)
    n_extra = sum(isinstance(x, str) for x in mixed)
    assert n_extra == 10 and len(mixed) == 40
    assert mixed == lora.mix_examples(task, extra, share=0.25, seed=0)
    assert mixed != task + [x for x in mixed if isinstance(x, str)]  # shuffled
    assert lora.mix_examples(task, [], share=0.0) != [] and len(lora.mix_examples(task, [], share=0.0)) == 30
    with pytest.raises(CourseError):
        lora.mix_examples(task, [], share=0.2)
    with pytest.raises(CourseError):
        lora.mix_examples(task, extra, share=1.0)


def test_default_batch_size_by_device():
    assert lora.default_batch_size("cpu") == 4
    assert lora.default_batch_size("cuda") > lora.default_batch_size("cpu")
    assert lora.default_batch_size(torch.device("cpu")) == 4


def test_live_plot_is_a_no_op_outside_a_notebook():
    assert not lora.in_notebook()
    plot = lora.LiveLossPlot()
    assert not plot.enabled
    plot.update([{"step": 1, "loss": 1.0}], [], force=True)  # must not raise or draw


def test_plot_training_draws_both_panels(tokenizer):
    import matplotlib

    matplotlib.use("Agg")
    result = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, EXAMPLES, metric=lambda m: 0.5,
                             max_steps=2, eval_every=1, batch_size=3, progress=False, plot=False)
    fig = lora.plot_training(result, title="tiny")
    loss_ax, metric_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(metric_ax.lines) >= 1


def test_a_saved_named_adapter_loads_next_to_the_original(tokenizer, tmp_path):
    first = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, max_steps=3, batch_size=3,
                            learning_rate=2e-2, progress=False, plot=False, adapter_name="format")
    model = first.model
    path = lora.save_adapter(model, tmp_path / "saved")
    assert path.name == "format" and (path / "adapter_config.json").is_file()
    batch = lora.collate(lora.encode_examples(tokenizer, EXAMPLES), tokenizer.pad_token_id)
    with torch.no_grad():
        trained_logits = model(**batch).logits
    lora.load_adapter(model, tmp_path / "saved", adapter_name="loaded")
    assert model.active_adapter == "loaded" and set(model.peft_config) == {"format", "loaded"}
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, trained_logits, atol=1e-6)
        model.merge_adapter()  # in place, reversible: same outputs as the side path
        assert torch.allclose(model(**batch).logits, trained_logits, atol=1e-5)
        model.unmerge_adapter()
        with model.disable_adapter():
            assert not torch.allclose(model(**batch).logits, trained_logits, atol=1e-4)


def test_check_at_start_puts_the_base_model_on_the_curve(tokenizer):
    scores = iter([0.0, 0.4, 1.0])
    result = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, metric=lambda m: next(scores),
                             check_at_start=True, target=0.95, max_steps=10, eval_every=2, batch_size=3,
                             progress=False, plot=False)
    assert result.curve() == ([0, 2, 4], [0.0, 0.4, 1.0])
    assert result.reached_step == 4 and result.evals[0]["train_s"] == 0.0


def test_max_seconds_stops_the_run(tokenizer):
    result = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, max_steps=1000, max_seconds=0.0,
                             batch_size=3, progress=False, plot=False)
    assert result.n_steps == 1 and result.reached_step is None


# --------------------------------------------------------------------------- lab measurements
def test_ticket_format_leak_counts_ticket_shaped_answers(monkeypatch):
    import ftcourse.chat

    answers = ['{"category": "how_to", "urgency": "low"}', "Ottawa is the capital of Canada.",
               'Sure: {"category": "billing", "urgency": "high"}', "168 hours."]
    seen = {}

    def fake_generate_batch(model, tok, prompts, **kw):
        seen["prompts"], seen["system"] = prompts, kw.get("system")
        return answers

    monkeypatch.setattr(ftcourse.chat, "generate_batch", fake_generate_batch)
    probe = [{"id": "p1", "messages": [{"role": "user", "content": "q"}]}, "plain question",
             [{"role": "user", "content": "q3"}, {"role": "assistant", "content": "drop me"}],
             {"messages": [{"role": "user", "content": "q4"}]}]
    report = lora.ticket_format_leak(None, None, probe)
    assert report.leaked == [0, 2] and report.rate == 0.5
    assert seen["prompts"][2] == [{"role": "user", "content": "q3"}] and seen["system"] is False
    assert "2/4" in str(report)


def test_by_temperature_summarises_seeds():
    rows = [{"temperature": 0.0, "seed": 0, "compliance": 1.0, "n": 10},
            {"temperature": 1.0, "seed": 0, "compliance": 0.5, "n": 10},
            {"temperature": 1.0, "seed": 1, "compliance": 0.7, "n": 10}]
    summary = lora.by_temperature(rows)
    assert {k: summary[0.0][k] for k in ("mean", "min", "max", "runs")} == {"mean": 1.0, "min": 1.0, "max": 1.0,
                                                                             "runs": 1}
    assert summary[1.0]["mean"] == pytest.approx(0.6) and summary[1.0]["runs"] == 2
    pooled = summary[1.0]["rate"]  # every sampled answer counts once: 12 of 20
    assert (pooled.successes, pooled.n) == (12, 20) and pooled.low < 0.6 < pooled.high


def test_ticket_metric_records_both_numbers_at_every_check(tokenizer):
    from ftcourse.datasets import load_tickets

    metric = lora.ticket_metric(tokenizer, load_tickets("val")[:2], key="accuracy", max_new_tokens=4)
    value = metric(tiny_model(tokenizer))
    assert metric.last["accuracy"] == value and set(metric.last) == {"compliance", "accuracy", "n"}
    with pytest.raises(Exception, match="compliance"):
        lora.ticket_metric(tokenizer, [], key="loss")


def test_facts_training_for_swaps_in_the_new_sheet():
    from ftcourse.datasets import Fact

    rows = [{"id": "e1", "fact_id": "price_pro", "messages": [
        {"role": "user", "content": "Pro price?"}, {"role": "assistant", "content": "It costs $49."}]}]
    new = [Fact(id="price_pro", topic="Pro", note="It costs $55.", answer="$55", keywords=["55"])]
    out = lora.facts_training_for(rows, new)
    assert out[0]["messages"][-1]["content"] == "It costs $55."
    assert rows[0]["messages"][-1]["content"] == "It costs $49."  # the input is left alone
    with pytest.raises(CourseError):
        lora.facts_training_for([{**rows[0], "fact_id": "gone"}], new)


def test_stale_answers_flags_the_old_value_only():
    from ftcourse.datasets import Fact, FactQuestion

    old = [Fact("price_pro", "Pro", "$49", "$49", ["49"]), Fact("fee", "Fee", "2.6%", "2.6%", ["2.6"])]
    new = [Fact("price_pro", "Pro", "$55", "$55", ["55"]), Fact("fee", "Fee", "2.6%", "2.6%", ["2.6"])]
    qs = [FactQuestion("q1", "price_pro", "trained", "?"), FactQuestion("q2", "price_pro", "paraphrase", "?"),
          FactQuestion("q3", "fee", "trained", "?"), FactQuestion("q4", None, "untaught", "?")]
    flags = lora.stale_answers(["It is $49.", "It is $55.", "2.6%", "no idea"], qs, old, new)
    assert flags == [True, False]  # only the two questions about the changed fact are scored


def test_tokens_per_epoch_counts_padding(tokenizer):
    enc = lora.encode_examples(tokenizer, EXAMPLES)
    real = sum(len(e["input_ids"]) for e in enc)
    tight = lora.tokens_per_epoch(enc, batch_size=2)
    assert real <= tight < lora.tokens_per_epoch(enc, batch_size=2, pad_to=256) == 256 * len(EXAMPLES)
    assert lora.tokens_per_epoch(enc, batch_size=1) == real  # one example a batch: no padding at all


def test_flops_per_token(tokenizer):
    model = lora.add_lora(tiny_model(tokenizer))
    flops = lora.flops_per_token(model, tokenizer, EXAMPLES[:3])
    assert 0 < flops["forward"] < flops["train_step"]
    assert all(p.grad is None for p in model.parameters())


def test_compliance_checker_cases_cover_both_verdicts():
    from ftcourse.evals import check_ticket_format

    cases = lora.compliance_checker_cases()
    verdicts = [check_ticket_format(c).ok for c in cases]
    assert len(set(cases)) == len(cases) and 3 <= sum(verdicts) < len(cases) - 10


def test_plot_temperature_sweep_one_panel_per_metric():
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"temperature": t, "seed": 0, "compliance": 0.5, "shape": 1.0} for t in (0.0, 1.0)]
    fig = lora.plot_temperature_sweep({"a": rows, "b": rows})
    assert len(fig.axes) == 2 and all(len(ax.lines) >= 2 for ax in fig.axes)


def test_continue_from_trains_the_same_adapter_further(tokenizer):
    first = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, EXAMPLES, metric=lambda m: 1.0,
                            target=0.95, max_steps=10, eval_every=2, batch_size=3, learning_rate=1e-2,
                            progress=False, plot=False, adapter_name="fmt")
    assert first.reached_step == 2 and first.n_steps == 2
    weights = {n: p.detach().clone() for n, p in first.model.named_parameters() if "lora_" in n}
    more = lora.train_lora(None, tokenizer, EXAMPLES, EXAMPLES, metric=lambda m: 1.0, continue_from=first,
                           max_steps=4, eval_every=2, progress=False, plot=False)
    assert more.model is first.model and more.adapter_name == "fmt" and set(more.model.peft_config) == {"fmt"}
    assert [s["step"] for s in more.steps] == [1, 2, 3, 4, 5, 6]   # 4 extra steps, the target does not stop them
    assert [e["step"] for e in more.evals] == [2, 4, 6] and more.reached_step == 2
    assert more.train_seconds > first.train_seconds and more.trained_tokens > first.trained_tokens
    changed = [n for n, p in more.model.named_parameters() if "lora_" in n and not torch.equal(p, weights[n])]
    assert changed


def test_compliance_by_temperature_draws_every_sample_in_one_call(monkeypatch):
    import ftcourse.chat
    from ftcourse.datasets import load_tickets

    tickets = load_tickets("test")[:3]
    good = '{"category": "%s", "urgency": "%s"}'
    calls = []

    def fake(model, tok, prompts, temperature=0.0, seed=0, batch_size=None, **kw):
        calls.append((len(prompts), temperature, seed, batch_size))
        # sample j of ticket i is row i * n_samples + j; make every second row (sample 1) break the format
        n = len(prompts) // len(tickets)
        return [good % (tickets[i // n].category, tickets[i // n].urgency) if i % n == 0 else "Sure! here"
                for i in range(len(prompts))]

    monkeypatch.setattr(ftcourse.chat, "generate_batch", fake)
    rows = lora.compliance_by_temperature(None, None, tickets, temperatures=(0.0, 0.7), seeds=(5, 6))
    # greedy once; both samples of 0.7 in one generate_batch call, whose token budget sets the batches
    assert calls == [(3, 0.0, 5, None), (6, 0.7, 5, None)]
    assert [(r["temperature"], r["seed"], r["compliance"], r["accuracy"]) for r in rows] == [
        (0.0, 5, 1.0, 1.0), (0.7, 5, 1.0, 1.0), (0.7, 6, 0.0, 0.0)]


def test_the_last_step_is_always_checked_with_the_progress_bar_on(tokenizer):
    """A budget that is not a multiple of eval_every still ends with a check (the bar must not hide it)."""
    result = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, metric=lambda m: 0.0, target=0.9,
                             max_steps=5, eval_every=4, batch_size=3, progress=True, plot=False)
    assert [e["step"] for e in result.evals] == [4, 5] and result.reached_step is None


def test_a_continuation_counts_checks_from_its_own_first_step(tokenizer):
    """``eval_every=N`` on a continuation of N steps checks once, at its end (not at a multiple of N
    that happens to fall inside it)."""
    first = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, metric=lambda m: 0.5, target=None,
                            max_steps=2, eval_every=2, batch_size=3, progress=False, plot=False)
    more = lora.train_lora(None, tokenizer, EXAMPLES, metric=lambda m: 0.5, continue_from=first, max_steps=4,
                           eval_every=4, progress=False, plot=False)
    assert [e["step"] for e in more.evals] == [2, 6]
    assert "target" not in more.summary()  # no target was set, so none is "not reached"


def test_init_from_starts_a_new_adapter_from_another(tokenizer):
    first = lora.train_lora(tiny_model(tokenizer), tokenizer, EXAMPLES, max_steps=3, batch_size=3,
                            learning_rate=2e-2, progress=False, plot=False, adapter_name="old")
    model = first.model
    old = {n: p.detach().clone() for n, p in model.named_parameters() if ".old." in n}
    lora.add_lora(model, adapter_name="copy")
    lora.copy_adapter_weights(model, "old", "copy")
    copied = {n.replace(".copy.", ".old."): p for n, p in model.named_parameters() if ".copy." in n}
    assert copied.keys() == old.keys() and all(torch.equal(copied[n], old[n]) for n in old)
    # a step at learning rate 0 changes nothing, so "new" must still hold exactly the weights of "old"
    lora.train_lora(model, tokenizer, EXAMPLES, max_steps=1, batch_size=3, learning_rate=0.0,
                    progress=False, plot=False, adapter_name="new", init_from="old")
    new = {n.replace(".new.", ".old."): p for n, p in model.named_parameters() if ".new." in n}
    assert new.keys() == old.keys() and all(torch.equal(new[n], old[n]) for n in old)
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in new.items())  # and they are not a fresh (zero) B
    with pytest.raises(CourseError, match="no adapter named 'nope'"):
        lora.train_lora(model, tokenizer, EXAMPLES, max_steps=1, progress=False, plot=False,
                        adapter_name="other", init_from="nope")


def test_adapter_names_with_dots_are_refused_clearly(tokenizer):
    with pytest.raises(CourseError, match="without dots"):
        lora.add_lora(tiny_model(tokenizer), adapter_name="mix0.002")


def test_compliance_by_temperature_reuses_greedy_answers(monkeypatch):
    import ftcourse.chat
    from ftcourse.datasets import load_tickets

    tickets = load_tickets("test")[:2]
    calls = []

    def fake(model, tok, prompts, temperature=0.0, **kw):
        calls.append(temperature)
        return ["no"] * len(prompts)

    monkeypatch.setattr(ftcourse.chat, "generate_batch", fake)
    greedy = [json.dumps({"category": t.category, "urgency": t.urgency}) for t in tickets]
    rows = lora.compliance_by_temperature(None, None, tickets, temperatures=(0.0, 1.0), seeds=(0, 1), greedy=greedy)
    assert calls == [1.0]  # temperature 0 was not generated again
    assert [(r["temperature"], r["compliance"]) for r in rows] == [(0.0, 1.0), (1.0, 0.0), (1.0, 0.0)]
    with pytest.raises(CourseError, match="2 tickets"):
        lora.compliance_by_temperature(None, None, tickets, greedy=greedy[:1])
