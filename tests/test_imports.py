"""The package's import graph: no module of ``ftcourse`` imports itself back, each one imports alone,
and the model side never imports the classroom (``ftcourse.classroom``).

The graph is read from the source with :mod:`ast`, so it holds every ``import`` and ``from ... import``
anywhere in a module: at the top, inside functions and methods, under ``if``/``try``, relative or
absolute. An import inside a function still counts: it only delays the circle until that function runs.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from pathlib import Path

import pytest

import ftcourse

PACKAGE_DIR = Path(ftcourse.__file__).resolve().parent
ROOT = "ftcourse"
CLASSROOM = f"{ROOT}.classroom"
# modules that are neither side: the package itself and the command line, which dispatches to both
ENTRY_POINTS = {ROOT, f"{ROOT}.__main__"}


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (subpackages included)."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).with_suffix("")
        if "__pycache__" in rel.parts:
            continue
        parts = [ROOT, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _module_files()


def _target(name: str) -> str | None:
    """The package module that importing ``name`` loads: the longest known prefix of it, if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _node_targets(module: str, node: ast.AST) -> set[str]:
    """The package modules one ``import`` or ``from ... import`` statement loads (none for other nodes)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            # `from .x import y` in ftcourse/a.py, and in ftcourse/__init__.py, names ftcourse.x
            is_package = MODULES[module].name == "__init__.py"
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        # `from pkg import sub` loads the submodule pkg.sub when there is one
        names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in MODULES else stem for alias in node.names]
    targets = {_target(name) for name in names}
    return {t for t in targets if t and t != module}


def _import_nodes(module: str, source: str | None = None) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``module`` (of ``source`` when given), at any depth."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def internal_imports(module: str, source: str | None = None) -> set[str]:
    """The package modules ``module`` imports anywhere in its source.

    Importing a submodule runs its package's ``__init__`` first, but that is not counted as an edge;
    naming the package itself (``import ftcourse``, ``from . import __version__``) is.
    """
    return set().union(*(_node_targets(module, node) for node in _import_nodes(module, source)))


def import_graph() -> dict[str, set[str]]:
    return {module: internal_imports(module) for module in MODULES}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, each as a path ``a -> b -> ... -> a``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for comp in components:
        start = min(comp)
        # shortest way back to the start inside the component (breadth first)
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & comp):
                    if w not in previous:
                        previous[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        v = previous[start]
        while v != start:
            path.append(v)
            v = previous[v]
        path.append(start)
        cycles.append(list(reversed(path)))
    return cycles


def in_classroom(module: str) -> bool:
    return module == CLASSROOM or module.startswith(CLASSROOM + ".")


def layering_violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """``(model-side module, classroom module it imports)`` pairs: the layering forbids every one."""
    return [(a, b) for a in sorted(graph) if a not in ENTRY_POINTS and not in_classroom(a)
            for b in sorted(graph[a]) if in_classroom(b)]


def _where(importer: str, imported: str) -> str:
    """The lines of ``importer`` that import ``imported``, for the failure message."""
    path = MODULES[importer].relative_to(PACKAGE_DIR.parent)
    return ", ".join(f"{path}:{node.lineno}" for node in _import_nodes(importer)
                     if imported in _node_targets(importer, node))


# --------------------------------------------------------------------------- the tests
def test_the_graph_sees_every_kind_of_import():
    source = textwrap.dedent("""\
        import json
        from .errors import CourseError
        import ftcourse.stats
        from ftcourse import datasets
        from . import prompts as p

        def later():
            from .classroom.check import expect_true
            if True:
                import ftcourse.cost as c

        class View:
            def method(self):
                from ftcourse.rag import Passage
        """)
    assert internal_imports("ftcourse.ladder", source) == {
        "ftcourse.errors", "ftcourse.stats", "ftcourse.datasets", "ftcourse.prompts", "ftcourse.classroom.check",
        "ftcourse.cost", "ftcourse.rag"}
    assert internal_imports("ftcourse.ladder", "from . import __version__") == {"ftcourse"}
    # inside a subpackage: `.` is the subpackage, `..` the package above it
    assert internal_imports("ftcourse.classroom.quiz", "from ..errors import CourseError\nfrom .check import expect_true\n"
                            "from ..lora import train_lora\nfrom . import progress") == {
        "ftcourse.errors", "ftcourse.classroom.check", "ftcourse.lora", "ftcourse.classroom.progress"}
    assert internal_imports("ftcourse.lora", "from .data import collate") == {"ftcourse.lora.data"}
    graph = import_graph()
    assert "ftcourse.classroom.grading" in graph["ftcourse.__main__"]  # the real package: an import inside a function
    assert set(MODULES) >= {"ftcourse", "ftcourse.classroom", "ftcourse.classroom.quiz", "ftcourse.classroom.progress",
                            "ftcourse.classroom.grading", "ftcourse.lora", "ftcourse.lora.data", "ftcourse.lora.train"}


def test_find_cycles_spells_a_cycle_out():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(find_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_circular_imports_in_the_package():
    graph = import_graph()
    cycles = find_cycles(graph)
    if cycles:
        lines = []
        for cycle in cycles:
            lines.append(" -> ".join(cycle))
            lines += [f"    {a} imports {b} at {_where(a, b)}" for a, b in zip(cycle, cycle[1:], strict=False)]
        pytest.fail("ftcourse has circular imports (an import inside a function counts too). Move what both "
                    "modules need into the module that owns it, or into a small module both import:\n"
                    + "\n".join(lines))


def test_layering_violations_are_found():
    graph = {"ftcourse.chat": {"ftcourse.errors"}, "ftcourse.tools": {"ftcourse.classroom.check", "ftcourse.stats"},
             "ftcourse.lora.lab": {"ftcourse.classroom"}, "ftcourse.classroom.quiz": {"ftcourse.chat"},
             "ftcourse.__main__": {"ftcourse.classroom.grading"}}
    assert layering_violations(graph) == [("ftcourse.lora.lab", "ftcourse.classroom"),
                                          ("ftcourse.tools", "ftcourse.classroom.check")]


def test_the_model_side_never_imports_the_classroom():
    """Models, chat, evals, lora ... work without the course around them; the classroom builds on them."""
    wrong = layering_violations(import_graph())
    if wrong:
        pytest.fail("model-side modules import ftcourse.classroom (an import inside a function counts too). "
                    "Move the classroom part (a widget, a grader check) into ftcourse/classroom/:\n"
                    + "\n".join(f"    {a} imports {b} at {_where(a, b)}" for a, b in wrong))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_on_its_own(module):
    importlib.import_module(module)
