"""Grading a submission that tries to talk itself into full marks (issue 14).

Three layers, each tested on its own with a toy exercise (no model):

* the syntax-tree scan (:mod:`ftcourse.classroom.tamper`): which learner code is flagged, and which is not;
* the kernel guard (:mod:`ftcourse.classroom.guard`): with the scan out of the way, every trick still fails
  at run time, because the grader reaches a pristine checker that must report its own pass;
* the grading run (:func:`ftcourse.classroom.grading.grade_folder`): tricks score 0 and are named in the
  gradebook, writes into ``--source`` or another learner's folder are reported as errors.

The same tricks on the real warm-up are the cheating learners of ``tests/fixtures/submissions``
(``tests/test_grading.py``, slow).
"""

import csv
import os
from argparse import Namespace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ftcourse.classroom import grading as G
from ftcourse.classroom.cell_markers import new_grader_cell
from ftcourse.classroom.check import CheckFailed, expect_equal, expect_function
from ftcourse.classroom.exercises import make_exercise
from ftcourse.classroom.tamper import Finding, protection_of, scan_submission

COURSE = "from ftcourse.classroom.check import expect_function\n\nscale = 2"
DOUBLE = "def double(x):\n    ### BEGIN SOLUTION\n    return scale * x\n    ### END SOLUTION"
HALF = "def half(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION"
SIZE = "def size(items):\n    ### BEGIN SOLUTION\n    return len(items)\n    ### END SOLUTION"
G_DOUBLE = "expect_function(double, [((x,), scale * x) for x in (2, 0)], what='double', hint='multiply by scale')"
G_HALF = "from ftcourse.classroom.check import expect_function\n\nexpect_function(half, [((4,), 2.0)], what='half')"
G_SIZE = "assert size([1, -2, 3]) == abs(-3), 'size counts the items'"  # a bare assert, no checker
GRADER_AT = {"toy-double": 3, "toy-half": 5, "toy-size": 7}
WRONG_DOUBLE = "def double(x):\n    return 0"
WRONG_HALF = "def half(x):\n    return 0"
WRONG_SIZE = "def size(items):\n    return 0"


