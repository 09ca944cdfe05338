"""Write an SQLite file a learner opens (the back office, the facts database) all at once or not at all."""

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
