"""The environment check of lesson 00: one OK/FAIL row per requirement.

Paste its output into a bug report: it says what is installed, where the model is and which device
the course will use.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass

# (minimum that works, version the course is tested with)
REQUIREMENTS = {
    "torch": ("2.4", "2.13.0"),
    "transformers": ("4.56", "5.23.0"),
    "peft": ("0.13", "0.21.2"),
    "ipywidgets": ("8.0", "8.1.9"),
}


@dataclass
class Row:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'OK' if self.ok else 'FAIL':>4}] {self.name:<13} {self.detail}"


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def check_package(name: str, minimum: str, tested: str) -> Row:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising something else
        return Row(name, False, f"not importable ({exc.__class__.__name__}); run: make lab")
    version = getattr(module, "__version__", "?")
    if _version_tuple(version) < _version_tuple(minimum):
        return Row(name, False, f"{version} is too old (need >= {minimum}); run: make lab")
    note = "" if version.split("+")[0] == tested else f" (course tested with {tested})"
    return Row(name, True, f"{version}{note}")


def check_python() -> Row:
    v = sys.version_info
    ok = v >= (3, 10)
    note = "" if (v.major, v.minor) == (3, 11) else " (course tested with 3.11)"
    detail = f"{platform.python_version()}{note}" if ok else f"{platform.python_version()}: need 3.10 or newer"
    return Row("Python", ok, detail)


def check_device() -> Row:
    try:
        import os

        from ..device import choose_device

        return Row("device", True, str(choose_device(os.environ.get("COURSE_DEVICE") or None)))
    except Exception as exc:
        return Row("device", False, str(exc))


def check_model_cache() -> Row:
    from ..models import DEFAULT_MODEL, cache_status, resolve_model_name

    chosen = resolve_model_name()
    if chosen != DEFAULT_MODEL:
        return Row("model", True, f"COURSE_MODEL={chosen} (loaded from the hub or that folder, not the cache)")
    ok, msg = cache_status()
    return Row("model cache", ok, msg)


def environment_check(load: bool = False, verbose: bool = True) -> list[Row]:
    """Run every check, print one row each, return the rows. ``load=True`` also loads the model."""
    rows = [check_python()]
    rows += [check_package(name, *versions) for name, versions in REQUIREMENTS.items()]
    rows += [check_device(), check_model_cache()]
    if verbose:
        for row in rows:
            print(row)
    if load:
        from ..models import load_model
        from ..stats import measure

        with measure("load model", verbose=verbose):
            load_model(verbose=verbose)
    return rows