def _solution():
    return new_notebook(cells=[
        new_markdown_cell("# Toy exercise with a course cell"), new_code_cell(COURSE),
        new_code_cell(DOUBLE), new_grader_cell(G_DOUBLE, "toy-double", 2),
        new_code_cell(HALF), new_grader_cell(G_HALF, "toy-half", 1),
        new_code_cell(SIZE), new_grader_cell(G_SIZE, "toy-size", 1),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _solved(src):
    return "\n".join(line for line in src.split("\n") if "### " not in line)


def _notebook(double=WRONG_DOUBLE, half=WRONG_HALF, size=WRONG_SIZE, before_double=None):
    """The exercise with the learner's code; ``before_double`` is an extra cell after the course cell."""
    nb = make_exercise(_solution(), "02_guard.ipynb")
    nb.cells[2].source, nb.cells[4].source, nb.cells[6].source = double, half, size
    if before_double is not None:
        nb.cells.insert(2, new_code_cell(before_double))
    return nb


GOOD = {"double": _solved(DOUBLE), "half": _solved(HALF), "size": _solved(SIZE)}


pytestmark = pytest.mark.usefixtures("package_copy")   # conftest: grade against a copy of the package


@pytest.fixture(scope="module")
def protection():
    return protection_of(_solution())


# --------------------------------------------------------------------------- what the graders rely on
def test_protection_reads_the_solution(protection):
    p = protection
    assert p.grader_reads["toy-double"] == {"expect_function", "double", "scale"}
    assert p.grader_reads["toy-half"] == {"half"}  # it imports the checker itself
    assert p.grader_reads["toy-size"] == {"size", "abs"}
    assert p.learner_names == {"double", "half", "size"}
    assert {"expect_function", "scale", "abs", "AssertionError", "expect_equal"} <= p.protected
    assert not p.protected & p.learner_names
    assert p.check_names == {"expect_function": "expect_function"}
    assert p.shadows == {"abs"}
    assert p.checked == {"toy-double", "toy-half"}  # toy-size is a bare assert
    assert p.course_cells == {G.normalise(COURSE): frozenset({"expect_function", "scale"})}


# --------------------------------------------------------------------------- the scan
def _scan(protection, source, **where):
    nb = _notebook(double=source, **where)
    skip = {i for i, c in enumerate(nb.cells) if c.metadata.get("grader")}
    return scan_submission(nb, protection, skip=skip)


FLAGGED = [  # (learner code in the double cell, words in the finding, graders it costs)
    ("def expect_function(*a, **k):\n    pass", "rebinds `expect_function`, which grader cells read", "undone"),
    ("import ftcourse.classroom.check\nftcourse.classroom.check.expect_function = lambda *a, **k: None",
     "changes `ftcourse`: `ftcourse.classroom.check.expect_function = lambda *a, **k: None`", "all"),
    ("import sys\nsys.modules['ftcourse.classroom.check'].expect_function = print", "changes `ftcourse`", "all"),
    ("import sys\nsys.modules.pop('ftcourse.classroom.check')", "changes `sys`", "all"),
    ("import builtins\nbuiltins.AssertionError = Warning", "`builtins.AssertionError = Warning`", "all"),
    ("import builtins as b\nsetattr(b, 'abs', lambda x: 3)", "changes `builtins`", "all"),
    ("__builtins__.abs = lambda x: 0", "changes `builtins`", "all"),
    ("AssertionError = Warning", "rebinds `AssertionError`", "undone"),
    ("abs = lambda x: 0", "rebinds `abs`, which grader cells read", "undone"),
    ("scale = 0", "rebinds `scale`, which grader cells read", "undone"),
    ("def reset():\n    global scale\n    scale = 0", "rebinds `scale`", {"toy-double"}),  # may run mid-grader
    ("def double(x):\n    global abs\n    abs = lambda y: 0\n    return 0", "rebinds `abs`", {"toy-size"}),
    ("[scale := 0 for _ in range(1)]", "rebinds `scale`", "undone"),
    ("%time scale = 0", "rebinds `scale`", "undone"),
    ("%%capture\nexpect_function = print", "rebinds `expect_function`", "undone"),
    ("from ftcourse.classroom.check import expect_true as expect_function", "rebinds `expect_function`", "undone"),
    ("get_ipython = print", "rebinds `get_ipython`", "all"),
    ("get_ipython().set_custom_exc((Exception,), print)", "changes the IPython shell", "all"),
    ("shell = get_ipython()\nshell.showtraceback = print", "changes the IPython shell: `shell.showtraceback = print`",
     "all"),
    ("get_ipython().events.register('post_run_cell', print)", "changes the IPython shell", "all"),
    ("get_ipython().ast_transformers.append(None)", "changes the IPython shell", "all"),
    ("type(get_ipython())._showtraceback = print", "changes the IPython shell", "all"),
    ("import sys\nsys.excepthook = print", "changes `sys`", "all"),
    ("import math\nmath.isclose = lambda *a, **k: True", "changes `math`", "all"),
    ("exec('scale = 0')", "runs code from a string (`exec`)", "all"),
    ("globals()['scale'] = 0", "the notebook's namespace", "all"),
    ("import sys\nframe = sys._getframe(0)", "frames (`sys._getframe`)", "all"),
    ("secret = expect_function.__globals__", "internals (`.__globals__`)", "all"),
    ("import sys\nsys.settrace(print)", "trace function", "all"),
    ("checker = __import__('ftcourse' + '.check')", "computed at run time", "all"),
    ("from unittest import mock\nmock.patch('ftcourse.classroom.check.expect_function').start()", "patches", "all"),
    ("import importlib\nimport ftcourse.classroom.check\nimportlib.reload(ftcourse.classroom.check)", "reloads a module", "all"),
]


@pytest.mark.parametrize("source, words, costs", FLAGGED, ids=[f[1][:40] for f in FLAGGED])
def test_scan_flags(protection, source, words, costs):
    found = _scan(protection, source)
    assert any(words in str(f) for f in found), found
    (f,) = [f for f in found if words in str(f)][:1]
    assert f.cell == 2 and str(f).startswith("cell 2, line ")
    hit = {gid for gid, reads in protection.grader_reads.items() if f.hits(reads)}
    assert f.undone == (costs == "undone")  # a top-level rebinding the guard reverses costs nothing
    if costs == "all":
        costs = {"toy-double", "toy-half", "toy-size"}
    assert hit == (set() if costs == "undone" else costs)


HONEST = [
    GOOD["double"],
    "from ftcourse.classroom.check import expect_function\n\n" + GOOD["double"],  # re-imported under its own name
    "def double(x):\n    scale = 3  # a local, not the course's scale\n    return 2 * x",
    "def double(scale):\n    scale.value = 1\n    return scale",
    "import sys\n\nsys.path.append('..')\n" + GOOD["double"],
    "import os\n\nos.environ['TOKENIZERS_PARALLELISM'] = 'false'\n" + GOOD["double"],
    "values = [scale for scale in range(3)]\nvalues[0] = 5\n" + GOOD["double"],
    "class Box:\n    expect_function = None\n\n\n" + GOOD["double"],
    "%%time\n" + GOOD["double"],
    "double = lambda x: 2 * x\ndouble.__doc__ = 'twice x'",
    "for i in range(3):\n    print(i)\n" + GOOD["double"],
    "def double(x)\n    return 2 * x",  # a syntax error cannot run, so it cannot tamper
]


@pytest.mark.parametrize("source", HONEST)
def test_scan_leaves_honest_code_alone(protection, source):
    assert _scan(protection, source) == []


def test_unchanged_course_cells_are_trusted_and_changed_ones_are_read(protection):
    nb = _notebook(double=GOOD["double"])
    assert scan_submission(nb, protection) == []  # the course cell binds scale and expect_function: fine
    nb.cells[1].source = COURSE + "\nprint(scale)"
    (f,) = scan_submission(nb, protection)  # the learner's version of it binds them too
    assert f.cell == 1 and "rebinds `scale`" in f.what
    assert not f.undone  # the course's scale is never saved, so the guard cannot put it back


def test_intact_graders_are_skipped_but_other_cells_are_not(protection):
    nb = _notebook(double=GOOD["double"])
    nb.cells.append(new_grader_cell("scale = 0", "not-a-grader", 1))  # grader metadata does not make a cell trusted
    found = scan_submission(nb, protection, skip={3, 5, 7})
    assert [f.cell for f in found] == [len(nb.cells) - 1]


def test_finding_text_and_reach():
    f = Finding(4, 2, "rebinds `scale`", frozenset({"scale"}))
    assert str(f) == "cell 4, line 2: rebinds `scale`"
    assert f.hits(frozenset({"scale", "x"})) and not f.hits(frozenset({"x"}))
    assert Finding(1, 1, "changes `sys`").hits(frozenset())


# --------------------------------------------------------------------------- the checker compares plain data
class Anything:
    def __eq__(self, other):
        return True


def test_checker_is_not_fooled_by_an_object_equal_to_everything():
    with pytest.raises(CheckFailed, match="got: <"):
        expect_equal(Anything(), 4)
    with pytest.raises(CheckFailed):
        expect_function(lambda x: Anything(), [((1,), [1, 2])])
    with pytest.raises(CheckFailed):
        expect_function(lambda x: [Anything()], [((1,), [1])])


def test_checker_still_accepts_plain_values_in_other_clothes():
    class Items(list):
        pass

    expect_equal(Items([1, 2]), [1, 2])
    expect_function(lambda x: x + 0.0, [((2,), 2)])
    expect_function(lambda x: float(x) + 1e-12, [((2,), 2.0)])
    expect_equal(True, 1)
    np = pytest.importorskip("numpy")
    expect_equal(np.int64(32), 32)
    expect_function(lambda: np.float32(0.5), [((), 0.5)])
    with pytest.raises(CheckFailed):
        expect_equal([1, 2], (1, 2))  # as before: a list is not a tuple


# --------------------------------------------------------------------------- the kernel guard, on its own
TRICKS = {  # name: (cells the learner wrote, the grader it cheats)
    "shadowed checker": ({"double": WRONG_DOUBLE + "\n\ndef expect_function(*a, **k):\n    pass"}, "toy-double"),
    "patched module": ({"double": "import sys\nimport ftcourse.classroom.check\n\n"
                                  "sys.modules['ftcourse.classroom.check'].expect_function = lambda *a, **k: None\n"
                                  "expect_function = ftcourse.classroom.check.expect_function\n" + WRONG_DOUBLE}, "toy-double"),
    "patched module, imported in the grader": ({"half": "import ftcourse.classroom.check\n\n"
                                                        "ftcourse.classroom.check.expect_function = lambda *a, **k: None\n"
                                                        + WRONG_HALF}, "toy-half"),
    "custom exception handler": ({"double": WRONG_DOUBLE + "\nget_ipython().set_custom_exc((Exception,), "
                                                           "lambda *a, **k: None)"}, "toy-double"),
    "silent showtraceback": ({"double": WRONG_DOUBLE + "\nshell = get_ipython()\n"
                                                       "shell.showtraceback = lambda *a, **k: None\n"
                                                       "shell._showtraceback = lambda *a, **k: None"}, "toy-double"),
    "silent showtraceback on the class": ({"size": WRONG_SIZE + "\ntype(get_ipython())._showtraceback = "
                                                                "lambda *a, **k: None"}, "toy-size"),
    "post_run_cell clears the error": ({"size": WRONG_SIZE + "\nfrom IPython.display import clear_output\n\n"
                                                             "def forget(result):\n    result.error_in_exec = None\n"
                                                             "    clear_output()\n\n"
                                                             "get_ipython().events.register('post_run_cell', forget)"},
                                       "toy-size"),
    "AST transformer empties the grader": ({"size": WRONG_SIZE + "\nimport ast\n\nclass Empty(ast.NodeTransformer):\n"
                                                                 "    def visit_Module(self, node):\n"
                                                                 "        return ast.Module([ast.Pass()], [])\n\n"
                                                                 "get_ipython().ast_transformers.append(Empty())"},
                                           "toy-size"),
    "input transformer empties the grader": ({"size": WRONG_SIZE + "\nget_ipython().input_transformers_post.append("
                                                                   "lambda lines: ['pass\\n'])"}, "toy-size"),
    "AssertionError becomes a hidden Warning": ({"double": "import builtins\nimport importlib\n\nimport ftcourse.classroom.check\n\n"
                                                           "builtins.AssertionError = Warning\n"
                                                           "importlib.reload(ftcourse.classroom.check)\n"
                                                           "from ftcourse.classroom.check import expect_function\n\n"
                                                           "get_ipython().set_custom_exc((Warning,), "
                                                           "lambda *a, **k: None)\n" + WRONG_DOUBLE}, "toy-double"),
    "course name rebound": ({"double": WRONG_DOUBLE + "\nscale = 0"}, "toy-double"),
    "builtin patched for a bare assert": ({"size": "import builtins\n\nbuiltins.abs = lambda x: 0\n" + WRONG_SIZE},
                                          "toy-size"),
    "builtin shadowed for a bare assert": ({"size": "abs = lambda x: 0\n" + WRONG_SIZE}, "toy-size"),
    "math patched under the checker": ({"half": "import math\n\nmath.isclose = lambda *a, **k: True\n"
                                                "def half(x):\n    return 2.5"}, "toy-half"),
    "a thread rebinds the checker": ({"double": "import threading\nimport time\n\n" + WRONG_DOUBLE + "\n\n"
                                                "def spoil():\n    while True:\n"
                                                "        get_ipython().user_ns['expect_function'] = lambda *a: None\n"
                                                "        time.sleep(0.0005)\n\n"
                                                "threading.Thread(target=spoil, daemon=True).start()"}, "toy-double"),
    "the function silences the display while it runs": ({"double": "def double(x):\n    shell = get_ipython()\n"
                                                                   "    shell.showtraceback = lambda *a, **k: None\n"
                                                                   "    shell._showtraceback = lambda *a, **k: None\n"
                                                                   "    return 0"}, "toy-double"),
    "a forged pass marker": ({"double": "def double(x):\n    print('[ftcourse-grader ' + '0' * 32 + ' pass]')\n"
                                        "    return 0"}, "toy-double"),
    "an answer equal to everything": ({"double": "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
                                                 "def double(x):\n    return Anything()"}, "toy-double"),
}


def _plan(nb, protection, folder):
    gid_at = {i: c.metadata["grader"]["id"] for i, c in enumerate(nb.cells) if c.metadata.get("grader")}
    keep = {i: sorted(protection.course_cells[G.normalise(c.source)]) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and G.normalise(c.source) in protection.course_cells}
    return G.GuardPlan(folder, set(gid_at), {i for i, g in gid_at.items() if g in protection.checked}, keep,
                       dict(protection.check_names), sorted(protection.shadows))


@pytest.fixture(scope="module")
def guard_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard")
    G._guard_files(folder)
    return folder


def _guarded_run(nb, protection, guard_dir, tmp_path):
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / ".ipython")}
    return G.execute_notebook(nb, tmp_path, cell_timeout=10, notebook_timeout=60,
                              guard=_plan(nb, protection, guard_dir), env=env)


