"""Generate the exercise notebooks from the solution notebooks (one source, two notebooks).

``solutions/NN_name.ipynb`` are written by hand and solved. Everything between the markers ::

    ### BEGIN SOLUTION
    ...
    ### END SOLUTION

is the solution. ``python -m ftcourse.classroom.exercises`` (``make exercises``) writes
``exercises/NN_name.ipynb`` with each region replaced, at the marker's indentation, by ::

    # YOUR CODE HERE
    raise NotImplementedError()

(in a markdown cell: ``YOUR ANSWER HERE``). Outputs and execution counts are stripped; grader cells
(code cells tagged ``grader`` with ``metadata.grader = {"id": ..., "points": ...}``) are copied
unchanged.

It first writes nbgrader's cell metadata into the solution notebooks themselves
(:mod:`ftcourse.classroom.nbgrader_cells`: grader cells become autograder tests, solution cells
answers, every other cell read-only), so ``solutions/`` can serve as nbgrader's source folder; the
exercises inherit that metadata, with the checksums nbgrader's student version carries.

``--check`` writes nothing and exits 1 when a solution's nbgrader metadata is stale or the committed
exercises differ from what would be generated, which is how CI catches an exercise edited by hand
or a solution changed without regenerating.

This is a small preprocessor of our own (nbgrader's ``ClearSolutions``, ``ComputeChecksums`` and the
metadata its "Create Assignment" toolbar writes, with the same stubs and the same checksums) so the
course does not depend on nbgrader.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from pathlib import Path

from ..errors import CourseError
from ..sqlite_files import write_text_atomically
from .cell_markers import BEGIN, END, GRADER_TAG, ExerciseError, Grader, grader_meta, graders, is_grader
from .grading import CellRun, execute_notebook
from .nbgrader_cells import add_checksums, annotate

# the cell conventions live in cell_markers (grading and the tamper scan read them too); these names
# stay importable from here
__all__ = ["BEGIN", "END", "GRADER_TAG", "ExerciseError", "Grader", "grader_meta", "graders", "is_grader",
           "CODE_STUB", "MARKDOWN_STUB", "GENERATED_KEY", "clear_solutions", "prepare_solution", "make_exercise",
           "render_solution", "render_exercise", "generate", "audit_graders", "main"]

CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)
GENERATED_KEY = "ftcourse"


# --------------------------------------------------------------------------- cells
def clear_solutions(source: str, markdown: bool = False, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region in ``source``; return ``(new_source, regions_replaced)``."""
    stub = MARKDOWN_STUB if markdown else CODE_STUB
    out: list[str] = []
    inside_since: int | None = None
    regions = 0
    for n, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside_since is not None:
                raise ExerciseError(f"{where}, line {n}: {BEGIN} inside the region opened on line {inside_since}")
            inside_since = n
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
            regions += 1
        elif stripped == END:
            if inside_since is None:
                raise ExerciseError(f"{where}, line {n}: {END} without a {BEGIN} before it")
            inside_since = None
        elif "BEGIN SOLUTION" in line or "END SOLUTION" in line:
            raise ExerciseError(f"{where}, line {n}: a marker must be a line of its own, exactly "
                                f"'{BEGIN}' or '{END}' (found {stripped!r})")
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise ExerciseError(f"{where}: the {BEGIN} on line {inside_since} is never closed with {END}")
    return "\n".join(out), regions


def _ensure_ids(nb, name: str) -> None:
    """Give cells without an id a stable one (derived from the file name and position)."""
    for i, cell in enumerate(nb.cells):
        if not cell.get("id"):
            cell["id"] = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:8]
    nb.nbformat, nb.nbformat_minor = 4, max(nb.get("nbformat_minor", 5), 5)


def prepare_solution(solution, name: str = "notebook.ipynb"):
    """The solution notebook as ``make exercises`` keeps it: every cell with an id and nbgrader's metadata."""
    nb = copy.deepcopy(solution)
    _ensure_ids(nb, name)
    graders(nb, where=name)  # validate grader metadata
    return annotate(nb, where=name)


