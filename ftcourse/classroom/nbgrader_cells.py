"""nbgrader's cell metadata, derived from the course's own markers, so nbgrader can use the notebooks as they are.

The course marks its notebooks its own way (:mod:`ftcourse.classroom.cell_markers`): grader cells
carry ``metadata.grader = {"id", "points"}`` and the tag ``grader``; solutions sit between
``### BEGIN SOLUTION`` and ``### END SOLUTION``. nbgrader reads ``metadata.nbgrader`` instead
(schema version 3). :func:`annotate` writes that next to the course's markers, one role per cell:

================================  ===========================  ==================================
course cell                       nbgrader role                ``metadata.nbgrader``
================================  ===========================  ==================================
grader cell                       autograder tests             grade, locked, points, grade_id = grader id
code cell with a solution region  autograded answer            solution, grade_id = cell id
markdown cell with a region       manually graded answer       grade, solution, points 0, grade_id = cell id
any other cell                    read-only                    locked, grade_id = cell id
================================  ===========================  ==================================

nbgrader refuses a markdown solution cell that is not also graded, and the course scores written
answers nowhere, so they are worth 0 points: nbgrader's totals stay equal to ``make grade``'s, and
the instructor reads the answers in nbgrader's formgrader.

:func:`add_checksums` adds what ``nbgrader generate_assignment`` adds to the student version
(``checksum`` and ``cell_type``), with nbgrader's own recipe (:func:`nbgrader_checksum`), so the
generated exercises carry the same ``metadata.nbgrader`` as nbgrader's release notebook.
``tests/test_nbgrader.py`` checks that against nbgrader itself. Nothing here imports nbgrader: the
course works without it.

``python -m ftcourse.classroom.nbgrader_cells EXERCISE NOTEBOOK...`` gives notebooks that learners
started from an exercise without this metadata the exercise's ``metadata.nbgrader``, cell by cell
(:func:`adopt`), and changes nothing else.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import sys
from pathlib import Path

from ..errors import CourseError
from ..sqlite_files import write_text_atomically
from .cell_markers import BEGIN, ExerciseError, grader_meta, is_grader
from .tamper import normalise

KEY = "nbgrader"
SCHEMA_VERSION = 3
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # nbgrader's pattern for grade_id (it also allows "")
WRITTEN_ANSWER_POINTS = 0  # markdown answers: nbgrader needs points, the course scores them nowhere

__all__ = ["KEY", "SCHEMA_VERSION", "WRITTEN_ANSWER_POINTS", "role", "cell_metadata", "annotate",
           "nbgrader_checksum", "add_checksums", "adopt", "main"]


def _has_solution(cell) -> bool:
    return any(line.strip() == BEGIN for line in cell.get("source", "").split("\n"))


def role(cell) -> str:
    """The nbgrader role of a cell: ``tests``, ``answer``, ``written answer`` or ``read-only``."""
    if is_grader(cell):
        return "tests"
    if _has_solution(cell):
        return "answer" if cell.get("cell_type") == "code" else "written answer"
    return "read-only"


def cell_metadata(cell, where: str = "cell") -> dict:
    """``metadata.nbgrader`` for one cell of a solution notebook (the cell needs an id)."""
    kind = role(cell)
    if kind == "tests":
        meta = grader_meta(cell) or {}
        gid, points = meta.get("id"), meta.get("points")
        if not isinstance(gid, str) or isinstance(points, bool) or not isinstance(points, int | float):
            raise ExerciseError(f"{where}: a grader cell needs metadata.grader = {{'id': str, 'points': number}}")
    else:
        gid, points = cell.get("id"), WRITTEN_ANSWER_POINTS
        if not gid:
            raise ExerciseError(f"{where}: the cell has no id; run `make exercises`, which gives every cell one")
    if not GRADE_ID.match(gid):
        raise ExerciseError(f"{where}: {gid!r} cannot be an nbgrader grade_id (only letters, digits, '-' and '_')")
    out = {"schema_version": SCHEMA_VERSION, "grade_id": gid, "grade": kind in ("tests", "written answer"),
           "solution": kind in ("answer", "written answer"), "locked": kind in ("tests", "read-only")}
    if out["grade"]:
        out["points"] = points
    return out


def annotate(nb, where: str = "notebook"):
    """A copy of solution notebook ``nb`` with ``metadata.nbgrader`` on every cell (stale values replaced).

    Every cell needs an id; grade ids must be unique within the notebook (nbgrader matches cells by them).
    """
    nb = copy.deepcopy(nb)
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell_metadata(cell, where=f"{where}, cell {i}")
        gid = meta["grade_id"]
        if gid in seen:
            raise ExerciseError(f"{where}, cell {i}: nbgrader grade_id {gid!r} is also cell {seen[gid]}'s "
                                "(a grader id equal to another cell's id?); rename the grader id")
        seen[gid] = i
        cell.metadata[KEY] = meta
    return nb


def nbgrader_checksum(cell) -> str:
    """nbgrader's checksum of a cell that carries ``metadata.nbgrader`` (``nbgrader.utils.compute_checksum``)."""
    meta = cell.metadata[KEY]
    solution, grade = bool(meta.get("solution")), bool(meta.get("grade"))
    locked = False if solution else (True if grade else bool(meta.get("locked")))
    h = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        h.update(part.encode("utf-8"))
    if grade:
        h.update(str(float(meta["points"])).encode("utf-8"))
    return h.hexdigest()


