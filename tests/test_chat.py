"""ftcourse.chat: prompt rendering, token counting, batched generation, determinism."""

from __future__ import annotations

import pytest
import torch

from ftcourse import chat


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ftcourse.models import fetch_model

    tok = AutoTokenizer.from_pretrained(fetch_model(verbose=False))
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    """A tiny random Llama with the course tokenizer's vocabulary: fast, and fully deterministic."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_render_system_choices(tokenizer):
    default = chat.render(tokenizer, "hi")
    assert default.startswith("<|im_start|>system\n") and default.endswith("<|im_start|>assistant\n")
    none = chat.render(tokenizer, "hi", system=False)
    assert none == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    custom = chat.render(tokenizer, "hi", system="Be brief.")
    assert "Be brief." in custom and "SmolLM" not in custom
    # an explicit system message in the prompt wins over the system argument
    msgs = [{"role": "system", "content": "X"}, {"role": "user", "content": "hi"}]
    assert chat.render(tokenizer, msgs, system=False).startswith("<|im_start|>system\nX")
    assert chat.render(tokenizer, "plain text", raw=True) == "plain text"
    with pytest.raises(TypeError):
        chat.render(tokenizer, msgs, raw=True)


def test_count_tokens_counts_the_template(tokenizer):
    bare = chat.count_tokens(tokenizer, "hi", system=False)
    with_default = chat.count_tokens(tokenizer, "hi")
    assert 5 <= bare < with_default
    assert 15 <= with_default - bare <= 30  # the default SmolLM2 system turn
    assert chat.count_tokens(tokenizer, "hello world", raw=True) == 2


def test_batch_keeps_the_order_and_matches_single_calls(tiny_model, tokenizer):
    prompts = ["a", "a much longer prompt with many more words in it", "mid length prompt", "b"]
    batch = chat.generate_batch(tiny_model, tokenizer, prompts, max_new_tokens=5, batch_size=2, progress=False)
    singles = [chat.generate(tiny_model, tokenizer, p, max_new_tokens=5) for p in prompts]
    assert len(batch) == 4
    assert batch == singles


def test_greedy_is_deterministic_and_sampling_follows_the_seed(tiny_model, tokenizer):
    def run(**kw):
        return chat.generate(tiny_model, tokenizer, "Hello there", max_new_tokens=12, **kw)

    assert run() == run()
    assert run(temperature=1.0, seed=1) == run(temperature=1.0, seed=1)
    samples = {run(temperature=1.5, seed=s) for s in range(5)}
    assert len(samples) > 1  # sampling with different seeds does vary


@pytest.mark.model
def test_real_model_is_deterministic(course_model):
    model, tok = course_model
    q = "Name one thing a point-of-sale system does. One sentence."
    first = chat.generate(model, tok, q, max_new_tokens=24)
    assert first and first == chat.generate(model, tok, q, max_new_tokens=24)
    batch = chat.generate_batch(model, tok, [q, "What is 2 + 2?"], max_new_tokens=24, progress=False)
    assert len(batch) == 2 and all(batch)


def test_shared_prefix_length():
    assert chat._shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    # every prompt keeps at least one token of its own, even when one is a prefix of another
    assert chat._shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert chat._shared_prefix([[7], [7]]) == 0


@pytest.fixture(scope="module")
def sensitive_model(tokenizer):
    """Tiny, but initialised with larger weights so that its answers depend on the whole prompt
    (with the default 0.02 a tiny random model says the same thing whatever it reads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=0.2, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_shared_prefix_cache_gives_the_same_answers(sensitive_model, tokenizer, monkeypatch):
    """A long common system prompt is run once and its cache reused: same outputs, fewer tokens read."""
    tiny_model = sensitive_model
    system = "You triage support tickets for a software company. " * 12  # well over 64 tokens
    prompts = ["printer offline", "refund for a double charge on my card please", "x", "login loop after update"]
    calls = []
    real = chat._prefix_cache
    monkeypatch.setattr(chat, "_prefix_cache", lambda m, ids: calls.append(len(ids)) or real(m, ids))
    shared = chat.generate_batch(tiny_model, tokenizer, prompts, max_new_tokens=6, batch_size=3,
                                 system=system, progress=False)
    assert len(calls) == 1 and calls[0] >= chat.MIN_SHARED_PREFIX
    plain = chat.generate_batch(tiny_model, tokenizer, prompts, max_new_tokens=6, batch_size=3,
                                system=system, progress=False, share_prefix=False)
    singles = [chat.generate(tiny_model, tokenizer, p, max_new_tokens=6, system=system) for p in prompts]
    assert len(calls) == 1  # share_prefix=False and single calls do not take the shared path
    assert len(set(singles)) == len(prompts)  # the model does read the prompts, so padding mistakes show
    assert shared == plain == singles


def test_stop_when_ends_each_row_early(sensitive_model, tokenizer):
    prompts = ["printer offline", "refund please", "x"]
    full = chat.generate_batch(sensitive_model, tokenizer, prompts, max_new_tokens=8, progress=False)
    cut = chat.generate_batch(sensitive_model, tokenizer, prompts, max_new_tokens=8, progress=False,
                              stop_when=lambda text: len(text.strip()) > 0)
    for f, c in zip(full, cut, strict=True):
        assert c and f.startswith(c) and len(c) < len(f)  # the same answer, cut after its first word piece


def test_plan_batches_fills_a_token_budget_in_near_equal_batches():
    lengths = [50 + (i * 7) % 30 for i in range(60)]  # 60 short prompts
    batches = chat.plan_batches(lengths, max_new_tokens=24)
    assert sorted(i for b in batches for i in b) == list(range(60))
    assert len(batches) == 1  # short prompts: one wide batch is the fast way on a CPU
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # shortest first, so each batch pads little
    long = [640] * 60  # few-shot-sized prompts: the budget splits them
    batches = chat.plan_batches(long, max_new_tokens=24)
    sizes = [len(b) for b in batches]
    assert max(sizes) * (640 + 24) <= chat.TOKENS_PER_BATCH and max(sizes) - min(sizes) <= 1
    assert [len(b) for b in chat.plan_batches(lengths, 24, batch_size=16)] == [16, 16, 16, 12]  # fixed size kept
    assert len(chat.plan_batches(lengths, 24, device_type="cuda")) == 1
    assert chat.plan_batches([], 24) == []
