"""The adapter itself: put it on a model, count what it trains, save it, load it, merge it.

* ``add_lora``: a fresh LoRA adapter on a model (the base weights frozen), or one more named adapter
  on a model that has some; ``copy_adapter_weights`` starts one adapter from another's weights.
* ``trainable_parameters``: what trains against what there is.
* ``save_adapter`` / ``load_adapter`` / ``merge_adapter``: the adapter as a small file, put back on
  the base model, and folded into the base weights.
* ``folder_bytes`` / ``model_bytes``: the sizes lesson 04 compares (adapter file against full model).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch

from ..errors import CourseError
from .settings import LoraSettings


def add_lora(model, settings: LoraSettings | None = None, adapter_name: str = "default"):
    """Wrap ``model`` with a fresh LoRA adapter (or add one more to a model that has some).

    The base weights are frozen; only the adapter's A and B matrices train. A model that already
    carries adapters gets a new named one, made active, so one copy of the base model serves them all.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    s = settings or LoraSettings()
    if not adapter_name or "." in adapter_name:
        raise CourseError(f"Adapter name {adapter_name!r} cannot be used: pick a non-empty name without dots, "
                          "such as 'format_v2'.")
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                        target_modules=list(s.target_modules), task_type="CAUSAL_LM", bias="none")
    torch.manual_seed(s.seed)  # A is initialised at random: same seed, same adapter
    with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        if isinstance(model, PeftModel):
            if adapter_name in model.peft_config:
                raise CourseError(f"The model already has an adapter named {adapter_name!r}; pick another name.")
            model.add_adapter(adapter_name, config)
            model.set_adapter(adapter_name)
        else:
            model = get_peft_model(model, config, adapter_name=adapter_name)
    for name, p in model.named_parameters():  # only the new adapter learns
        p.requires_grad = f".{adapter_name}." in name and "lora_" in name
    return model


def copy_adapter_weights(model, source: str, target: str) -> None:
    """Start adapter ``target`` from the weights of adapter ``source`` (same rank and modules)."""
    if source not in getattr(model, "peft_config", {}):
        raise CourseError(f"The model has no adapter named {source!r} to start from; "
                          f"it has {sorted(getattr(model, 'peft_config', {}))}.")
    params = dict(model.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, p in params.items():
            if f".{source}." in name and "lora_" in name:
                other = params.get(name.replace(f".{source}.", f".{target}."))
                if other is None or other.shape != p.shape:
                    raise CourseError(f"Adapters {source!r} and {target!r} differ in shape ({name}); "
                                      "start from an adapter with the same rank and target modules.")
                other.copy_(p)
                copied += 1
    if not copied:
        raise CourseError(f"Adapter {source!r} has no LoRA weights to copy.")


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- adapters on disk
def folder_bytes(path: str | Path) -> int:
    """Size of a file, or of every file in a folder (recursively), in bytes."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def model_bytes(model, exclude: str | None = None) -> int:
    """Bytes of the model's weights in memory (what a full checkpoint of it would hold).

    ``exclude``: skip tensors whose name contains it (``"lora_"`` counts the base model only).
    """
    seen, total = set(), 0
    named = list(model.named_parameters()) + list(model.named_buffers())
    for name, t in named:
        if exclude and exclude in name:
            continue
        if t.data_ptr() in seen:  # tied weights (embedding = output head) count once
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def save_adapter(model, path: str | Path) -> Path:
    """Save only the active adapter (its config and LoRA weights, as safetensors) into ``path``.

    Returns the folder that holds ``adapter_config.json``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    active = getattr(model, "active_adapter", None)
    kwargs = {"selected_adapters": [active]} if isinstance(active, str) else {}
    model.save_pretrained(str(path), safe_serialization=True, **kwargs)
    return _adapter_dir(path)


def _adapter_dir(path: Path) -> Path:
    """The folder holding adapter_config.json (peft puts non-default adapters in a subfolder)."""
    if (path / "adapter_config.json").is_file():
        return path
    found = sorted(path.rglob("adapter_config.json")) if path.is_dir() else []
    if not found:
        raise CourseError(f"No adapter_config.json under {path}; save an adapter there with save_adapter.")
    return found[0].parent


def load_adapter(model, path: str | Path, adapter_name: str = "default"):
    """Put a saved adapter on ``model`` and make it the active one, ready for generation.

    ``model`` is either the plain base model (it gets wrapped) or a model that already carries
    adapters (the saved one is added next to them, under ``adapter_name``).
    """
    from peft import PeftModel

    path = _adapter_dir(Path(path))
    if isinstance(model, PeftModel):
        model.load_adapter(str(path), adapter_name=adapter_name, is_trainable=False)
        model.set_adapter(adapter_name)
    else:
        model = PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name, is_trainable=False)
    return model.eval()


def merge_adapter(model, keep_original: bool = False):
    """Fold the active adapter into the base weights (W + B @ A * alpha / r) and drop the LoRA layers.

    The result is a plain transformers model: no peft needed to serve it, and no extra matmuls.
    ``keep_original=True`` merges a deep copy and leaves ``model`` as it was (costs one more copy;
    to compare merged and unmerged outputs without a copy, use peft's ``model.merge_adapter()`` and
    ``model.unmerge_adapter()``).
    """
    target = copy.deepcopy(model) if keep_original else model
    return target.merge_and_unload().eval()
