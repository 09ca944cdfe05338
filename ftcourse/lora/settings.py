"""The settings of one LoRA run, shared by the adapter (``adapters.add_lora``) and the loop
(``train.train_lora``), so that neither of the two has to import the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class LoraSettings:
    """Everything that decides a LoRA run. ``train_lora(..., r=16)`` overrides one field."""

    r: int = 8  # rank of the update B @ A added to each targeted weight
    alpha: int = 16  # the update is scaled by alpha / r
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    learning_rate: float = 5e-3
    batch_size: int | None = None  # None: default_batch_size(device)
    max_steps: int = 60
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    eval_every: int = 4  # steps between validation checks
    check_at_start: bool = False  # also check before the first step (the curve then starts at the base model)
    target: float | None = 0.95  # stop once the validation metric reaches this (None: never)
    max_seconds: float | None = None  # also stop once training time passes this
    system: str | bool | None = False  # system turn for examples without one (False: none at all)
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
