"""Numbers one lesson measures and a later lesson starts from (lesson 04's break-even inputs for lesson 05).

They are kept in ``measurements.json`` next to the progress file (``~/.ftcourse/`` unless
``FTCOURSE_PROGRESS`` points elsewhere), written atomically. A lesson that finds none falls back to
the figures of the course's reference run and says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..sqlite_files import write_text_atomically
from .progress import progress_path


def measurements_path() -> Path:
    return progress_path().with_name("measurements.json")


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_measurements(lesson: str, **values: float) -> Path:
    """Record ``values`` as lesson ``lesson``'s numbers (replacing its earlier ones)."""
    path = measurements_path()
    data = _read(path)
    data[str(lesson)] = {k: float(v) for k, v in values.items()}
    return write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def load_measurements(lesson: str, fallback: dict) -> tuple[dict, str]:
    """Lesson ``lesson``'s recorded numbers (missing keys from ``fallback``) and where they came from."""
    found = _read(measurements_path()).get(str(lesson))
    if not isinstance(found, dict) or not set(fallback) <= set(found):
        return dict(fallback), f"lesson {lesson} has not been run here: the reference run's figures"
    return {k: float(found[k]) for k in fallback}, f"measured when you ran lesson {lesson}"
