"""Helpers of the browser test (tests/test_browser.py) that need no browser.

They cut a lesson down to its widgets: a notebook that keeps the lesson's own widget cells (its quiz,
and lesson 01's decision tree and diagnosis matching) and none of its model cells, with the imports
those cells need taken from the lesson itself, so the copy follows the lesson when its imports change.
Lesson 05's widgets are fed by model runs; its copy builds them from tiny fixed inputs instead.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
PACKAGE = ROOT / "ftcourse"
OVERRIDES = ROOT / "jupyter" / "overrides.json"

# Cells kept besides the lesson's quiz: a widget call -> the kind of check the browser test makes.
WIDGET_CALLS = {"show_decision_tree(": "decision_tree", "show_diagnosis_quiz(": "diagnosis",
                "show_progress(": "progress"}
# Names the IPython kernel provides without an import.
KERNEL_NAMES = {"display", "get_ipython"}

CHROMIUM_FIX = ("install a Chromium: `apt-get install -y --no-install-recommends chromium` (Debian/Ubuntu, as "
                "root), or `python -m playwright install --with-deps chromium`; FTCOURSE_CHROMIUM=/path/to/chromium "
                "names another one")
PLAYWRIGHT_FIX = "pip install -r requirements-dev.txt (it pins playwright)"


# --------------------------------------------------------------------------- the package, wherever it keeps things
def _subpackages() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())


def course_module(short: str):
    """Import ``ftcourse.<short>``, or ``ftcourse.<subpackage>.<short>`` if the module moved into one."""
    candidates = [f"ftcourse.{short}", *(f"ftcourse.{sub}.{short}" for sub in _subpackages())]
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its own imports is missing
                raise
    raise ModuleNotFoundError(f"no module {short!r} in ftcourse (looked for {', '.join(candidates)})")


def course_attr(name: str, *shorts: str):
    """``name`` from the first module of ``shorts`` that has it (see :func:`course_module`), else from a
    subpackage of ftcourse that exports it."""
    for short in shorts:
        try:
            module = course_module(short)
        except ModuleNotFoundError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    for sub in _subpackages():
        module = importlib.import_module(f"ftcourse.{sub}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"ftcourse has no {name!r} (looked in {', '.join(shorts)} and its subpackages)")


# --------------------------------------------------------------------------- lessons to widget notebooks
def lesson_ids() -> list[str]:
    """The two-digit ids of the lesson notebooks, e.g. ["00", "01", ...]."""
    return sorted(p.name[:2] for p in LESSONS.glob("[0-9][0-9]_*.ipynb"))


def lesson_path(lesson: str) -> Path:
    (path,) = LESSONS.glob(f"{lesson}_*.ipynb")
    return path


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _parse(source: str) -> ast.Module | None:
    """A cell's code as Python (IPython magics and shell lines blanked); None if it still does not parse."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _imports(tree: ast.Module) -> dict[str, str]:
    """name bound -> the import statement that binds it, for the imports at a cell's top level."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                bound = alias.asname or alias.name
                out[bound] = f"from {node.module} import {alias.name}" + (f" as {alias.asname}" if alias.asname
                                                                          else "")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                out[bound] = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
    return out


def _free_names(source: str) -> set[str]:
    """Names a cell reads but neither binds itself nor gets from Python or the kernel."""
    tree = _parse(source)
    if tree is None:
        raise ValueError(f"cannot parse the cell:\n{source}")
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    bound |= set(_imports(tree))
    return read - bound - set(dir(builtins)) - KERNEL_NAMES


def lesson_imports(lesson: str) -> dict[str, str]:
    """Every name the lesson imports at a cell's top level -> its import statement."""
    out = {}
    for cell in json.loads(lesson_path(lesson).read_text(encoding="utf-8"))["cells"]:
        if cell.get("cell_type") == "code" and (tree := _parse(_source(cell))) is not None:
            out.update(_imports(tree))
    return out


def imports_for(lesson: str, sources: list[str]) -> list[str]:
    """The lesson's own import statements for the names ``sources`` read and do not bind themselves."""
    known = lesson_imports(lesson)
    needed = sorted(set().union(*(_free_names(s) for s in sources))) if sources else []
    missing = [n for n in needed if n not in known]
    if missing:
        raise ValueError(f"lesson {lesson}: the widget cells read {', '.join(missing)}, which the lesson never "
                         "imports, so they cannot run without its model cells")
    return sorted({known[n] for n in needed})


