"""Pick where the model runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda", "mps" or "cpu"
    dtype: torch.dtype
    reason: str

    def __str__(self) -> str:
        return f"{self.device} ({str(self.dtype).removeprefix('torch.')}): {self.reason}"


def choose_device(
    prefer: str | None = None,
    *,
    cuda_available: bool | None = None,
    mps_available: bool | None = None,
    bf16_supported: bool | None = None,
) -> DeviceChoice:
    """Return the best device and the dtype the course uses on it.

    The keyword flags exist so tests can pretend to have any hardware; by default they are
    read from torch. ``prefer`` (or the ``COURSE_DEVICE`` variable, read by the caller) forces one.
    """
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if mps_available is None:
        mps_available = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if prefer:
        prefer = prefer.lower()
        if prefer not in {"cuda", "mps", "cpu"}:
            raise ValueError(f"COURSE_DEVICE must be cuda, mps or cpu, not {prefer!r}")
        if prefer == "cuda" and not cuda_available:
            raise ValueError("COURSE_DEVICE=cuda was asked for, but torch sees no CUDA GPU")
        if prefer == "mps" and not mps_available:
            raise ValueError("COURSE_DEVICE=mps was asked for, but torch sees no Apple MPS device")
    if prefer in (None, "cuda") and cuda_available:
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        if bf16_supported:
            return DeviceChoice("cuda", torch.bfloat16, "CUDA GPU found; it supports bfloat16")
        return DeviceChoice("cuda", torch.float32, "CUDA GPU found; no bfloat16 support, so float32")
    if prefer in (None, "mps") and mps_available:
        return DeviceChoice("mps", torch.float32, "no CUDA GPU; Apple MPS found")
    why = "asked for with COURSE_DEVICE=cpu" if prefer == "cpu" else "no CUDA GPU and no Apple MPS"
    return DeviceChoice("cpu", torch.float32, why)