def add_checksums(nb) -> None:
    """Add ``checksum`` and ``cell_type`` to every nbgrader cell of a student notebook, as nbgrader does."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get(KEY)
        if meta and (meta.get("grade") or meta.get("solution") or meta.get("locked")):
            meta["checksum"] = nbgrader_checksum(cell)
            meta["cell_type"] = cell.cell_type


def _grader_id(cell) -> str | None:
    meta = grader_meta(cell) if is_grader(cell) else None
    return meta.get("id") if meta else None


def adopt(exercise, notebook) -> int:
    """Copy ``metadata.nbgrader`` from ``exercise`` onto the matching cells of a learner's ``notebook``.

    A grader cell matches the exercise's grader of the same grader id; any other cell matches the
    exercise's cell of the same cell id (JupyterLab keeps ids) and type, if that one is no grader, and,
    for a read-only cell, only while its source is as the exercise has it. Nothing but
    ``metadata.nbgrader`` changes. Returns how many cells got it.
    """
    tagged = [c for c in exercise.cells if KEY in c.get("metadata", {})]
    by_grader = {gid: c for c in tagged if (gid := _grader_id(c))}
    by_id = {c.get("id"): c for c in tagged if c.get("id") and not _grader_id(c)}
    n = 0
    for cell in notebook.cells:
        gid = _grader_id(cell)
        src = by_grader.get(gid) if gid else by_id.get(cell.get("id"))
        if src is None or src.cell_type != cell.cell_type:
            continue
        meta = src.metadata[KEY]
        read_only = meta.get("locked") and not (meta.get("grade") or meta.get("solution"))
        if read_only and normalise(src.source) != normalise(cell.source):
            continue
        cell.metadata[KEY] = copy.deepcopy(meta)
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    import nbformat

    p = argparse.ArgumentParser(prog="python -m ftcourse.classroom.nbgrader_cells",
                                description="Give learners' notebooks the nbgrader metadata of their exercise.")
    p.add_argument("exercise", type=Path, help="the exercise notebook, e.g. exercises/00_warmup.ipynb")
    p.add_argument("notebooks", type=Path, nargs="+", help="learners' copies of it (rewritten in place)")
    args = p.parse_args(argv)
    try:
        exercise = nbformat.read(args.exercise, as_version=4)
        if not any(KEY in c.metadata for c in exercise.cells):
            raise CourseError(f"{args.exercise} has no nbgrader metadata; run `make exercises` first")
        for path in args.notebooks:
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
            n = adopt(exercise, nb)
            write_text_atomically(path, nbformat.writes(nb, version=4) + "\n")
            print(f"{path}: {n} of {len(nb.cells)} cells matched {args.exercise.name}")
    except (CourseError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
