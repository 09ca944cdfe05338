"""LoRA parameter counting on a tiny random model (no training, no download)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from ftcourse.models import state_dict_hash  # noqa: E402
from ftcourse.weights import count_lora_parameters, lora_parameters_by_formula  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_peft_count_matches_the_formula(tiny):
    size = count_lora_parameters(tiny, r=8)
    # q_proj: 32 -> 32, v_proj: 32 -> 16 (2 kv heads of 8), 2 layers
    expected = 2 * (8 * (32 + 32) + 8 * (32 + 16))
    assert size.adapter_params == expected == lora_parameters_by_formula(tiny, r=8)
    assert size.adapted_matrices == 4 and size.decoder_layers == 2  # q_proj and v_proj in each of 2 layers
    assert "4 matrices in 2 layers" in size.table()[1]["what"]
    assert size.base_params == sum(p.numel() for p in tiny.parameters())
    assert 0 < size.fraction < 1
    assert size.adapter_mb == pytest.approx(expected * 4 / 1e6)


def test_rank_and_targets_scale_the_adapter(tiny):
    r4 = count_lora_parameters(tiny, r=4).adapter_params
    r8 = count_lora_parameters(tiny, r=8).adapter_params
    assert r8 == 2 * r4
    more = count_lora_parameters(tiny, r=8, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    assert more.adapter_params > r8
    assert more.adapter_params == lora_parameters_by_formula(tiny, 8, ("q_proj", "k_proj", "v_proj", "o_proj"))


def test_counting_leaves_the_model_untouched(tiny):
    before = state_dict_hash(tiny)
    names = [n for n, _ in tiny.named_modules()]
    count_lora_parameters(tiny)
    assert state_dict_hash(tiny) == before
    assert [n for n, _ in tiny.named_modules()] == names
    assert not any("lora" in n for n in names)


def test_table_rows(tiny):
    rows = count_lora_parameters(tiny).table()
    assert [r["what"].split()[0] for r in rows] == ["base", "LoRA"]
    assert rows[0]["share"] == "100 %"
