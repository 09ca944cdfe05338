"""Exercises generated from solutions: the generator, the committed exercises/, and every grader cell.

The last two tests run over every ``solutions/*.ipynb`` (other lessons are covered automatically):
each grader must pass on its solution and fail on the generated exercise.
"""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ftcourse.classroom import exercises as E
from ftcourse.classroom.cell_markers import new_grader_cell

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def _nb(*cells):
    return new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                    "language": "python"}})


def _grader(source, gid="g1", points=1):
    return new_grader_cell(source, gid, points)


SOLVED = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\n\nprint(f(1))"


# --------------------------------------------------------------------------- the generator
def test_clear_solutions_keeps_indentation_and_the_rest():
    out, n = E.clear_solutions(SOLVED)
    assert n == 1
    assert out == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n\nprint(f(1))"


def test_clear_solutions_several_regions_and_top_level():
    src = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n  ### BEGIN SOLUTION\n  c = 3\n  ### END SOLUTION"
    out, n = E.clear_solutions(src)
    assert n == 2
    assert out.split("\n") == ["# YOUR CODE HERE", "raise NotImplementedError()", "b = 2",
                               "  # YOUR CODE HERE", "  raise NotImplementedError()"]


def test_clear_solutions_in_markdown():
    out, n = E.clear_solutions("Why?\n\n### BEGIN SOLUTION\nBecause facts change.\n### END SOLUTION", markdown=True)
    assert (out, n) == ("Why?\n\nYOUR ANSWER HERE", 1)


@pytest.mark.parametrize("src, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside the region"),
    ("## BEGIN SOLUTION\nx = 1\n## END SOLUTION", "exactly"),
    ("x = 1  ### BEGIN SOLUTION", "a line of its own"),
])
def test_clear_solutions_rejects_broken_markers(src, message):
    with pytest.raises(E.ExerciseError, match=message):
        E.clear_solutions(src, where="nb, cell 3")


def test_make_exercise_strips_outputs_and_keeps_graders():
    sol = new_code_cell(SOLVED, execution_count=4, outputs=[nbformat.v4.new_output("stream", text="2\n")])
    grader = _grader("from ftcourse.classroom.check import expect_equal\nexpect_equal(f(1), 2, 'f(1)')", points=2)
    grader.execution_count = 5
    grader.outputs = [nbformat.v4.new_output("stream", text="ok\n")]
    solution = _nb(new_markdown_cell("# Title"), sol, grader)
    solution.metadata["widgets"] = {"state": {}}
    before = nbformat.writes(solution)
    ex = E.make_exercise(solution, "01_x.ipynb")
    assert nbformat.writes(solution) == before  # the input is not modified
    assert "raise NotImplementedError()" in ex.cells[1].source and "y = x + 1" not in ex.cells[1].source
    assert ex.cells[2].source == grader.source and ex.cells[2].metadata == grader.metadata
    for cell in ex.cells[1:]:
        assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" not in ex.metadata
    assert ex.metadata["ftcourse"]["generated_from"] == "solutions/01_x.ipynb"
    assert [c.id for c in ex.cells] == [c.id for c in solution.cells]


def test_render_is_deterministic_and_gives_ids_to_old_notebooks(tmp_path):
    nb = _nb(new_code_cell(SOLVED), _grader("assert f(1) == 2"))
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    path = tmp_path / "01_x.ipynb"
    path.write_text(nbformat.writes(nb, version=nbformat.NO_CONVERT))
    first, second = E.render_exercise(path), E.render_exercise(path)
    assert first == second
    ex = nbformat.reads(first, as_version=4)
    assert all(cell.id for cell in ex.cells)
    nbformat.validate(ex)


@pytest.mark.parametrize("cells, message", [
    ((new_code_cell("x = 1"), _grader("assert x")), "no ### BEGIN SOLUTION"),
    ((new_code_cell(SOLVED), _grader("### BEGIN SOLUTION\n### END SOLUTION")), "must not contain solution markers"),
    ((new_code_cell(SOLVED), _grader("assert 1", gid="")), "needs metadata.grader.id"),
    ((new_code_cell(SOLVED), _grader("assert 1", points=0)), "positive number"),
    ((new_code_cell(SOLVED), _grader("assert 1"), _grader("assert 2")), "used twice"),
])
def test_make_exercise_rejects_broken_solutions(cells, message):
    with pytest.raises(E.ExerciseError, match=message):
        E.make_exercise(_nb(*cells), "01_x.ipynb")


def test_generate_check_and_write(tmp_path):
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    nbformat.write(_nb(new_code_cell(SOLVED), _grader("assert f(1) == 2")), sols / "01_x.ipynb")
    assert E.generate(sols, exs, check=True, verbose=False) == [  # a new solution lacks nbgrader's metadata
        f"{sols / '01_x.ipynb'} is not as `make exercises` keeps it (its nbgrader metadata or cell ids are out of date)",
        f"{exs / '01_x.ipynb'} is missing"]
    assert E.main(["--solutions", str(sols), "--exercises", str(exs), "--check"]) == 1
    assert E.main(["--solutions", str(sols), "--exercises", str(exs)]) == 0
    assert E.generate(sols, exs, check=True, verbose=False) == []
    (exs / "01_x.ipynb").write_text((exs / "01_x.ipynb").read_text().replace("YOUR CODE HERE", "my answer"))
    (exs / "09_gone.ipynb").write_text("{}")
    problems = E.generate(sols, exs, check=True, verbose=False)
    assert len(problems) == 2 and "out of date" in problems[0] and "has no solution notebook" in problems[1]
    E.generate(sols, exs, verbose=False)
    assert sorted(p.name for p in exs.iterdir()) == ["01_x.ipynb"]
    assert E.generate(sols, exs, check=True, verbose=False) == []


