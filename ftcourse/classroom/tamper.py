"""Find learner code that touches the checker or the grading machinery, by reading syntax trees.

Workshop grading (:mod:`ftcourse.classroom.grading`) calls :func:`protection_of` on each solution notebook
to learn what its grader cells rely on, then :func:`scan_submission` on each submitted notebook.
The scan reads every code cell the learner wrote or changed (course cells left as they were and
intact grader cells are skipped), after IPython's own rewriting of magics, and reports a
:class:`Finding` for code that:

* rebinds a name a grader cell reads and the learner is not asked to write (``expect_function``,
  ``tok``, ``count_tokens``, ``min``), or ``AssertionError``, ``__builtins__``, ``get_ipython``;
* assigns into (or ``setattr``, ``.update``, ``del`` on) ``ftcourse``, ``sys``/``sys.modules``,
  ``builtins``, IPython or the kernel, or into an object a grader cell reads;
* hooks the shell (``get_ipython().set_custom_exc``, ``.events.register``, ``.showtraceback = ...``),
  installs trace functions, or reaches into frames and closures (``sys._getframe``, ``.f_back``,
  ``.__globals__``, ``gc.get_referrers``);
* runs code the scan cannot read (``exec``, ``eval``, ``compile``) or treats the namespace as a
  dictionary (``globals()``).

A finding names its cell and line, and the names it touches, so grading can score 0 exactly the
graders that read them (``names=None``: every grader of the notebook). One kind is only reported:
a top-level rebinding of a name the guard puts back before every grader cell (the checker's
names, builtins the graders read, names an unchanged course cell defines). It is ``undone``: the
grader is scored on the real check, and the instructor still sees the line. The scan reads what the
code says, not what it computes: a name built from strings at run time escapes it, which is why
the grading run also restores the checker inside the kernel (:mod:`ftcourse.classroom.guard`).
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
from dataclasses import dataclass
from pathlib import Path

from .cell_markers import BEGIN, is_grader

CHECK_MODULE = "ftcourse.classroom.check"  # where grader cells import the checker from

# names that no learner cell may rebind, whatever the graders read
ALWAYS = frozenset({"AssertionError", "BaseException", "Exception", "__builtins__", "__import__", "get_ipython"})
# assigning into any of these (or their submodules) reaches the checker or the kernel's error reporting
SENSITIVE_MODULES = ("ftcourse", "builtins", "sys", "IPython", "ipykernel", "jupyter_client", "traitlets", "zmq",
                     "importlib", "math", "numbers", "operator", "functools", "types", "inspect", "gc",
                     "traceback", "typing", "collections", "abc", "ctypes", "threading", "unittest")
FLAGGED_CALLS = {
    "exec": "runs code from a string (`exec`), which this check cannot read",
    "eval": "runs code from a string (`eval`), which this check cannot read",
    "compile": "compiles code from a string (`compile`), which this check cannot read",
    "globals": "handles the notebook's namespace as a dictionary (`globals()`)",
    "sys._getframe": "reaches into running code's frames (`sys._getframe`)",
    "sys._current_frames": "reaches into running code's frames (`sys._current_frames`)",
    "inspect.currentframe": "reaches into running code's frames (`inspect.currentframe`)",
    "inspect.stack": "reaches into running code's frames (`inspect.stack`)",
    "inspect.getouterframes": "reaches into running code's frames (`inspect.getouterframes`)",
    "inspect.trace": "reaches into running code's frames (`inspect.trace`)",
    "sys.settrace": "installs a trace function (`sys.settrace`), which can change running code",
    "sys.setprofile": "installs a profile function (`sys.setprofile`)",
    "threading.settrace": "installs a trace function (`threading.settrace`)",
    "threading.setprofile": "installs a profile function (`threading.setprofile`)",
    "sys.addaudithook": "installs an audit hook (`sys.addaudithook`)",
    "gc.get_objects": "searches the garbage collector's objects (`gc.get_objects`)",
    "gc.get_referrers": "searches the garbage collector's objects (`gc.get_referrers`)",
    "gc.get_referents": "searches the garbage collector's objects (`gc.get_referents`)",
    "importlib.reload": "reloads a module (`importlib.reload`)",
}
INTERNALS = frozenset({"f_back", "f_globals", "f_locals", "f_builtins", "tb_frame", "gi_frame", "cr_frame",
                       "ag_frame", "__globals__", "__closure__", "__code__", "__subclasses__", "__builtins__"})
SAFE_PATHS = ("sys.path", "sys.argv")  # honest notebooks change these; neither reaches the checker
IPYTHON_OK = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})  # what magics compile to
MUTATORS = frozenset({"update", "pop", "popitem", "clear", "setdefault", "__setitem__", "__delitem__",
                      "__setattr__", "__delattr__", "append", "insert", "extend", "remove"})


def normalise(source: str) -> str:
    """A cell's source without trailing spaces, blank lines or Windows line ends."""
    lines = (line.rstrip() for line in source.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def python_source(cell_source: str) -> str:
    """The cell as the kernel compiles it: IPython magics become ``get_ipython().run_line_magic(...)``."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # no IPython here: plain Python cells still parse
        return cell_source
    try:
        return TransformerManager().transform_cell(cell_source)
    except Exception:  # a cell IPython cannot even tokenise does not run either
        return cell_source


def _parse(cell_source: str) -> ast.Module | None:
    try:
        return ast.parse(python_source(cell_source))
    except (SyntaxError, ValueError):  # it cannot run, so it cannot tamper
        return None


# --------------------------------------------------------------------------- what the graders rely on
def _bound_at_top(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    try:
        table = symtable.symtable(ast.unparse(tree), "<cell>", "exec")
    except SyntaxError:
        return names
    for sym in table.get_symbols():
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
            names.add(sym.get_name())
    return names


def _reads(tree: ast.Module) -> set[str]:
    """Names a cell reads from the notebook's namespace (globals of every scope, minus its own)."""
    try:
        top = symtable.symtable(ast.unparse(tree), "<cell>", "exec")
    except SyntaxError:
        return set()
    used: set[str] = set()

    def walk(table, outer: bool) -> None:
        for sym in table.get_symbols():
            if sym.is_referenced() and (outer or sym.is_global()):
                used.add(sym.get_name())
        for child in table.get_children():
            walk(child, False)

    walk(top, True)
    return used - _bound_at_top(tree)


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """``{bound name: (module, attribute)}`` for the imports of a cell (attribute ``""``: the module)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    found[a.asname] = (a.name, "")
                else:
                    found[a.name.split(".")[0]] = (a.name.split(".")[0], "")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                found[a.asname or a.name] = (node.module, a.name)
    return found


def checker_names(check_path: str | Path | None = None) -> frozenset[str]:
    """Public functions and classes of ``ftcourse/classroom/check.py`` (read from its syntax tree)."""
    path = Path(check_path) if check_path else Path(__file__).with_name("check.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
                     and not n.name.startswith("_"))


@dataclass
class Protection:
    """What the grader cells of one solution notebook rely on, read from its syntax trees."""

    grader_reads: dict[str, frozenset[str]]  # grader id -> names it reads from the notebook's namespace
    learner_names: frozenset[str]  # names the learner's solution cells define (free to rebind)
    protected: frozenset[str]  # names a learner cell may not rebind
    course_cells: dict[str, frozenset[str]]  # normalised course cell -> protected names it binds
    course_imports: dict[str, tuple[str, str]]  # name -> (module, attribute) as course cells import it
    check_names: dict[str, str]  # name -> checker attribute ("" = the module) to bind before a grader
    shadows: frozenset[str]  # builtins the graders read that no cell of the solution defines
    checked: frozenset[str]  # grader ids that call the checker (a pass needs the checker's report)

    @property
    def read_by_graders(self) -> frozenset[str]:
        return frozenset().union(*self.grader_reads.values()) if self.grader_reads else frozenset()


def protection_of(nb, checker: frozenset[str] | None = None) -> Protection:
    """Read a solution notebook: what its graders read, what the learner writes, what course cells give."""
    checker = checker_names() if checker is None else checker
    grader_reads: dict[str, frozenset[str]] = {}
    learner: set[str] = set()
    course: list[tuple[str, ast.Module]] = []
    everything_bound: set[str] = set()
    checked: set[str] = set()
    check_names: dict[str, str] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        tree = _parse(cell.source)
        if tree is None:
            continue
        everything_bound |= _bound_at_top(tree)
        if is_grader(cell):
            gid = (cell.get("metadata", {}).get("grader") or {}).get("id", "")
            reads = frozenset(_reads(tree))
            grader_reads[gid] = reads
            imports = _imports(tree)
            if reads & checker or any(m == CHECK_MODULE for m, _ in imports.values()) or "ftcourse" in reads:
                checked.add(gid)
        elif BEGIN in cell.source:
            learner |= _bound_at_top(tree)
        else:
            course.append((normalise(cell.source), tree))
    course_imports: dict[str, tuple[str, str]] = {}
    for _, tree in course:
        for name, (module, attr) in _imports(tree).items():
            course_imports[name] = (module, attr)
            if module == CHECK_MODULE:
                check_names[name] = attr
    reads_all = frozenset().union(*grader_reads.values()) if grader_reads else frozenset()
    for name in reads_all & checker:
        check_names.setdefault(name, name)
    protected = ((reads_all | checker | {n for n in reads_all if n.startswith("expect_")}) - learner) | ALWAYS
    course_cells = {text: frozenset(_bound_at_top(tree) & protected) for text, tree in course}
    shadows = frozenset(n for n in reads_all if hasattr(builtins, n)) - everything_bound
    return Protection(grader_reads, frozenset(learner), frozenset(protected), course_cells, course_imports,
                      check_names, shadows, frozenset(checked))


# --------------------------------------------------------------------------- the scan
@dataclass(frozen=True)
class Finding:
    cell: int
    line: int
    what: str
    names: frozenset[str] | None = None  # grader-read names it touches; None: every grader
    undone: bool = False  # a top-level rebinding that the guard reverses before every grader cell

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.what}"

    def hits(self, reads: frozenset[str]) -> bool:
        """Whether this finding costs a grader that reads ``reads`` its points."""
        return not self.undone and (self.names is None or bool(self.names & reads))


def _snippet(node: ast.AST, limit: int = 70) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Paths:
    """Dotted paths of expressions (``sys.modules['x'].y`` -> ``x.y``), following import aliases."""

    def __init__(self):
        self.aliases: dict[str, str] = {}

    def of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            return "builtins" if node.id == "__builtins__" else node.id
        if isinstance(node, ast.Attribute):
            base = self.of(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):
            base = self.of(node.value)
            if base == "sys.modules" and _const_str(node.slice):
                return _const_str(node.slice)
            return f"{base}[]" if base else None
        if isinstance(node, ast.Call):
            fn = self.of(node.func)
            args = node.args
            if fn == "get_ipython":
                return "get_ipython()"
            if fn in ("globals", "locals") or (fn == "vars" and not args):
                return "globals()"
            if fn in ("__import__", "importlib.import_module", "builtins.__import__") and args and _const_str(args[0]):
                return _const_str(args[0])
            if fn in ("type", "vars") and len(args) == 1:
                return self.of(args[0])
            if fn == "getattr" and len(args) >= 2 and _const_str(args[1]):
                base = self.of(args[0])
                return f"{base}.{_const_str(args[1])}" if base else None
        return None

    def learn(self, tree: ast.Module, sensitive) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    elif a.name.split(".")[0] in self.aliases:
                        del self.aliases[a.name.split(".")[0]]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                path = self.of(node.value)
                if path and path != node.targets[0].id and sensitive(path):
                    self.aliases[node.targets[0].id] = path


class _Scope:
    def __init__(self, kind: str, declared_global: set[str], local: set[str]):
        self.kind, self.declared_global, self.local = kind, declared_global, local


def _function_scope(kind: str, node: ast.AST, params: list[str]) -> _Scope:
    declared, stored = set(), set(params)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Global):
            declared |= set(sub.names)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            stored.add(sub.id)
    return _Scope(kind, declared, stored - declared)


def _params(args: ast.arguments) -> list[str]:
    every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
    return [a.arg for a in every]


class _CellScan(ast.NodeVisitor):
    def __init__(self, cell: int, prot: Protection, paths: _Paths, found: list[Finding], line_offset: int = 0,
                 restored: frozenset[str] = frozenset()):
        self.cell, self.prot, self.paths, self.found = cell, prot, paths, found
        self.restored = restored
        self.scopes: list[_Scope] = []
        self.line_offset = line_offset
        self.statement: ast.AST | None = None  # the innermost statement being read, for messages

    def visit(self, node: ast.AST):
        if isinstance(node, ast.stmt):
            outer, self.statement = self.statement, node
            try:
                return super().visit(node)
            finally:
                self.statement = outer
        return super().visit(node)

    # ---- helpers
    def add(self, node: ast.AST, what: str, names: frozenset[str] | None = None, undone: bool = False) -> None:
        line = getattr(node, "lineno", 1) + self.line_offset
        finding = Finding(self.cell, line, what, names, undone)
        if finding not in self.found:
            self.found.append(finding)

    def _binds_module(self, name: str) -> bool:
        for scope in reversed(self.scopes):
            if scope.kind == "comprehension":
                continue
            return name in scope.declared_global
        return True

    def _is_local(self, name: str) -> bool:
        return any(name in s.local for s in self.scopes)

    def sensitive(self, path: str, node: ast.AST | None = None) -> tuple[str, frozenset[str] | None] | None:
        head = re.split(r"[.\[]", path, maxsplit=1)[0]
        if path.startswith("get_ipython()"):
            return "the IPython shell", None
        if path.startswith("globals()"):
            return "the notebook's namespace", None
        if path.startswith(SAFE_PATHS):
            return None
        for module in SENSITIVE_MODULES:
            if path == module or path.startswith((module + ".", module + "[")):
                return f"`{module}`", None
        if head in self.prot.protected and not self._is_local(head):
            return f"`{head}`, {self._role(head)}", frozenset({head})
        return None

    def _role(self, name: str) -> str:
        if name in self.prot.read_by_graders:
            return "which grader cells read"
        return "a name of the course checker" if name not in ALWAYS else "which the grading run relies on"

    def bind(self, node: ast.AST, name: str) -> None:
        if not self._binds_module(name) or name in self.prot.learner_names:
            return
        # at the top level of a cell, before any grader runs: the guard puts the name back
        undone = name in self.restored and all(s.kind == "comprehension" for s in self.scopes)
        if name in ALWAYS:
            self.add(node, f"rebinds `{name}`", None, undone)
        elif name in self.prot.protected:
            self.add(node, f"rebinds `{name}`, {self._role(name)}", frozenset({name}), undone)

    def store(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Attribute):
            base = self.paths.of(target.value)
            path = f"{base}.{target.attr}" if base else None
        else:
            base = self.paths.of(target.value)
            path = f"{base}[]" if base else None
        hit = self.sensitive(path) if path else None
        if hit:
            self.add(node, f"changes {hit[0]}: `{_snippet(self.statement or node)}`", hit[1])

    # ---- bindings
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self.bind(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self.store(node, node)
        if node.attr in INTERNALS:
            self.add(node, f"reaches into other code's internals (`.{node.attr}`)")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self.store(node, node)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            name = a.asname or a.name.split(".")[0]
            target = (a.name if a.asname else a.name.split(".")[0], "")
            if self.prot.course_imports.get(name) != target:
                self.bind(node, name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            name = a.asname or a.name
            if self.prot.course_imports.get(name) == (node.module, a.name):
                continue
            if node.module == CHECK_MODULE and name == a.name:
                continue  # the checker's own function under its own name: the guard rebinds it anyway
            self.bind(node, name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bind(node, node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bind(node, node.name)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.bind(node, node.target.id)
        self.visit(node.value)

    # ---- scopes
    def _function(self, node, kind: str, params: list[str], body) -> None:
        self.scopes.append(_function_scope(kind, node, params))
        for stmt in body if isinstance(body, list) else [body]:
            self.visit(stmt)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.bind(node, node.name)
        for sub in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if sub is not None:
                self.visit(sub)
        self._function(node, "function", _params(node.args), node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for sub in [*node.args.defaults, *node.args.kw_defaults]:
            if sub is not None:
                self.visit(sub)
        self._function(node, "function", _params(node.args), node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bind(node, node.name)
        for sub in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(sub)
        self._function(node, "class", [], node.body)

    def _comprehension(self, node) -> None:
        self.scopes.append(_Scope("comprehension", set(), {n.id for g in node.generators
                                                           for n in ast.walk(g.target) if isinstance(n, ast.Name)}))
        self.generic_visit(node)
        self.scopes.pop()

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self.visit(node.iter)
        for cond in node.ifs:
            self.visit(cond)

    # ---- calls
    def visit_Call(self, node: ast.Call) -> None:
        fn = self.paths.of(node.func) or ""
        args = node.args
        if fn in ("setattr", "delattr", "object.__setattr__", "object.__delattr__", "type.__setattr__") and args:
            base = self.paths.of(args[0])
            attr = _const_str(args[1]) if len(args) > 1 else None
            hit = self.sensitive(f"{base}.{attr or '?'}") if base else None
            if hit:
                self.add(node, f"changes {hit[0]}: `{_snippet(node)}`", hit[1])
        elif fn in ("__import__", "importlib.import_module", "builtins.__import__") and args and not _const_str(args[0]):
            self.add(node, f"imports a module whose name is computed at run time: `{_snippet(node)}`")
        elif fn in FLAGGED_CALLS and not (fn == "globals" and args):
            self.add(node, FLAGGED_CALLS[fn])
        elif fn == "vars" and not args:
            self.add(node, FLAGGED_CALLS["globals"].replace("globals()", "vars()"))
        elif fn.startswith("get_ipython()."):
            method = fn.split(".")[1]
            if method in ("run_line_magic", "run_cell_magic"):
                self._magic(node, node.lineno if method == "run_cell_magic" else node.lineno - 1)
            elif method not in IPYTHON_OK:
                self.add(node, f"changes the IPython shell: `{_snippet(node)}`")
        elif fn.startswith(("ctypes", "unittest.mock", "mock.patch")):
            self.add(node, f"patches the running interpreter: `{_snippet(node)}`")
        elif "." in fn and fn.rsplit(".", 1)[1] in MUTATORS:
            hit = self.sensitive(fn.rsplit(".", 1)[0])
            if hit:
                self.add(node, f"changes {hit[0]}: `{_snippet(node)}`", hit[1])
        self.generic_visit(node)

    def _magic(self, node: ast.Call, line_offset: int) -> None:
        """``%time expr`` and ``%%capture`` bodies are code too: scan their text."""
        for arg in node.args[1:]:
            text = _const_str(arg)
            if not text:
                continue
            tree = _parse(text)
            if tree is not None:
                self.paths.learn(tree, lambda p: self.sensitive(p) is not None)
                inner = _CellScan(self.cell, self.prot, self.paths, self.found, line_offset, self.restored)
                inner.visit(tree)


def scan_submission(nb, prot: Protection, skip: set[int] = frozenset()) -> list[Finding]:
    """Findings in the code cells of ``nb`` that the learner wrote or changed.

    ``skip``: indices of intact grader cells. A cell whose source is exactly a course cell of the
    solution notebook (ignoring blank lines and trailing spaces) is trusted and not scanned.
    """
    paths = _Paths()
    trees: list[tuple[int, ast.Module]] = []
    restored = set(prot.check_names) | set(prot.shadows) | {"AssertionError", "__builtins__"}
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or i in skip:
            continue
        tree = _parse(cell.get("source", ""))
        if tree is None:
            continue
        probe = _CellScan(i, prot, paths, [])
        paths.learn(tree, lambda p, probe=probe: probe.sensitive(p) is not None)
        course = prot.course_cells.get(normalise(cell.get("source", "")))
        if course is None:
            trees.append((i, tree))
        else:
            restored |= course  # the guard saves these after the course cell runs, and restores them
    found: list[Finding] = []
    for i, tree in trees:
        _CellScan(i, prot, paths, found, restored=frozenset(restored)).visit(tree)
    return found