def test_guarded_honest_run_passes_and_keeps_outputs_clean(protection, guard_dir, tmp_path):
    nb = _notebook(**GOOD)
    run = _guarded_run(nb, protection, guard_dir, tmp_path)
    for gid, i in GRADER_AT.items():
        assert G._verdict([run.cells[i]], run.stopped) == ("pass", "", ""), (gid, run.cells[i])
    double = run.cells[GRADER_AT["toy-double"]]
    assert (double.passes, double.fails, double.reply) == (1, 0, "ok")
    text = "".join(o.get("text", "") for o in nb.cells[GRADER_AT["toy-double"]].outputs)
    assert text == "\u2713 double: 2 cases\n"  # the checker's report is taken out of the executed copy


@pytest.mark.parametrize("trick", list(TRICKS))
def test_guard_defeats_the_trick_without_the_scan(protection, guard_dir, tmp_path, trick):
    cells, gid = TRICKS[trick]
    nb = _notebook(**{**{"double": WRONG_DOUBLE, "half": WRONG_HALF, "size": WRONG_SIZE}, **cells})
    run = _guarded_run(nb, protection, guard_dir, tmp_path)
    status, message, tampering = G._verdict([run.cells[GRADER_AT[gid]]], run.stopped)
    assert status in ("fail", "not run"), (trick, run.cells[GRADER_AT[gid]])
    assert message or tampering
    assert not run.stopped, run.stopped  # the trick did not take the kernel down either


