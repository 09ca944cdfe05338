"""Time and peak memory of a block of code, for the "stats" lines of the lessons."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class Stats:
    label: str
    seconds: float = 0.0
    peak_rss_gb: float = 0.0
    peak_gpu_gb: float | None = None

    def __str__(self) -> str:
        gpu = f", peak GPU memory {self.peak_gpu_gb:.2f} GB" if self.peak_gpu_gb is not None else ""
        return f"{self.label}: {self.seconds:.1f} s, peak RSS {self.peak_rss_gb:.2f} GB{gpu}"


@contextmanager
def measure(label: str, verbose: bool = True):
    """``with measure("load model") as s: ...`` then ``s.seconds``, ``s.peak_rss_gb``."""
    import torch

    stats = Stats(label)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        yield stats
    finally:
        if cuda:
            torch.cuda.synchronize()
            stats.peak_gpu_gb = torch.cuda.max_memory_allocated() / 1e9
        stats.seconds = time.perf_counter() - t0
        stats.peak_rss_gb = peak_rss_bytes() / 1e9
        if verbose:
            print(stats)
