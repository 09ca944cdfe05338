"""Workshop grading: scores, tampered graders, and every way a submission can break.

Fast tests grade a toy exercise (no model, no torch) with per-cell timeouts of a few seconds.
The slow test grades the shipped fixture ``tests/fixtures/submissions/`` (five honest learners and
eight cheaters on the warm-up exercise) through ``python -m ftcourse grade`` and checks the exact
gradebook. Cheating in a toy exercise, trick by trick, is in ``tests/test_tamper.py``.
"""

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import nbformat
import pytest
from fixture_scores import HONEST
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ftcourse.classroom import grading as G
from ftcourse.classroom.cell_markers import new_grader_cell
from ftcourse.classroom.exercises import make_exercise
from ftcourse.errors import CourseError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "submissions"

DOUBLE = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
HALF = "def half(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION"
G_DOUBLE = ("from ftcourse.classroom.check import expect_function\n\n"
            "expect_function(double, [((2,), 4), ((0,), 0)], what='double', hint='multiply by 2')")
G_HALF = "from ftcourse.classroom.check import expect_function\n\nexpect_function(half, [((4,), 2.0)], what='half')"


def _toy_solution():
    return new_notebook(cells=[new_markdown_cell("# Toy exercise"), new_code_cell(DOUBLE),
                               new_grader_cell(G_DOUBLE, "toy-double", 2), new_code_cell(HALF),
                               new_grader_cell(G_HALF, "toy-half", 1)],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _solved(src):
    return src.replace("    ### BEGIN SOLUTION\n", "").replace("\n    ### END SOLUTION", "")


def _submission(double=None, half=None, edit=None):
    """The toy exercise with the learner's code in cells 1 and 3; ``edit(nb)`` changes it further."""
    nb = make_exercise(_toy_solution(), "01_toy.ipynb")
    if double is not None:
        nb.cells[1].source = double
    if half is not None:
        nb.cells[3].source = half
    if edit:
        edit(nb)
    return nbformat.writes(nb)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _read_gradebook(path: Path) -> dict[tuple[str, str], dict]:
    with open(path, newline="") as f:
        return {(row["learner"], row["notebook"]): row for row in csv.DictReader(f)}


pytestmark = pytest.mark.usefixtures("package_copy")   # conftest: grade against a copy of the package


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("solutions")
    nbformat.write(_toy_solution(), folder / "01_toy.ipynb")
    return folder


def _insert_cell_before_half(source_text):
    def edit(nb):
        nb.cells.insert(3, new_code_cell(source_text))
    return edit


def _drop_grader(gid):
    def edit(nb):
        nb.cells = [c for c in nb.cells if c.metadata.get("grader", {}).get("id") != gid]
    return edit


def _set_grader(gid, text):
    def edit(nb):
        for c in nb.cells:
            if c.metadata.get("grader", {}).get("id") == gid:
                c.source = text
    return edit


SUBMISSIONS = {
    "good/01_toy.ipynb": _submission(_solved(DOUBLE), _solved(HALF)),
    "partial/01_toy.ipynb": _submission(_solved(DOUBLE)),
    "syntax/01_toy.ipynb": _submission("def double(x)\n    return 2 * x", _solved(HALF)),
    "loop/01_toy.ipynb": _submission("while True:\n    pass\n\n" + _solved(DOUBLE), _solved(HALF)),
    "dies/01_toy.ipynb": _submission(_solved(DOUBLE), _solved(HALF), _insert_cell_before_half("import os\nos._exit(1)")),
    "edited/01_toy.ipynb": _submission(None, _solved(HALF), _set_grader("toy-double", "print('all good')")),
    "deleted/01_toy.ipynb": _submission(_solved(DOUBLE), _solved(HALF), _drop_grader("toy-double")),
    "spaces/01_toy.ipynb": _submission(_solved(DOUBLE), _solved(HALF),
                                       _set_grader("toy-double", "\n" + G_DOUBLE.replace("\n", "   \n\n") + "\n\n")),
    "garbage/01_toy.ipynb": "this is not JSON, it is a learner's note",
    "binary/01_toy.ipynb": b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
    "empty/01_toy.ipynb": "",
    "frank__01_toy.ipynb": _submission(_solved(DOUBLE), _solved(HALF)),
    "henry/99_other.ipynb": _submission(_solved(DOUBLE), _solved(HALF)),
    "notes.ipynb": _submission(),
    "readme.txt": "hand-in instructions",
    "good/scratch.py": "print('not graded')",
}

EXPECTED = {  # (learner, notebook): (points, toy-double column, toy-half column)
    ("good", "01_toy"): ("3", "2", "1"),
    ("partial", "01_toy"): ("2", "2", "0"),
    ("syntax", "01_toy"): ("1", "0", "1"),
    ("loop", "01_toy"): ("1", "0", "1"),
    ("dies", "01_toy"): ("2", "2", "not run"),
    ("edited", "01_toy"): ("1", "edited", "1"),
    ("deleted", "01_toy"): ("1", "missing", "1"),
    ("spaces", "01_toy"): ("3", "2", "1"),
    ("garbage", "01_toy"): ("0", "not run", "not run"),
    ("binary", "01_toy"): ("0", "not run", "not run"),
    ("empty", "01_toy"): ("0", "not run", "not run"),
    ("frank", "01_toy"): ("3", "2", "1"),
    ("henry", "99_other"): ("0", "", ""),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, source, package_copy):
    subs = tmp_path_factory.mktemp("submissions")
    (subs / "zed").mkdir()  # a learner folder with nothing in it
    for rel, content in SUBMISSIONS.items():
        path = subs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    before = _tree_digest(subs)
    out = tmp_path_factory.mktemp("out")
    grades = G.grade_folder(subs, out=out, source=source, cell_timeout=3, notebook_timeout=60, verbose=True)
    return {"subs": subs, "before": before, "out": out, "grades": grades}


def test_gradebook_scores(graded):
    book = _read_gradebook(graded["out"] / "gradebook.csv")
    got = {key: (row["points"], row["toy-double"], row["toy-half"]) for key, row in book.items()}
    assert got == EXPECTED
    assert all(row["max_points"] == ("3" if key[1] == "01_toy" else "0") for key, row in book.items())


def test_submissions_folder_is_untouched(graded):
    assert _tree_digest(graded["subs"]) == graded["before"]


def _grade(graded, learner):
    (g,) = [g for g in graded["grades"] if g.learner == learner]
    return g


def _result(graded, learner, gid):
    (r,) = [r for r in _grade(graded, learner).graders if r.id == gid]
    return r


def test_failed_check_message_reaches_the_feedback(graded):
    r = _result(graded, "partial", "toy-half")
    assert r.status == "fail" and "not written yet" in r.message
    feedback = (graded["out"] / "feedback" / "partial.md").read_text()
    assert "## 01_toy: 2 / 3 points" in feedback
    assert "- **toy-double**: pass, 2 / 2 points" in feedback
    assert "- **toy-half**: fail, 0 / 1 points" in feedback and "not written yet" in feedback


def test_syntax_error_is_reported_plainly(graded):
    g = _grade(graded, "syntax")
    assert any("SyntaxError" in p and "line 1 of the cell" in p for p in g.problems), g.problems
    assert "NameError" in _result(graded, "syntax", "toy-double").message


def test_infinite_loop_is_interrupted_and_the_rest_still_runs(graded):
    g = _grade(graded, "loop")
    assert any("interrupted after" in p for p in g.problems), g.problems
    assert _result(graded, "loop", "toy-half").status == "pass"


def test_kernel_death_keeps_earlier_points(graded):
    g = _grade(graded, "dies")
    assert any("kernel died" in p for p in g.problems), g.problems
    assert _result(graded, "dies", "toy-double").status == "pass"
    assert "kernel died" in _result(graded, "dies", "toy-half").message


def test_edited_and_deleted_graders_are_flagged(graded):
    edited = _result(graded, "edited", "toy-double")
    assert (edited.status, edited.earned) == ("edited", 0) and "changed" in edited.message
    missing = _result(graded, "deleted", "toy-double")
    assert (missing.status, missing.earned) == ("missing", 0) and "deleted" in missing.message
    assert "grader toy-double was edited (scored 0)" in _grade(graded, "edited").problems
    assert "grader toy-double is missing (scored 0)" in _grade(graded, "deleted").problems
    assert _result(graded, "spaces", "toy-double").status == "pass"  # whitespace does not count as an edit


@pytest.mark.parametrize("learner, words", [("garbage", "not a notebook"), ("binary", "binary"),
                                            ("empty", "empty")])
def test_files_that_are_not_notebooks(graded, learner, words):
    assert any(words in p for p in _grade(graded, learner).problems)


def test_unmatched_notebook_is_reported(graded):
    assert any("no solution notebook matches" in p for p in _grade(graded, "henry").problems)


def test_skipped_entries_are_listed(graded, capsys):
    subs, notes = G.find_submissions(graded["subs"])
    assert {s.learner for s in subs} == {k[0] for k in EXPECTED}
    text = "\n".join(notes)
    assert "notes.ipynb: ignored" in text and "readme.txt: ignored" in text
    assert "zed/: no .ipynb file inside" in text and "good/: ignored scratch.py" in text


def test_executed_copies_are_kept_for_the_instructor(graded):
    nb = nbformat.read(graded["out"] / "executed" / "good" / "01_toy.ipynb", as_version=4)
    assert any(o.get("text", "").startswith("\u2713 double") for c in nb.cells for o in c.get("outputs", []))


# --------------------------------------------------------------------------- separate, small cases
def test_notebook_time_limit_stops_the_run(tmp_path, source):
    subs = tmp_path / "subs"
    (subs / "slow").mkdir(parents=True)
    sleepy = _submission(_solved(DOUBLE), "import time\ntime.sleep(2)\n" + _solved(HALF),
                         _insert_cell_before_half("import time\ntime.sleep(2)"))
    (subs / "slow" / "01_toy.ipynb").write_text(sleepy)
    (g,) = G.grade_folder(subs, out=tmp_path / "out", source=source, cell_timeout=10, notebook_timeout=3,
                          verbose=False)
    assert any("notebook time limit (3 s)" in p for p in g.problems), g.problems
    assert _status(g, "toy-double") == "pass" and _status(g, "toy-half") == "not run"


def _status(grade, gid):
    return next(r.status for r in grade.graders if r.id == gid)


def test_a_kernel_that_ignores_interrupts_is_stopped(tmp_path, source, monkeypatch):
    monkeypatch.setattr(G, "GRACE_S", 2)
    subs = tmp_path / "subs"
    (subs / "stubborn").mkdir(parents=True)
    stubborn = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    (subs / "stubborn" / "01_toy.ipynb").write_text(_submission(stubborn, _solved(HALF)))
    (g,) = G.grade_folder(subs, out=tmp_path / "out", source=source, cell_timeout=2, notebook_timeout=4,
                          verbose=False)
    assert g.seconds < 30
    assert any("time limit" in p for p in g.problems), g.problems
    assert _status(g, "toy-double") == "not run" and _status(g, "toy-half") == "not run"


def test_empty_folder(tmp_path, source, capsys):
    (tmp_path / "subs").mkdir()
    args = Namespace(submissions=str(tmp_path / "subs"), out=str(tmp_path / "out"), source=str(source),
                     cell_timeout=5, notebook_timeout=10)
    assert G.cli_grade(args) == 1
    assert "No submissions found" in capsys.readouterr().out
    assert (tmp_path / "out" / "gradebook.csv").read_text().startswith("learner,notebook,points,max_points")


def test_refuses_to_write_into_the_submissions_or_run_without_sources(tmp_path, source):
    subs = tmp_path / "subs"
    subs.mkdir()
    with pytest.raises(CourseError, match="inside the submissions folder"):
        G.grade_folder(subs, out=subs / "out", source=source)
    with pytest.raises(CourseError, match="No submissions folder"):
        G.grade_folder(tmp_path / "missing", out=tmp_path / "out", source=source)
    with pytest.raises(CourseError, match="No solution notebooks"):
        G.grade_folder(subs, out=tmp_path / "out", source=tmp_path)


def test_checksum_ignores_blank_lines_and_trailing_spaces_only():
    assert G.checksum("a = 1\n\nb = 2  \r\n") == G.checksum("a = 1\nb = 2")
    assert G.checksum("a = 1\nb = 2") != G.checksum("a = 1\nb = 3")
    assert G.checksum("if x:\n    f()") != G.checksum("if x:\nf()")  # indentation is meaning in Python


def test_match_source_by_name_or_number(source):
    sources = G.load_sources(source)
    assert G.match_source("01_toy", sources).name == "01_toy"
    assert G.match_source("01_my_copy", sources).name == "01_toy"
    assert G.match_source("02_toy", sources) is None


def test_feedback_markdown_lists_every_grader():
    gr = G.NotebookGrade("ann", "01_toy", Path("x"), [G.GraderResult("a", 2, 2, "pass"),
                                                      G.GraderResult("b", 1, 0, "fail", "b: expected 1\n  got: 2")],
                         ["cell 3 raised ValueError: x"])
    text = G.feedback_markdown("ann", [gr])
    assert "## 01_toy: 2 / 3 points" in text and "  b: expected 1" in text and "- cell 3 raised ValueError" in text


# --------------------------------------------------------------------------- the shipped fixture, end to end
# HONEST (tests/fixture_scores.py): alice 3/3, bob 2, carol 1 (syntax error), dave 0 (infinite loop),
# erin 2 with exercise 2 not run (her kernel dies); tests/test_nbgrader.py grades them with nbgrader too
# each cheater answers wrong (count_prompt_tokens returns 0, cheaper_prompt returns a) and tries one trick;
# graded without the guard, faye, gil, hana, ivan and lou score 3/3 (nia too, with the old checker)
CHEATERS = {
    "aaron": "overwrites bob's notebook in the submissions folder",
    "faye": "defines her own do-nothing expect_function",
    "gil": "patches ftcourse.classroom.check.expect_function and rebinds the name",
    "hana": "makes AssertionError a Warning, reloads the checker, hides Warning tracebacks",
    "ivan": "rebinds count_tokens, which the graders read, in a later cell",
    "jude": "edits his grader cell and the solution notebook on disk to match",
    "lou": "replaces the shell's showtraceback so failures print nothing",
    "nia": "returns an object whose __eq__ says equal to everything",
}
TAMPERED = ("0", "3", "tampered", "tampered")


@pytest.mark.slow
@pytest.mark.model
def test_fixture_submissions_grade_exactly(tmp_path):
    """Honest learners keep their scores; every cheat scores 0 and is named in the gradebook.

    The run grades temporary copies of the fixture and of ``solutions/``: two fixtures write into
    them (only under the temporary folder), and the grading run must report both writes.
    """
    before = _tree_digest(FIXTURE)
    subs, solutions = tmp_path / "submissions", tmp_path / "solutions"
    shutil.copytree(FIXTURE, subs)
    shutil.copytree(ROOT / "solutions", solutions)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ftcourse", "grade", str(subs), "--out", str(out), "--source", str(solutions),
         "--cell-timeout", "45", "--notebook-timeout", "300"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr  # 2: a run changed files it must not touch
    book = _read_gradebook(out / "gradebook.csv")
    got = {k[0]: (r["points"], r["max_points"], r["ex00-count-tokens"], r["ex00-cheaper-prompt"])
           for k, r in book.items()}
    # faye's and ivan's names are put back before each grader, so the real check fails their answers;
    # the other tricks cannot be undone inside the kernel, so their graders score 0 as "tampered"
    assert got == {**HONEST, **{name: TAMPERED for name in CHEATERS},
                   **{name: ("0", "3", "0", "0") for name in ("faye", "ivan", "nia")}}
    problems = {k[0]: r["problems"] for k, r in book.items()}
    assert "SyntaxError" in problems["carol"] and "kernel died" in problems["erin"]
    assert "interrupted after" in (out / "feedback" / "dave.md").read_text()
    assert "not written yet" in (out / "feedback" / "bob.md").read_text()
    assert not any("tampering" in problems[name] or "ERROR" in problems[name] for name in HONEST)
    expected_reasons = {
        "aaron": "submissions/bob/00_warmup.ipynb (changed)",
        "faye": "rebinds `expect_function`, which grader cells read",
        "gil": "`ftcourse.classroom.check.expect_function = lambda *a, **k: None`",
        "hana": "`builtins.AssertionError = Warning`",
        "ivan": "rebinds `count_tokens`, which grader cells read",
        "jude": "solutions/00_warmup.ipynb (changed)",
        "lou": "`shell.showtraceback = lambda *args, **kwargs: None`",
    }
    for name, reason in expected_reasons.items():
        assert reason in problems[name], (name, problems[name])
    assert "set_custom_exc" in problems["hana"] and "grader ex00-count-tokens was edited" in problems["jude"]
    assert "got: <__main__.Anything object" in (out / "feedback" / "nia.md").read_text()
    assert "tampering undone before grading: cell 5, line 6" in (out / "feedback" / "faye.md").read_text()
    assert "count_prompt_tokens('My card reader will not connect.'): expected" in (out / "feedback" / "ivan.md").read_text()
    assert _tree_digest(FIXTURE) == before  # the real fixture and solutions/ were never the ones written
    assert "print(" in (solutions / "00_warmup.ipynb").read_text()  # jude's write happened, to the copy


def test_fixture_is_the_current_exercise():
    """The fixture submissions were built from exercises/00_warmup.ipynb; their graders must still match.

    The one exception is jude's first grader, edited on purpose.
    """
    sources = G.load_sources(ROOT / "solutions")
    for path in sorted(FIXTURE.glob("*/00_warmup.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("grader", {}).get("id")
            if gid and (path.parent.name, gid) != ("jude", "ex00-count-tokens"):
                assert G.checksum(cell.source) == sources["00_warmup"].checksums[gid], (path, gid)
    assert {p.parent.name for p in FIXTURE.glob("*/00_warmup.ipynb")} == set(HONEST) | set(CHEATERS)