def test_guard_reports_when_it_cannot_run(protection, guard_dir, tmp_path):
    nb = _notebook(double="import sys\n\ndel sys.modules['_ftcourse_grading_state']\n" + GOOD["double"],
                   half=GOOD["half"], size=GOOD["size"])
    run = _guarded_run(nb, protection, guard_dir, tmp_path)
    status, _, tampering = G._verdict([run.cells[GRADER_AT["toy-double"]]], run.stopped)
    assert status == "fail" and "could not restore the checker" in tampering and "snapshot" in tampering


# --------------------------------------------------------------------------- the whole grading run
def _book(out):
    with open(out / "gradebook.csv", newline="") as f:
        return {row["learner"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, package_copy):
    root = tmp_path_factory.mktemp("run")
    source = root / "solutions"
    source.mkdir()
    nbformat.write(_solution(), source / "02_guard.ipynb")
    subs = root / "submissions"
    notebooks = {
        "good": _notebook(**GOOD),
        "fair": _notebook(double="from ftcourse.classroom.check import expect_function\n\n" + GOOD["double"],
                          half=GOOD["half"], size="import sys\n\nsys.path.append('..')\n" + GOOD["size"]),
        "shadow": _notebook(double=TRICKS["shadowed checker"][0]["double"], half=GOOD["half"], size=GOOD["size"]),
        "patch": _notebook(double="import ftcourse.classroom.check\n\nftcourse.classroom.check.expect_function = lambda *a, **k: None\n"
                                  "expect_function = ftcourse.classroom.check.expect_function\n" + WRONG_DOUBLE),
        "rebind": _notebook(before_double="scale = 0  # in a later cell than the course's", half=GOOD["half"]),
        "builtin": _notebook(double=GOOD["double"], half=GOOD["half"],
                             size=TRICKS["builtin patched for a bare assert"][0]["size"]),
        "sabotage": _notebook(double=WRONG_DOUBLE + f"\n\nopen({str(subs / 'zoe' / '02_guard.ipynb')!r}, 'w')"
                                                    ".write('{}')"),
        "editor": _notebook(double=WRONG_DOUBLE + f"\n\nwith open({str(source / '02_guard.ipynb')!r}, 'a') as f:\n"
                                                  "    f.write(' ')"),
        "zoe": _notebook(**GOOD),
    }
    for learner, nb in notebooks.items():
        (subs / learner).mkdir(parents=True)
        nbformat.write(nb, subs / learner / "02_guard.ipynb")
    out = root / "out"
    args = Namespace(submissions=str(subs), out=str(out), source=str(source), cell_timeout=10,
                     notebook_timeout=60)
    code = G.cli_grade(args)
    return {"code": code, "book": _book(out), "out": out, "subs": subs, "source": source}


def test_honest_learners_keep_full_marks(graded):
    for learner in ("good", "fair", "zoe"):  # zoe's file was overwritten on disk after it was read
        row = graded["book"][learner]
        assert (row["points"], row["problems"]) == ("4", ""), (learner, row)


@pytest.mark.parametrize("learner, scores, reason", [
    ("shadow", ("2", "0", "1", "1"),
     "tampering undone before grading: cell 2, line 4: rebinds `expect_function`, which grader cells read"),
    ("patch", ("0", "tampered", "tampered", "tampered"),
     "tampering in cell 2, line 3: changes `ftcourse`: `ftcourse.classroom.check.expect_function = lambda"),
    ("rebind", ("1", "0", "1", "0"), "tampering undone before grading: cell 2, line 1: rebinds `scale`"),
    ("builtin", ("0", "tampered", "tampered", "tampered"), "`builtins.abs = lambda x: 0`"),
])
def test_tricks_score_zero_and_are_named(graded, learner, scores, reason):
    row = graded["book"][learner]
    assert (row["points"], row["toy-double"], row["toy-half"], row["toy-size"]) == scores
    assert reason in row["problems"]
    feedback = (graded["out"] / "feedback" / f"{learner}.md").read_text()
    if "tampered" in scores:  # scored 0 whatever the check said; the feedback shows what it said
        assert "tampered, 0 / " in feedback and "The check itself: fail" in feedback
    else:  # the guard put the name back, so the real check ran and failed the wrong answer
        assert "- **toy-double**: fail, 0 / 2 points" in feedback and "double(2): expected 4" in feedback


def test_writes_into_other_folders_are_errors(graded):
    assert graded["code"] == 2
    sabotage, editor = graded["book"]["sabotage"], graded["book"]["editor"]
    assert sabotage["problems"].startswith("ERROR: while this notebook ran, files it must not touch changed: "
                                           "submissions/zoe/02_guard.ipynb (changed)")
    assert "solutions/02_guard.ipynb (changed)" in editor["problems"]
    for row in (sabotage, editor):
        assert (row["points"], row["toy-double"], row["toy-half"], row["toy-size"]) == ("0",) + ("tampered",) * 3
    assert (graded["subs"] / "zoe" / "02_guard.ipynb").read_text() == "{}"  # reported, not repaired


def test_each_run_gets_a_scratch_folder_with_only_its_notebook(tmp_path):
    source = tmp_path / "solutions"
    source.mkdir()
    nbformat.write(_solution(), source / "02_guard.ipynb")
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    nbformat.write(_notebook(double="import os\n\nprint(sorted(os.listdir('.')))\n" + GOOD["double"],
                             half=GOOD["half"], size=GOOD["size"]), subs / "ann" / "02_guard.ipynb")
    (subs / "ann" / "notes.txt").write_text("not copied")
    out = tmp_path / "out"
    (grade,) = G.grade_folder(subs, out=out, source=source, cell_timeout=10, notebook_timeout=60, verbose=False)
    assert grade.earned == 4
    nb = nbformat.read(out / "executed" / "ann" / "02_guard.ipynb", as_version=4)
    assert "['02_guard.ipynb']" in "".join(o.get("text", "") for o in nb.cells[2].outputs)


def test_digests_see_changes_and_skip_bytecode(tmp_path):
    d = G._Digests()
    (tmp_path / "a.txt").write_text("one")
    before = d.snapshot({"x": tmp_path})
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"\0")
    assert G.changed_files(before, d.snapshot({"x": tmp_path})) == []
    (tmp_path / "a.txt").write_text("two")
    (tmp_path / "b.txt").write_text("new")
    assert G.changed_files(before, d.snapshot({"x": tmp_path})) == ["x/a.txt (changed)", "x/b.txt (added)"]
    os.remove(tmp_path / "a.txt")
    assert G.changed_files(before, d.snapshot({"x": tmp_path})) == ["x/a.txt (removed)", "x/b.txt (added)"]


