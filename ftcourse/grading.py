"""Workshop grading: run every submitted exercise notebook and score its grader cells.

``python -m ftcourse grade SUBMISSIONS [--out grading-out] [--source solutions]
[--cell-timeout 120] [--notebook-timeout 900]`` (``make grade SUBMISSIONS=dir``).

Layout of the submissions folder (choose either; both may be mixed)::

    SUBMISSIONS/alice/00_warmup.ipynb        one folder per learner (recommended)
    SUBMISSIONS/bob__00_warmup.ipynb         or flat: <learner>__<notebook>.ipynb

A submission is matched to its solution notebook by name (``00_warmup``), or else by its number
(``00_...``). Each notebook runs in a kernel of its own (nbclient) on a copy in a temporary folder;
the submissions folder is only read. A cell that runs longer than ``--cell-timeout`` is interrupted
and the notebook goes on; once ``--notebook-timeout`` is used up, the kernel is stopped and the
remaining cells count as not run. A kernel that dies, a syntax error, a file that is not a notebook,
or an empty folder is reported in plain words, never as a crash of the grader.

Scoring: a grader cell (``metadata.grader = {"id", "points"}``) earns its points when it ran without
an error. Each grader cell is compared with the solution notebook's cell of the same id, ignoring
trailing spaces and blank lines: an edited grader scores 0 and is flagged ``edited``; a deleted one
is flagged ``missing``.

Output in ``--out``: ``gradebook.csv`` (one row per learner and notebook), ``feedback/<learner>.md``
(per grader: pass or fail, the check's message, the points) and ``executed/<learner>/<notebook>.ipynb``
(the notebook as it ran, to look at the outputs).

Limits: graders run in the learner's kernel, so this is feedback for a workshop, not exam security
(a learner could, say, redefine the check functions in another cell).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError
from .exercises import Grader, graders

GRACE_S = 15  # extra seconds for a kernel to react to an interrupt before it is shut down
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------- running one notebook
@dataclass
class CellRun:
    index: int
    status: str  # "ok" | "error" | "timeout" | "not run"
    ename: str = ""
    evalue: str = ""
    seconds: float = 0.0
    note: str = ""  # for a timeout: which limit was hit

    @property
    def message(self) -> str:
        if self.status == "timeout":
            return f"interrupted after {self.seconds:.0f} s ({self.note or 'time limit'})"
        if self.ename == "CheckFailed":
            return self.evalue
        # "(3902549497.py, line 3)": the kernel's name for a cell means nothing to a learner
        evalue = re.sub(r"\(\d+\.py, line (\d+)\)", r"(line \1 of the cell)", self.evalue)
        return f"{self.ename}: {evalue}".strip(": ")


@dataclass
class NotebookRun:
    nb: object  # the executed notebook (NotebookNode)
    cells: dict[int, CellRun]  # code cells by index
    stopped: str = ""  # why the run ended early, "" if every cell ran
    seconds: float = 0.0


def _cell_error(cell) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", ""), _ANSI.sub("", out.get("evalue", ""))
    return None


async def _execute(nb, cwd: Path, cell_timeout: float, notebook_timeout: float, kernel_name: str) -> NotebookRun:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    t_start = time.monotonic()
    deadline = t_start + notebook_timeout + 3600  # reset once the kernel is up: start-up does not count
    runs: dict[int, CellRun] = {}
    stopped = ""

    def cell_limit(_cell=None) -> int:
        return max(1, int(min(cell_timeout, deadline - time.monotonic()) + 0.999))

    client = NotebookClient(
        nb, kernel_name=kernel_name, allow_errors=True, interrupt_on_timeout=True, timeout=int(cell_timeout),
        timeout_func=cell_limit, shutdown_kernel="immediate", record_timing=False, startup_timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    )
    count = 0
    try:
        # the kernel's own log lines (not the learner's output, which comes over IOPub) are noise here
        async with client.async_setup_kernel(stderr=subprocess.DEVNULL):
            deadline = time.monotonic() + notebook_timeout
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stopped = f"the notebook time limit ({notebook_timeout:.0f} s) was used up before cell {i}"
                    break
                t0 = time.monotonic()
                limit = cell_limit()
                count += 1
                try:
                    await asyncio.wait_for(client.async_execute_cell(cell, i, execution_count=count),
                                           timeout=remaining + GRACE_S)
                except (asyncio.TimeoutError, DeadKernelError, CellTimeoutError) as exc:
                    took = time.monotonic() - t0
                    if time.monotonic() >= deadline or not isinstance(exc, DeadKernelError):
                        runs[i] = CellRun(i, "timeout", seconds=took, note="the notebook time limit")
                        stopped = (f"the notebook time limit ({notebook_timeout:.0f} s) was used up in cell {i}; "
                                   "the kernel was stopped")
                    else:
                        runs[i] = CellRun(i, "error", "DeadKernelError", "the kernel died while running this cell",
                                          seconds=took)
                        stopped = f"the kernel died in cell {i} (a crash, os._exit, or out of memory)"
                    break
                took = time.monotonic() - t0
                err = _cell_error(cell)
                if err is None:
                    runs[i] = CellRun(i, "ok", seconds=took)
                elif err[0] == "KeyboardInterrupt" and took >= limit - 0.5:
                    note = "the time limit per cell" if limit >= cell_timeout else "the notebook time limit"
                    runs[i] = CellRun(i, "timeout", *err, seconds=took, note=note)
                else:
                    runs[i] = CellRun(i, "error", *err, seconds=took)
    except Exception as exc:  # the kernel would not start, or nbclient failed in a way we did not foresee
        stopped = f"the notebook could not be run ({type(exc).__name__}: {_ANSI.sub('', str(exc)).strip()[:300]})"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip() and i not in runs:
            runs[i] = CellRun(i, "not run")
    return NotebookRun(nb, runs, stopped, time.monotonic() - t_start)


def execute_notebook(nb, cwd: str | Path, cell_timeout: float = 120, notebook_timeout: float = 900,
                     kernel_name: str = "python3") -> NotebookRun:
    """Run ``nb`` (modified in place) in a fresh kernel started in ``cwd``; never raises on learner errors.

    Errors in cells are recorded and the run goes on; a cell over ``cell_timeout`` seconds is
    interrupted; when ``notebook_timeout`` is used up, or the kernel dies, the remaining cells are
    marked "not run" and ``stopped`` says why.
    """
    from nbclient.util import run_sync

    return run_sync(_execute)(nb, Path(cwd), cell_timeout, notebook_timeout, kernel_name)


# --------------------------------------------------------------------------- grading
def normalise(source: str) -> str:
    """A grader cell's source without trailing spaces, blank lines or Windows line ends."""
    lines = (line.rstrip() for line in source.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def checksum(source: str) -> str:
    return hashlib.sha256(normalise(source).encode("utf-8")).hexdigest()


@dataclass
class GraderResult:
    id: str
    points: float
    earned: float
    status: str  # "pass" | "fail" | "edited" | "missing" | "not run"
    message: str = ""


@dataclass
class NotebookGrade:
    learner: str
    notebook: str  # the solution notebook's stem, e.g. "00_warmup" (or the file name if unmatched)
    path: Path
    graders: list[GraderResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def earned(self) -> float:
        return sum(g.earned for g in self.graders)

    @property
    def max_points(self) -> float:
        return sum(g.points for g in self.graders)


@dataclass(frozen=True)
class Submission:
    learner: str
    name: str  # notebook name without .ipynb
    path: Path


def find_submissions(folder: Path) -> tuple[list[Submission], list[str]]:
    """Submissions in ``folder`` (both layouts) and notes on what was skipped."""
    subs: list[Submission] = []
    notes: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            notebooks = [p for p in sorted(entry.iterdir()) if p.suffix == ".ipynb" and not p.name.startswith(".")]
            if not notebooks:
                notes.append(f"{entry.name}/: no .ipynb file inside")
            subs += [Submission(entry.name, p.stem, p) for p in notebooks]
            others = [p.name for p in sorted(entry.iterdir())
                      if p.suffix != ".ipynb" and not p.name.startswith(".")]
            if others:
                notes.append(f"{entry.name}/: ignored {', '.join(others)} (not .ipynb)")
        elif entry.suffix == ".ipynb":
            learner, sep, name = entry.stem.partition("__")
            if sep and learner and name:
                subs.append(Submission(learner, name, entry))
            else:
                notes.append(f"{entry.name}: ignored; name flat files <learner>__<notebook>.ipynb, "
                             "e.g. alice__00_warmup.ipynb, or put them in a folder per learner")
        else:
            notes.append(f"{entry.name}: ignored (not a notebook file or a learner folder)")
    return subs, notes


@dataclass
class Source:
    name: str
    graders: list[Grader]
    checksums: dict[str, str]


def load_sources(folder: Path) -> dict[str, Source]:
    """Grader cells and their checksums from each solution notebook in ``folder``."""
    import nbformat

    sources = {}
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found = graders(nb, where=str(path))
        sources[path.stem] = Source(path.stem, found, {g.id: checksum(g.source) for g in found})
    return sources


def match_source(name: str, sources: dict[str, Source]) -> Source | None:
    if name in sources:
        return sources[name]
    m = re.match(r"^(\d+)", name)
    if m:
        hits = [s for s in sources.values() if s.name.split("_")[0] == m.group(1)]
        if len(hits) == 1:
            return hits[0]
    return None


def _read_notebook(path: Path):
    """The notebook at ``path``, or a plain-words reason why it is not one."""
    import nbformat

    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not raw.strip():
        return None, "not a notebook: the file is empty"
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except UnicodeDecodeError:
        return None, "not a notebook: the file is binary, not text (a PDF or a zip renamed to .ipynb?)"
    except Exception as exc:  # JSON errors, wrong schema, ...
        first = " ".join(str(exc).split())[:200]
        return None, f"not a notebook: {type(exc).__name__}: {first}"
    if not isinstance(nb.get("cells"), list):
        return None, "not a notebook: it has no list of cells"
    return nb, ""


def grade_submission(sub: Submission, sources: dict[str, Source], workdir: Path, cell_timeout: float,
                     notebook_timeout: float, executed_dir: Path | None = None) -> NotebookGrade:
    """Run one submission on a copy in ``workdir`` and score its grader cells."""
    import nbformat

    source = match_source(sub.name, sources)
    grade = NotebookGrade(sub.learner, source.name if source else sub.name, sub.path)
    if source is None:
        grade.problems.append(f"{sub.path.name}: no solution notebook matches this name "
                              f"(known: {', '.join(sources) or 'none'}); rename it like the exercise")
        return grade
    graded = [GraderResult(g.id, g.points, 0.0, "not run") for g in source.graders]
    grade.graders = graded
    nb, why = _read_notebook(sub.path)
    if nb is None:
        grade.problems.append(why)
        for g in graded:
            g.message = why
        return grade

    run_dir = workdir / sub.learner
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / sub.path.name).write_bytes(sub.path.read_bytes())  # the learner's files stay untouched
    run = execute_notebook(nb, run_dir, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
    grade.seconds = run.seconds
    if executed_dir is not None:
        out = executed_dir / sub.learner
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{grade.notebook}.ipynb")

    by_id: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("grader")
        if cell.get("cell_type") == "code" and isinstance(meta, dict) and isinstance(meta.get("id"), str):
            by_id.setdefault(meta["id"], []).append(i)
    graders_at = {i for idxs in by_id.values() for i in idxs}
    for i, r in sorted(run.cells.items()):
        if i in graders_at:
            continue
        if r.status == "error" and r.ename != "DeadKernelError":  # a dead kernel is reported once, below
            grade.problems.append(f"cell {i} raised {r.message.splitlines()[0] if r.message else r.ename}")
        elif r.status == "timeout":
            grade.problems.append(f"cell {i} was {r.message}")
    if run.stopped:
        grade.problems.append(run.stopped[0].upper() + run.stopped[1:])
    for extra in sorted(set(by_id) - set(source.checksums)):
        grade.problems.append(f"grader id {extra!r} is not in the solution notebook; ignored")

    for g in graded:
        cells = by_id.get(g.id, [])
        if not cells:
            g.status, g.message = "missing", "this grader cell was deleted (or its metadata removed); copy it back from the exercise notebook"
            grade.problems.append(f"grader {g.id} is missing (scored 0)")
            continue
        if any(checksum(nb.cells[i].source) != source.checksums[g.id] for i in cells):
            g.status, g.message = "edited", "this grader cell was changed; copy the original back from the exercise notebook"
            grade.problems.append(f"grader {g.id} was edited (scored 0)")
            continue
        results = [run.cells.get(i, CellRun(i, "not run")) for i in cells]
        bad = next((r for r in results if r.status != "ok"), None)
        if bad is None:
            g.status, g.earned = "pass", g.points
        elif bad.status == "not run":
            g.status, g.message = "not run", run.stopped or "the cell did not run"
        else:
            g.status, g.message = "fail", bad.message
    return grade


# --------------------------------------------------------------------------- reports
def _fmt(points: float) -> str:
    return f"{points:g}"


def write_gradebook(grades: list[NotebookGrade], path: Path, sources: dict[str, Source]) -> None:
    ids = [g.id for s in sources.values() for g in s.graders]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["learner", "notebook", "points", "max_points", *ids, "problems"])
        for gr in grades:
            earned = {g.id: (_fmt(g.earned) if g.status in ("pass", "fail") else g.status) for g in gr.graders}
            w.writerow([gr.learner, gr.notebook, _fmt(gr.earned), _fmt(gr.max_points),
                        *(earned.get(i, "") for i in ids), "; ".join(gr.problems)])


def feedback_markdown(learner: str, grades: list[NotebookGrade]) -> str:
    lines = [f"# Feedback for {learner}", ""]
    for gr in grades:
        lines += [f"## {gr.notebook}: {_fmt(gr.earned)} / {_fmt(gr.max_points)} points", ""]
        for g in gr.graders:
            lines.append(f"- **{g.id}**: {g.status}, {_fmt(g.earned)} / {_fmt(g.points)} points")
            if g.message:
                lines += ["", "  ```text", *(f"  {m}" for m in g.message.splitlines()), "  ```", ""]
        if gr.problems:
            lines += ["", "Also noticed:", ""] + [f"- {p}" for p in gr.problems]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def grade_folder(submissions: str | Path, out: str | Path = "grading-out", source: str | Path = "solutions",
                 cell_timeout: float = 120, notebook_timeout: float = 900, verbose: bool = True) -> list[NotebookGrade]:
    """Grade every submission in ``submissions``; write the gradebook and feedback into ``out``."""
    log = print if verbose else (lambda *a, **k: None)
    submissions, out, source = Path(submissions).resolve(), Path(out).resolve(), Path(source)
    if not submissions.is_dir():
        raise CourseError(f"No submissions folder {submissions}. Expected {submissions}/<learner>/<notebook>.ipynb.")
    if out == submissions or submissions in out.parents:
        raise CourseError(f"--out {out} is inside the submissions folder, which grading never writes to; "
                          "choose another folder.")
    if not source.is_dir() or not any(source.glob("*.ipynb")):
        raise CourseError(f"No solution notebooks in {source}/ (needed for the grader checksums); "
                          "run from the course root or pass --source.")
    sources = load_sources(source)
    subs, notes = find_submissions(submissions)
    for note in notes:
        log(f"note: {note}")
    out.mkdir(parents=True, exist_ok=True)
    if not subs:
        write_gradebook([], out / "gradebook.csv", sources)
        log(f"No submissions found in {submissions}. Expected {submissions}/<learner>/<notebook>.ipynb "
            f"(or {submissions}/<learner>__<notebook>.ipynb). Nothing was graded.")
        return []
    grades: list[NotebookGrade] = []
    with tempfile.TemporaryDirectory(prefix="ftcourse-grade-") as tmp:
        for n, sub in enumerate(subs, 1):
            log(f"[{n}/{len(subs)}] {sub.learner}: {sub.path.name} ...", end=" ", flush=True)
            gr = grade_submission(sub, sources, Path(tmp) / f"{n:03d}", cell_timeout, notebook_timeout,
                                  executed_dir=out / "executed")
            grades.append(gr)
            log(f"{_fmt(gr.earned)}/{_fmt(gr.max_points)} points ({gr.seconds:.0f} s)"
                + (f"; {len(gr.problems)} problem(s)" if gr.problems else ""))
    write_gradebook(grades, out / "gradebook.csv", sources)
    fb_dir = out / "feedback"
    if fb_dir.exists():
        shutil.rmtree(fb_dir)
    fb_dir.mkdir()
    for learner in sorted({g.learner for g in grades}):
        mine = [g for g in grades if g.learner == learner]
        (fb_dir / f"{learner}.md").write_text(feedback_markdown(learner, mine), encoding="utf-8")
    log(f"\nGradebook: {out / 'gradebook.csv'}\nFeedback:  {fb_dir}/<learner>.md")
    return grades


def cli_grade(args) -> int:
    """``python -m ftcourse grade DIR``: see the module docstring. Exit status 1 when nothing was graded."""
    grades = grade_folder(args.submissions, out=args.out, source=args.source, cell_timeout=args.cell_timeout,
                          notebook_timeout=args.notebook_timeout)
    if grades:
        width = max(len(g.learner) for g in grades)
        print()
        for g in grades:
            print(f"{g.learner.ljust(width)}  {g.notebook}  {_fmt(g.earned)}/{_fmt(g.max_points)}"
                  + (f"  ({'; '.join(g.problems)})" if g.problems else ""))
    return 0 if grades else 1
