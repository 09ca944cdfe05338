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


# --------------------------------------------------------------------------- rates with their noise
Z95 = 1.959963984540054  # the normal quantile for a two-sided 95 % interval


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a rate of ``successes`` out of ``n`` (95 % by default).

    Unlike "p +- 1.96 sd" it stays inside [0, 1] and is honest at 0 % and 100 %, which small eval
    sets hit often. With ``n == 0`` nothing is known: the interval is the whole of [0, 1].
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"a rate needs 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return min(low, p), max(high, p)  # never exclude the observed rate (rounding at 0 % and 100 %)


@dataclass(frozen=True)
class Rate:
    """A share with its n and its 95 % Wilson interval: ``Rate.of(12, 60)`` prints as ``20 % (12/60; 95 % CI 12-32 %)``."""

    successes: int
    n: int

    @classmethod
    def of(cls, successes, n: int) -> Rate:
        return cls(int(successes), int(n))

    @classmethod
    def from_flags(cls, flags) -> Rate:
        flags = [bool(f) for f in flags]
        return cls(sum(flags), len(flags))

    @property
    def value(self) -> float:
        return self.successes / self.n if self.n else float("nan")

    @property
    def low(self) -> float:
        return wilson_interval(self.successes, self.n)[0]

    @property
    def high(self) -> float:
        return wilson_interval(self.successes, self.n)[1]

    def beats(self, other: Rate) -> bool:
        """True when this rate is above ``other`` beyond the noise: the two 95 % intervals do not overlap.

        Conservative on purpose (non-overlap of two 95 % intervals is stricter than a 5 % test), so a
        lesson's claim that rests on it does not flip with one case.
        """
        return self.low > other.high

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        return (f"{self.value:.0%} ({self.successes}/{self.n}; "
                f"95 % CI {self.low:.0%}-{self.high:.0%})")


def beats_paired(a_flags, b_flags, alpha: float = 0.05) -> bool:
    """A exact sign test (McNemar) on paired outcomes: does A win on significantly more cases than B?

    ``a_flags[i]`` and ``b_flags[i]`` say whether A and B got case i right. Only the cases where they
    disagree count; one-sided, at level ``alpha``.
    """
    from math import comb

    a_flags, b_flags = list(a_flags), list(b_flags)
    if len(a_flags) != len(b_flags):
        raise ValueError(f"paired outcomes need the same cases: {len(a_flags)} against {len(b_flags)}")
    a_only = sum(1 for a, b in zip(a_flags, b_flags, strict=True) if a and not b)
    b_only = sum(1 for a, b in zip(a_flags, b_flags, strict=True) if b and not a)
    n = a_only + b_only
    if n == 0:
        return False
    p_value = sum(comb(n, k) for k in range(a_only, n + 1)) / 2 ** n
    return p_value < alpha


def significantly_above(a: Rate, b: Rate, alpha: float = 0.05) -> bool:
    """One-sided two-proportion z-test: is rate ``a`` above rate ``b`` at level ``alpha``?

    For two *independent* samples (two sampling runs, two models on fresh draws). For the same cases
    scored twice, ``beats_paired`` uses the pairing and is the better test.
    """
    from math import erf, sqrt

    if a.n == 0 or b.n == 0:
        return False
    pooled = (a.successes + b.successes) / (a.n + b.n)
    spread = sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
    if spread == 0:
        return a.value > b.value
    z = (a.value - b.value) / spread
    p_value = 0.5 * (1 - erf(z / sqrt(2)))
    return p_value < alpha
