"""How a solution notebook marks its cells: solution regions and grader cells.

A solution region is the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, each marker a
line of its own. A grader cell is a code cell tagged ``grader`` whose ``metadata.grader`` holds
``{"id": ..., "points": ...}``.

These conventions are shared by exercise generation (:mod:`ftcourse.classroom.exercises`), the
tamper scan (:mod:`ftcourse.classroom.tamper`) and workshop grading (:mod:`ftcourse.classroom.grading`);
this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CourseError

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
GRADER_TAG = "grader"


class ExerciseError(CourseError):
    """A solution notebook breaks the exercise conventions; the message says where."""


@dataclass(frozen=True)
class Grader:
    id: str
    points: float
    cell_index: int
    source: str


def is_grader(cell) -> bool:
    return cell.get("cell_type") == "code" and GRADER_TAG in cell.get("metadata", {}).get("tags", [])


def grader_meta(cell) -> dict | None:
    meta = cell.get("metadata", {}).get("grader")
    return meta if isinstance(meta, dict) else None


def new_grader_cell(source: str, gid: str, points: float = 1):
    """A grader cell: a code cell tagged ``grader`` with ``metadata.grader = {"id": gid, "points": points}``."""
    from nbformat.v4 import new_code_cell

    cell = new_code_cell(source)
    cell.metadata["tags"] = [GRADER_TAG]
    cell.metadata["grader"] = {"id": gid, "points": points}
    return cell


def graders(nb, where: str = "notebook") -> list[Grader]:
    """The grader cells of ``nb``, checked: each has a string id (unique) and positive points."""
    found: list[Grader] = []
    for i, cell in enumerate(nb.cells):
        if not is_grader(cell):
            continue
        meta = grader_meta(cell) or {}
        gid, points = meta.get("id"), meta.get("points")
        if not isinstance(gid, str) or not gid.strip():
            raise ExerciseError(f"{where}, cell {i}: a grader cell needs metadata.grader.id (a string)")
        if isinstance(points, bool) or not isinstance(points, int | float) or points <= 0:
            raise ExerciseError(f"{where}, cell {i} ({gid}): metadata.grader.points must be a positive number")
        if any(g.id == gid for g in found):
            raise ExerciseError(f"{where}, cell {i}: grader id {gid!r} is used twice")
        found.append(Grader(gid, points, i, cell.source))
    return found
