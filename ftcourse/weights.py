"""How big is a LoRA adapter next to the model it adapts? Counted, not trained.

``count_lora_parameters(model)`` asks peft itself: it builds an empty copy of the model's
architecture on the ``meta`` device (shapes only, no memory, no weights), wraps it with
``get_peft_model`` and counts the trainable parameters. The model you pass in is never touched.
``lora_parameters_by_formula`` gives the same number from the shapes alone, ``r * (in + out)`` for
every adapted linear layer, so you can see where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TARGETS = ("q_proj", "v_proj")


@dataclass(frozen=True)
class AdapterSize:
    """Parameter counts of a base model and of a LoRA adapter for it."""

    r: int
    target_modules: tuple[str, ...]
    base_params: int
    adapter_params: int
    adapted_matrices: int  # weight matrices that got an A and a B (targets x decoder layers)
    decoder_layers: int = 0  # transformer blocks in the model
    bytes_per_param: int = 4

    @property
    def fraction(self) -> float:
        """The adapter's size as a share of the base model's parameters."""
        return self.adapter_params / self.base_params

    @property
    def base_mb(self) -> float:
        return self.base_params * self.bytes_per_param / 1e6

    @property
    def adapter_mb(self) -> float:
        return self.adapter_params * self.bytes_per_param / 1e6

    def table(self) -> list[dict]:
        """Two rows for display: the base model and the adapter."""
        return [
            {"what": "base model (frozen)", "parameters": f"{self.base_params:,}", "size (MB)": f"{self.base_mb:.1f}",
             "share": "100 %"},
            {"what": f"LoRA adapter (r={self.r}, {'+'.join(self.target_modules)}: {self.adapted_matrices} matrices "
                     f"in {self.decoder_layers} layers)",
             "parameters": f"{self.adapter_params:,}", "size (MB)": f"{self.adapter_mb:.1f}",
             "share": f"{100 * self.fraction:.2f} %"},
        ]


def _base_param_count(model) -> int:
    # parameters() yields tied tensors once, so the shared embedding / lm_head is not counted twice
    return sum(p.numel() for p in model.parameters())


def count_lora_parameters(model, r: int = 8, target_modules=DEFAULT_TARGETS, lora_alpha: int = 16) -> AdapterSize:
    """Count the trainable parameters peft's ``get_peft_model`` adds; ``model`` stays untouched."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model.config)
    config = LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=list(target_modules), lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    wrapped = get_peft_model(skeleton, config)
    trainable, _total = wrapped.get_nb_trainable_parameters()
    adapted = sum(1 for name, _ in wrapped.named_modules() if name.endswith(".lora_A"))
    dtype = next(model.parameters()).dtype
    return AdapterSize(r=r, target_modules=tuple(target_modules), base_params=_base_param_count(model),
                       adapter_params=trainable, adapted_matrices=adapted,
                       decoder_layers=int(getattr(model.config, "num_hidden_layers", 0) or 0),
                       bytes_per_param=torch.empty((), dtype=dtype).element_size())


def lora_parameters_by_formula(model, r: int = 8, target_modules=DEFAULT_TARGETS) -> int:
    """``r * (in_features + out_features)`` summed over every linear layer whose name ends in a target."""
    import torch

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in target_modules:
            total += r * (module.in_features + module.out_features)
    return total


__all__ = ["AdapterSize", "count_lora_parameters", "lora_parameters_by_formula", "DEFAULT_TARGETS"]