def test_guard_files_match_the_package(guard_dir):
    for name in ("guard.py", "check.py"):
        assert (guard_dir / name).read_bytes() == (Path(G.__file__).parent / name).read_bytes()


def test_a_write_into_the_package_is_an_error(tmp_path, package_copy):
    source = tmp_path / "solutions"
    source.mkdir()
    nbformat.write(_solution(), source / "02_guard.ipynb")
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    target = package_copy / "chat.py"
    nbformat.write(_notebook(double=GOOD["double"] + f"\n\nwith open({str(target)!r}, 'a') as f:\n    f.write('#')",
                             half=GOOD["half"], size=GOOD["size"]), subs / "ann" / "02_guard.ipynb")
    (grade,) = G.grade_folder(subs, out=tmp_path / "out", source=source, cell_timeout=10, notebook_timeout=60,
                              verbose=False)
    assert grade.changed == ["ftcourse/chat.py (changed)"] and grade.earned == 0


def test_a_kernel_the_guard_cannot_prepare_grades_nothing(protection, tmp_path):
    nb = _notebook(**GOOD)
    empty = tmp_path / "no-guard-here"
    empty.mkdir()
    run = _guarded_run(nb, protection, empty, tmp_path)
    assert "could not prepare the kernel" in run.stopped
    assert {r.status for r in run.cells.values()} == {"not run"}
