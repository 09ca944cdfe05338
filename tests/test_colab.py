"""The "Open in Colab" path: badges and setup cells follow pyproject's Repository URL
(scripts/sync_colab.py writes them), and the setup cell acts in Colab only."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sync_colab.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("sync_colab", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync_colab = _load_script()
REPO_URL, OWNER, NAME = sync_colab.repository(ROOT)
HOME = f"/content/{NAME}"
LESSONS = sorted((ROOT / "lessons").glob(sync_colab.LESSON_GLOB))
STALE = f"out of date: run `python scripts/sync_colab.py` (it writes the Colab badge and setup cell from {REPO_URL})"


def setup_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if sync_colab.SETUP_TAG in c.get("metadata", {}).get("tags", [])]


# --- the committed files are in line with pyproject.toml --------------------------------------------------

def test_repository_url_is_read_from_pyproject():
    assert REPO_URL.startswith("https://github.com/") and REPO_URL.endswith(f"/{OWNER}/{NAME}")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_opens_in_colab_and_has_one_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert setup_cells(nb) == [1], f"{path.name}: want exactly one colab-setup cell, right after the title; {STALE}"
    cell = nb.cells[1]
    assert cell.cell_type == "code" and cell.source == sync_colab.setup_cell_source(REPO_URL, NAME), STALE
    links = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", nb.cells[0].source)
    assert links == [sync_colab.colab_url(OWNER, NAME, path.name)], f"{path.name}: {links}; {STALE}"
    for other in nb.cells[2:]:
        assert "colab.research.google.com/github/" not in other.source, f"{path.name}: a second Colab link"


def test_readme_rows_link_to_colab():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if re.match(r"^\| \[`\d\d_", line)]
    assert rows, "README.md has no lesson table rows starting with | [`NN_"
    for line in rows:
        stem = re.match(r"^\| \[`(\d\d_\w+)`", line)[1]
        links = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", line)
        assert links == [sync_colab.colab_url(OWNER, NAME, f"{stem}.ipynb")], f"README row {stem}: {links}; {STALE}"
    assert sync_colab.README_BULLET in readme, f"README.md lacks the Google Colab item; {STALE}"


def test_sync_would_change_nothing(capsys):
    assert sync_colab.main(["--root", str(ROOT), "--check"]) == 0, f"{capsys.readouterr().out}{STALE}"


# --- the setup cell, run with a stand-in google.colab ------------------------------------------------------

@pytest.fixture
def sandbox(monkeypatch):
    """Record what the setup cell would do; nothing runs and the disk is not touched."""
    calls: list = []
    state = {"cloned": False}

    def fake_run(args, **kwargs):
        calls.append(("run", list(args), kwargs))
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", str(path))))
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: state["cloned"] if str(path) == HOME else isdir(path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return calls, state


def run_cell(source: str) -> None:
    exec(compile(source, "colab-setup", "exec"), {"__name__": "__main__"})


def test_in_colab_the_cell_clones_installs_and_fetches_in_that_order(sandbox, monkeypatch, capsys):
    calls, _ = sandbox
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    run_cell(sync_colab.setup_cell_source(REPO_URL, NAME))
    runs = [c for c in calls if c[0] == "run"]
    assert [args for _, args, _ in runs] == [
        ["git", "clone", "--depth", "1", REPO_URL, HOME],
        [sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"],
        [sys.executable, "-m", "pip", "install", "-q", "-e", "."],
        [sys.executable, "-m", "ftcourse", "fetch-model"],
    ]
    for _, _, kwargs in runs:
        assert kwargs.get("check") is True and not kwargs.get("shell")
    assert [kwargs.get("cwd") for _, _, kwargs in runs[1:]] == [HOME] * 3   # pip -r and -e . read the clone
    assert calls[-1] == ("chdir", f"{HOME}/lessons")                       # after the installs, as locally
    assert sys.path[0] == HOME
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Colab" in out and HOME in out


def test_a_second_run_in_the_same_session_skips_the_clone(sandbox, monkeypatch):
    calls, state = sandbox
    state["cloned"] = True
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    run_cell(sync_colab.setup_cell_source(REPO_URL, NAME))
    programs = [args[:3] for kind, args, *_ in calls if kind == "run"]
    assert ["git", "clone", "--depth"] not in programs and len(programs) == 3


def test_outside_colab_the_cell_does_nothing_and_prints_nothing(sandbox, monkeypatch, capsys):
    calls, _ = sandbox
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    before = list(sys.path)
    run_cell(sync_colab.setup_cell_source(REPO_URL, NAME))
    assert calls == [] and sys.path == before
    assert capsys.readouterr() == ("", "")


def test_setup_cell_is_short_and_lint_clean(tmp_path):
    source = sync_colab.setup_cell_source(REPO_URL, NAME)
    assert len(source.splitlines()) <= 15, "keep the Colab cell short: learners read it first"
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (make dev-env installs it)")
    cell = tmp_path / "colab_setup.py"
    cell.write_text(source + "\n", encoding="utf-8")
    proc = subprocess.run([ruff, "check", "--config", str(ROOT / "pyproject.toml"), str(cell)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the script: idempotent, and one URL change moves every link ------------------------------------------

@pytest.fixture
def course_copy(tmp_path):
    (tmp_path / "lessons").mkdir()
    for path in LESSONS:
        shutil.copy(path, tmp_path / "lessons" / path.name)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_running_the_script_twice_changes_nothing(course_copy, capsys):
    assert sync_colab.main(["--root", str(course_copy)]) == 0
    first = snapshot(course_copy)
    assert sync_colab.main(["--root", str(course_copy)]) == 0
    assert snapshot(course_copy) == first
    assert sync_colab.main(["--root", str(course_copy), "--check"]) == 0
    for path in sorted((course_copy / "lessons").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert setup_cells(nb) == [1]
        assert nb.cells[0].source.count("colab.research.google.com/github/") == 1
    readme = (course_copy / "README.md").read_text(encoding="utf-8")
    assert readme.count(sync_colab.README_BULLET_START) == 1


def test_a_new_repository_url_replaces_every_link(course_copy, capsys):
    assert sync_colab.main(["--root", str(course_copy)]) == 0
    n_rows = (course_copy / "README.md").read_text(encoding="utf-8").count(f"colab.research.google.com/github/{OWNER}/")
    assert n_rows >= 1
    pyproject = course_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(REPO_URL, "https://github.com/someone/course-fork"))
    before = snapshot(course_copy)
    assert sync_colab.main(["--root", str(course_copy), "--check"]) == 1      # --check writes nothing
    assert snapshot(course_copy) == before
    assert sync_colab.main(["--root", str(course_copy)]) == 0
    for path in sorted((course_copy / "lessons").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert REPO_URL not in text and f"github/{OWNER}/{NAME}/" not in text
        nb = nbformat.read(path, as_version=4)
        assert setup_cells(nb) == [1] and '"https://github.com/someone/course-fork"' in nb.cells[1].source
        assert nb.cells[0].source.count("github/someone/course-fork/blob/main/lessons/") == 1
    readme = (course_copy / "README.md").read_text(encoding="utf-8")
    assert f"github/{OWNER}/{NAME}/" not in readme
    assert readme.count("colab.research.google.com/github/someone/course-fork/") == n_rows


def test_a_url_that_is_not_github_is_refused_with_the_fix(course_copy, capsys):
    pyproject = course_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(REPO_URL, "https://gitlab.com/a/b"))
    assert sync_colab.main(["--root", str(course_copy)]) == 2
    assert "https://github.com/OWNER/REPO" in capsys.readouterr().err
