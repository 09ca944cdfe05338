"""Notebooks are committed without outputs, valid, and with the kernel the tests run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("lessons", "solutions", "exercises")


def course_notebooks() -> list[Path]:
    found = {p for folder in FOLDERS for p in (ROOT / folder).glob("*.ipynb")}
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    found |= {ROOT / t for t in tracked if not t.startswith("tests/fixtures/")}
    return sorted(found)


def outputs_in(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]


def test_there_are_notebooks():
    assert (ROOT / "lessons" / "00_setup.ipynb") in course_notebooks()


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_without_outputs_and_valid(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert not outputs_in(nb), f"{path.name}: cells {outputs_in(nb)} have outputs; run: nbstripout {path}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"


def test_nbstripout_agrees():
    exe = shutil.which("nbstripout") or str(Path(sys.executable).with_name("nbstripout"))
    paths = [str(p) for p in course_notebooks()]
    proc = subprocess.run([exe, "--verify", "--keep-id", *paths], capture_output=True, text=True)
    assert proc.returncode == 0, f"nbstripout --verify failed:\n{proc.stdout}{proc.stderr}"


def test_the_check_catches_an_output(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    cell.execution_count = 1
    nb.cells.append(cell)
    assert outputs_in(nb) == [0]


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_tables_show_dollar_signs_as_text(path):
    """JupyterLab typesets text between two "$" in a pandas table as LaTeX ("3 readers at $59 and 2
    printers at $129" turns into math). A notebook that imports pandas must switch that off."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "import pandas" not in code:
        return
    assert 'pd.set_option("display.html.use_mathjax", False)' in code, (
        f"{path.name} shows pandas tables: add pd.set_option(\"display.html.use_mathjax\", False) after importing pandas")


def test_pandas_option_really_marks_tables_for_mathjax_to_skip():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"case": ["3 card readers at $59 each and 2 receipt printers at $129 each"]})
    with pd.option_context("display.html.use_mathjax", False):
        html = frame._repr_html_()
    assert "tex2jax_ignore" in html or "mathjax_ignore" in html
