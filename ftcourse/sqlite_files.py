"""Write files a learner opens (the back office and facts databases, progress, records) all at once or not at all."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_sqlite_atomically(path: str | Path, fill: Callable[[sqlite3.Connection], None]) -> Path:
    """Build a database with ``fill(conn)`` in a temporary file next to ``path``, then rename it over
    ``path``: a reader sees the old file or the whole new one, never half of one. If ``fill`` raises,
    the temporary file is removed and ``path`` is untouched. Returns the resolved path."""
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)  # an empty file: SQLite starts a new database in it
    try:
        conn = sqlite3.connect(tmp)
        try:
            fill(conn)
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` via a synced temporary file and ``os.replace``: a reader sees the
    old file or the whole new one. The temporary file is removed if anything fails. Returns ``path``."""
    import contextlib

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