def widget_cells(lesson: str) -> list[dict]:
    """The lesson's own widget cells, in order: its quiz and the widget calls of WIDGET_CALLS.

    Each item: ``{"kind": "quiz" | "decision_tree" | "diagnosis" | "progress", "source": ...}``.
    """
    quiz_call = re.compile(r"\bshow_quiz\(\s*['\"]" + re.escape(lesson) + r"['\"]")
    out = []
    for cell in json.loads(lesson_path(lesson).read_text(encoding="utf-8"))["cells"]:
        if cell.get("cell_type") != "code":
            continue
        src = _source(cell)
        if quiz_call.search(src):
            out.append({"kind": "quiz", "source": src})
        else:
            for call, kind in WIDGET_CALLS.items():
                if call in src:
                    out.append({"kind": kind, "source": src})
                    break
    if not any(c["kind"] == "quiz" for c in out):
        raise ValueError(f"lesson {lesson} has no cell calling show_quiz({lesson!r})")
    return out


def lesson05_cells(record_path: Path) -> list[dict]:
    """Lesson 05's three widgets fed with tiny fixed inputs: blind A/B, decision record, break-even."""
    ab = (
        'ab_pairs = blind_pairs(["Is a refund possible after 10 days?", "How many scanners are in stock?",\n'
        '                        "Sort this printer ticket"],\n'
        '                       ["Yes, within 14 days.", "I cannot see the stock.", \'{"category": "hardware"}\'],\n'
        '                       ["No.", "There are 12.", "hardware, normal"], seed=0)\n'
        'ab_view = show_blind_ab(ab_pairs, title="Which answer is better? (browser test)")'
    )
    prefill = {
        "scenario": "Answer shops' refund questions from the current policy sheet.",
        "missing": "facts", "target": 0.9,
        "measured": {"clear prompt": "20 % (9-39 %), n=30", "retrieval": "93 % (79-98 %), n=30"},
        "gap": "retrieval is 3 points above the target", "rung_chosen": "rag",
        "evidence": ["retrieval met the target on the held-out questions"],
        "checklist": [False, True, True, True, True, False],
        "costs": {"data_cost": "none: the policy sheet exists", "staleness": "the sheet changes monthly",
                  "eval_burden": "30 questions re-run after each change"},
        "risks": "an outdated sheet in the store", "monitoring_signal": "share of answers citing the sheet",
        "retraining_trigger": "none: update the store when the sheet changes", "author": "browser test",
        "date": "2025-01-01",
    }
    record = f"form = show_decision_record({prefill!r},\n                            path={str(record_path)!r})"
    explorer = "explorer = break_even_explorer(1.0, 559.0, 2000.0, 0.5)"
    return [{"kind": "abtest", "source": ab}, {"kind": "record", "source": record},
            {"kind": "break_even", "source": explorer}]


def widget_notebook(lesson: str, record_path: Path | None = None) -> tuple[dict, list[str]]:
    """A notebook of the lesson's widgets without its model cells, and the kind of each cell.

    Cell 0 holds the imports (taken from the lesson); the kinds list starts with "imports".
    """
    cells = widget_cells(lesson)
    if lesson == "05":
        cells = lesson05_cells(record_path or Path("decision_record.md")) + cells
    sources = [c["source"] for c in cells]
    first = ("# The lesson's widgets without its model cells (written by tests/test_browser.py)\n"
             + "\n".join(imports_for(lesson, sources)))
    kinds = ["imports", *(c["kind"] for c in cells)]
    nb_cells = [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
                 "source": src} for i, src in enumerate([first, *sources])]
    nb = {"cells": nb_cells,
          "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                      "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    return nb, kinds


# --------------------------------------------------------------------------- JupyterLab and Chromium
def write_lab_settings(settings_dir: Path, extra: dict | None = None) -> list[Path]:
    """Write the course's JupyterLab overrides (jupyter/overrides.json) as user settings in ``settings_dir``.

    ``extra`` adds plugin settings of the test's own ({"plugin-id": {...}}). Returns the files written.
    """
    plugins = json.loads(OVERRIDES.read_text(encoding="utf-8"))
    for plugin, values in (extra or {}).items():
        plugins[plugin] = {**plugins.get(plugin, {}), **values}
    written = []
    for plugin, values in plugins.items():
        package, _, name = plugin.partition(":")
        path = settings_dir / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2), encoding="utf-8")
        written.append(path)
    return written


def chromium_executable() -> str | None:
    """A Chromium on this machine: $FTCOURSE_CHROMIUM, else chromium / chromium-browser on PATH."""
    chosen = os.environ.get("FTCOURSE_CHROMIUM")
    if chosen:
        return chosen
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