def test_generate_needs_the_solutions_folder(tmp_path):
    with pytest.raises(E.ExerciseError, match="course's root folder"):
        E.generate(tmp_path / "nope", tmp_path / "exercises")


# --------------------------------------------------------------------------- the course's notebooks
def test_there_is_a_solution_notebook():
    assert any(p.name == "00_warmup.ipynb" for p in SOLUTIONS)


def test_committed_exercises_match_the_generator():
    problems = E.generate(ROOT / "solutions", ROOT / "exercises", check=True, verbose=False)
    assert problems == [], "exercises/ is out of date; run `make exercises`:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solution_has_graders_and_solution_regions(path):
    nb = nbformat.read(path, as_version=4)
    found = E.graders(nb, where=path.name)
    assert found, f"{path.name} has no grader cell"
    E.make_exercise(nb, path.name)  # raises when there is no solution region
    for cell in nb.cells:
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, \
            f"{path.name}: commit notebooks without outputs"


def test_grader_ids_are_unique_across_solutions():
    ids = [g.id for p in SOLUTIONS for g in E.graders(nbformat.read(p, as_version=4), where=p.name)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_audit_finds_a_vacuous_grader_and_a_broken_one(tmp_path):
    nb = _nb(new_code_cell(SOLVED),
             _grader("from ftcourse.classroom.check import expect_equal\nexpect_equal(f(1), 2, 'f(1)')", gid="real"),
             _grader("from ftcourse.classroom.check import expect_true\nexpect_true(True, 'always')", gid="vacuous"),
             _grader("from ftcourse.classroom.check import expect_equal\nexpect_equal(f(1), 3, 'f(1)')", gid="wrong"))
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    problems = E.audit_graders(path, cell_timeout=30, notebook_timeout=120)
    assert len(problems) == 2, problems
    assert "grader wrong fails on the solution: f(1): expected 3" in problems[0]
    assert "grader vacuous passes on the unsolved exercise" in problems[1]


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_every_grader_passes_on_the_solution_and_fails_on_the_exercise(path):
    problems = E.audit_graders(path, cell_timeout=900, notebook_timeout=3600)
    assert problems == [], "\n".join(problems)


# --------------------------------------------------------------------------- the CI template for learners' forks
TEMPLATE = ROOT / "templates" / "github-actions" / "exercises.yml"


def _template_steps():
    import yaml

    workflow = yaml.safe_load(TEMPLATE.read_text())
    assert workflow.get("on", workflow.get(True)) is not None  # YAML 1.1 reads the key `on` as True
    (job,) = workflow["jobs"].values()
    return job, [step.get("run", "") for step in job["steps"]]


def test_ci_template_installs_and_runs_what_the_issue_asks():
    job, runs = _template_steps()
    text = "\n".join(runs)
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    assert "-r requirements-dev.txt" in text and "-e ." in text
    order = [next(i for i, r in enumerate(runs) if key in r)
             for key in ("torch==2.13.0", "requirements-dev.txt", "ftcourse fetch-model", "--nbval-lax")]
    assert order == sorted(order)
    assert job["env"]["EXERCISES"] == "exercises/"
    assert "$EXERCISES" in runs[-1]
    reqs = (ROOT / "requirements-dev.txt").read_text() + (ROOT / "requirements.txt").read_text()
    assert "nbval==" in reqs and "pytest==" in reqs and "torch==2.13.0" in reqs


def test_ci_template_is_not_active_in_this_repository():
    assert not (ROOT / ".github" / "workflows" / "exercises.yml").exists()


@pytest.mark.slow
def test_ci_command_is_red_on_the_exercises_and_green_once_solved(tmp_path):
    """The template's last step, run here: it fails on the unsolved exercises and passes on solved ones."""
    import os
    import shutil
    import subprocess
    import sys

    _, runs = _template_steps()
    cmd = runs[-1].replace("python -m", f"{sys.executable} -m")
    unsolved, solved = tmp_path / "unsolved", tmp_path / "solved"
    unsolved.mkdir()
    solved.mkdir()
    shutil.copy(ROOT / "exercises" / "00_warmup.ipynb", unsolved)  # the warm-up is enough (and fast)
    for path in [ROOT / "solutions" / "00_warmup.ipynb"]:  # a learner who solved it: the code without markers
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = "\n".join(line for line in cell.source.split("\n")
                                        if line.strip() not in (E.BEGIN, E.END))
        nbformat.write(nb, solved / path.name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    red = subprocess.run(cmd.replace("$EXERCISES", str(unsolved)), shell=True, cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert red.returncode != 0 and "NotImplementedError" in red.stdout
    green = subprocess.run(cmd.replace("$EXERCISES", str(solved)), shell=True, cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert green.returncode == 0, green.stdout[-3000:]