def make_exercise(solution, name: str = "notebook.ipynb"):
    """The exercise notebook for a solution notebook (a new NotebookNode; the input is unchanged).

    nbgrader metadata the solution carries (see :func:`prepare_solution`) is kept, with the checksums
    nbgrader's student version has.
    """
    nb = copy.deepcopy(solution)
    _ensure_ids(nb, name)
    graders(nb, where=name)  # validate grader metadata
    regions = 0
    for i, cell in enumerate(nb.cells):
        where = f"{name}, cell {i}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
            if is_grader(cell):
                if BEGIN in cell.source or END in cell.source:
                    raise ExerciseError(f"{where}: a grader cell must not contain solution markers")
                continue
            cell.source, n = clear_solutions(cell.source, where=where)
            regions += n
        elif cell.cell_type == "markdown":
            cell.source, n = clear_solutions(cell.source, markdown=True, where=where)
            regions += n
    if regions == 0:
        raise ExerciseError(f"{name}: no {BEGIN} region anywhere, so the exercise would equal the solution")
    add_checksums(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata[GENERATED_KEY] = {
        "generated_from": f"solutions/{name}",
        "note": "Generated by `make exercises` (python -m ftcourse.classroom.exercises). Edit the solution notebook instead.",
    }
    return nb


def _read(path: Path):
    import nbformat

    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _write(path: Path, text: str) -> None:
    """Write a course notebook atomically, keeping its file mode (a new one is rw-r--r--)."""
    mode = path.stat().st_mode & 0o777 if path.is_file() else 0o644
    write_text_atomically(path, text)
    path.chmod(mode)


def _text(nb) -> str:
    import nbformat

    return nbformat.writes(nb, version=4) + "\n"


def render_solution(solution_path: Path) -> str:
    """The exact text ``make exercises`` keeps in ``solution_path`` (its nbgrader metadata up to date)."""
    return _text(prepare_solution(_read(solution_path), name=solution_path.name))


def render_exercise(solution_path: Path) -> str:
    """The exact text of the exercise notebook generated from ``solution_path``."""
    solution = prepare_solution(_read(solution_path), name=solution_path.name)
    return _text(make_exercise(solution, name=solution_path.name))


# --------------------------------------------------------------------------- folders
def generate(solutions: Path | str = "solutions", exercises: Path | str = "exercises",
             check: bool = False, verbose: bool = True) -> list[str]:
    """Generate (or with ``check=True`` compare) every exercise; return the problems found.

    Solution notebooks get their nbgrader metadata (:func:`prepare_solution`) first. In write mode
    the problems are the files that changed; in check mode they are the files that are missing, out
    of date, or left over from a solution that no longer exists.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise ExerciseError(f"No folder {solutions}/ here: run this from the course's root folder.")
    log = print if verbose else (lambda *a: None)
    sources = sorted(solutions.glob("*.ipynb"))
    changes: list[str] = []

    def keep(path: Path, text: str, stale: str, wrote: str) -> None:
        """Make ``path`` hold ``text``; in check mode only report that it does not."""
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            return
        changes.append(f"{path} is missing" if old is None else stale)
        if check:
            log(changes[-1])
        else:
            _write(path, text)
            log(wrote)

    for src in sources:
        solution = prepare_solution(_read(src), name=src.name)
        keep(src, _text(solution), wrote=f"wrote nbgrader metadata into {src}",
             stale=f"{src} is not as `make exercises` keeps it (its nbgrader metadata or cell ids are out of date)")
        dst = exercises / src.name
        keep(dst, _text(make_exercise(solution, name=src.name)), stale=f"{dst} is out of date with {src}",
             wrote=f"wrote {dst}")
    wanted = {s.name for s in sources}
    for extra in sorted(exercises.glob("*.ipynb")) if exercises.is_dir() else []:
        if extra.name not in wanted:
            what = f"{extra} has no solution notebook {solutions / extra.name}"
            changes.append(what)
            if check:
                log(what)
            else:
                extra.unlink()
                log(f"removed {extra} (its solution notebook is gone)")
    if check:
        log(f"{len(sources)} exercise notebook(s): " + ("up to date" if not changes else
                                                           f"{len(changes)} problem(s); run `make exercises`"))
    else:
        log(f"{len(sources)} exercise notebook(s), {len(changes)} file(s) changed")
    return changes


def _grader_outcomes(nb, cwd: Path, cell_timeout: float, notebook_timeout: float) -> dict[str, str]:
    """Run ``nb`` and return ``{grader id: "" if it passed, else why not}``."""
    run = execute_notebook(nb, cwd, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
    out = {}
    for g in graders(nb):
        r = run.cells.get(g.cell_index) or CellRun(g.cell_index, "not run")
        out[g.id] = "" if r.status == "ok" else (run.stopped if r.status == "not run" else r.message) or r.status
    return out


def audit_graders(solution_path: Path | str, cell_timeout: float = 900, notebook_timeout: float = 3600) -> list[str]:
    """Problems with the grader cells of one solution notebook (empty list: all good).

    Runs the solution (every grader must pass) and the generated exercise (every grader must
    fail: a grader that passes on the unsolved exercise is *vacuous*, it checks nothing). Both run
    with the solution's folder as working directory.
    """
    solution_path = Path(solution_path)
    solution = _read(solution_path)
    exercise = make_exercise(solution, name=solution_path.name)
    problems = []
    for gid, why in _grader_outcomes(copy.deepcopy(solution), solution_path.parent, cell_timeout,
                                     notebook_timeout).items():
        if why:
            problems.append(f"{solution_path.name}: grader {gid} fails on the solution: {why.splitlines()[0]}")
    for gid, why in _grader_outcomes(exercise, solution_path.parent, cell_timeout, notebook_timeout).items():
        if not why:
            problems.append(f"{solution_path.name}: grader {gid} passes on the unsolved exercise (vacuous: "
                            "it checks nothing the learner writes)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ftcourse.classroom.exercises", description=__doc__.split("\n\n")[0])
    p.add_argument("--solutions", default="solutions", help="folder of solution notebooks (default: solutions)")
    p.add_argument("--exercises", default="exercises", help="folder to write (default: exercises)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    p.add_argument("--audit", action="store_true",
                   help="run each solution and its exercise: every grader must pass on the first, fail on the second")
    args = p.parse_args(argv)
    try:
        if args.audit:
            problems = []
            for path in sorted(Path(args.solutions).glob("*.ipynb")):
                found = audit_graders(path)
                print(f"{path}: " + ("graders OK" if not found else f"{len(found)} problem(s)"))
                problems += found
            for line in problems:
                print(line)
            return 1 if problems else 0
        problems = generate(args.solutions, args.exercises, check=args.check)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
