"""The grading run's side inside a learner's kernel: snapshot, restore, and a checker that reports.

Workshop grading (:mod:`ftcourse.classroom.grading`) runs each submission in a kernel of its own. Learner
code runs in that kernel too, so it can rebind ``expect_function``, patch ``ftcourse.classroom.check``,
swap ``builtins.AssertionError`` or hook IPython's error display. This module undoes that before
every grader cell. The grading run loads it **from its file**, under a private name, in a request
that is not part of the notebook: an empty, silent cell whose ``user_expressions`` calls one
function here. That path skips the notebook's input and AST transformers and its history, and
the function's return value (with a token from the request) tells the grading run it really ran.

* :func:`install` runs once, before the first cell, when no learner code has run yet. It takes a
  snapshot: the ``builtins`` module, a few ``sys`` hooks, the IPython shell's and kernel's methods,
  hooks and transformer lists, and the classes behind them. The snapshot lives in
  ``sys.modules[STATE]``.
* :func:`keep` runs after a course cell that the learner left as it was; it saves the names that
  cell binds and the grader cells read (``tok``, ``count_tokens``, ...).
* :func:`arm` runs before each grader cell. It puts the snapshot back, restores the kept names,
  drops learner names that shadow a builtin a grader reads, and loads a **pristine**
  ``ftcourse.classroom.check`` from its file (a fresh module each time: learner code cannot have
  touched it). It installs that module as ``sys.modules["ftcourse.classroom.check"]`` and binds the
  grader cells' checker names to it in the notebook's namespace.

Each public function of the pristine checker reports on the kernel's standard output, as it
returns or raises, a marker ``[ftcourse-grader <nonce> pass|fail]``. The nonce is fresh for each
grader cell and travels only in the hidden request. The grading process reads the raw messages
the kernel sent for the grader cell: a grader passes only when the cell ended without an error
*and* the checker reported at least one pass and no fail. Learner code can hide an error display
or drop a marker, which only costs points; to forge a pass it would need the nonce and a way to
stop the real check from failing, which takes introspection that the syntax-tree scan of
:mod:`ftcourse.classroom.tamper` flags.

This is a defence inside one Python process, not a sandbox: code that digs through frames or the
garbage collector can still get around it. Grade untrusted submissions in a container
(``docs/quizzes-and-grading.md``). Standard library only: the kernel loads this file by path.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
import types

STATE = "_ftcourse_grading_state"
CHECK_MODULE = "ftcourse.classroom.check"  # where grader cells import the checker from
MARKER = "[ftcourse-grader {nonce} {kind}]"

# objects of the shell whose identity must not change; the methods of these and of the kernel are
# also checked for per-instance overrides (``shell.showtraceback = lambda *a: None``)
_SHELL_OBJECTS = ("displayhook", "display_pub", "display_trap", "events", "InteractiveTB", "SyntaxTB",
                  "compile", "builtin_trap", "input_transformer_manager", "user_module", "user_ns",
                  "custom_exceptions", "kernel")
_SHELL_LISTS = ("ast_transformers", "input_transformers_post")
_MANAGER_LISTS = ("cleanup_transforms", "line_transforms", "token_transformers")
_SYS_HOOKS = ("excepthook", "displayhook", "breakpointhook", "unraisablehook", "stdout", "stderr")
_SYS_MODULES = ("builtins", "sys", "math", "numbers", "functools", "operator", "importlib", "importlib.util",
                "ftcourse", "ftcourse.classroom")
_MODULE_DICTS = ("builtins", "math", "numbers", "functools", "operator")
_MISSING = object()
# event callbacks that course code registers (inline figures, widgets) survive arm(); learner code's do not
_LIBRARY_CALLBACKS = ("matplotlib", "matplotlib_inline", "ipywidgets", "plotly", "bokeh", "tqdm")


class GuardError(RuntimeError):
    """The grading run could not restore the kernel; the grader cell is not trusted."""


def _shell():
    from IPython.core.getipython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise GuardError("no IPython shell in this kernel")
    return shell


class _Snapshot:
    """What the kernel looked like before any learner cell ran."""

    def __init__(self, shell):
        self.shell = shell
        self.objects = {name: getattr(shell, name, _MISSING) for name in _SHELL_OBJECTS}
        self.lists = {name: list(getattr(shell, name, [])) for name in _SHELL_LISTS}
        manager = getattr(shell, "input_transformer_manager", None)
        self.manager_lists = {name: list(getattr(manager, name, [])) for name in _MANAGER_LISTS}
        self.events = {k: list(v) for k, v in getattr(getattr(shell, "events", None), "callbacks", {}).items()}
        self.sys_hooks = {name: getattr(sys, name, _MISSING) for name in _SYS_HOOKS}
        self.modules = {name: sys.modules[name] for name in _SYS_MODULES if name in sys.modules}
        self.module_dicts = {name: dict(vars(sys.modules[name])) for name in _MODULE_DICTS if name in sys.modules}
        self.instances = [o for o in self._instances() if hasattr(o, "__dict__")]
        self.instance_vars = {id(o): dict(vars(o)) for o in self.instances}
        classes = {cls for o in self.instances for cls in type(o).__mro__ if cls is not object}
        self.class_vars = {cls: dict(vars(cls)) for cls in classes}
        self.kept: dict[str, object] = {}

    def _instances(self):
        shell = self.shell
        kernel = getattr(shell, "kernel", None)
        found = [shell, kernel, getattr(kernel, "session", None), sys.stdout, sys.stderr]
        found += [getattr(shell, name, None) for name in ("displayhook", "display_pub", "InteractiveTB",
                                                          "SyntaxTB", "events", "input_transformer_manager")]
        return [o for o in found if o is not None]


def install(token: str = "") -> str:
    """Take the snapshot (call once, before any learner cell). Returns ``"install <token>"``."""
    try:  # the course package itself, so that arm() can put it back if a cell swaps it out
        importlib.import_module("ftcourse.classroom")
    except ImportError:
        pass
    state = types.ModuleType(STATE)
    state.snapshot = _Snapshot(_shell())
    sys.modules[STATE] = state
    return f"install {token}"


def _snapshot() -> _Snapshot:
    state = sys.modules.get(STATE)
    snap = getattr(state, "snapshot", None)
    if type(snap).__name__ != "_Snapshot":
        raise GuardError("the grading run's snapshot was removed from sys.modules")
    return snap


def keep(names: list[str], token: str = "") -> str:
    """Save the current values of ``names`` (bound by a course cell the learner did not change)."""
    snap = _snapshot()
    ns = snap.objects["user_ns"]
    for name in names:
        if name in ns:
            snap.kept[name] = ns[name]
    return f"keep {token}"


def _restore_instance(obj, saved: dict) -> None:
    now = vars(obj)
    for key in list(now):
        value = now[key]
        if key in saved:
            if value is not saved[key] and (callable(saved[key]) or callable(value)):
                now[key] = saved[key]
        elif callable(value) and hasattr(type(obj), key):  # a per-instance override of a method
            del now[key]


def _restore_class(cls, saved: dict) -> None:
    for key, value in list(vars(cls).items()):
        if key in saved:
            if value is not saved[key] and callable(saved[key]):
                setattr(cls, key, saved[key])
        elif callable(value) and any(key in vars(base) for base in cls.__mro__[1:]):
            delattr(cls, key)  # a method added to a subclass to shadow its base's


def _from_library(callback) -> bool:
    module = getattr(callback, "__module__", None) or getattr(getattr(callback, "__func__", None), "__module__", "")
    return isinstance(module, str) and module.split(".")[0] in _LIBRARY_CALLBACKS


def _restore(snap: _Snapshot) -> None:
    shell = snap.shell
    for name, value in snap.sys_hooks.items():
        if value is not _MISSING and getattr(sys, name, _MISSING) is not value:
            setattr(sys, name, value)
    sys.settrace(None)
    sys.setprofile(None)
    threading.settrace(None)  # type: ignore[arg-type]
    threading.setprofile(None)  # type: ignore[arg-type]
    for name, module in snap.modules.items():
        sys.modules[name] = module
    for name, saved in snap.module_dicts.items():
        now = vars(snap.modules.get(name, sys.modules.get(name)))
        for key, value in saved.items():
            if key in ("_", "__", "___"):  # IPython's output history lives in builtins
                continue
            if now.get(key, _MISSING) is not value:
                now[key] = value
    for cls, saved in snap.class_vars.items():
        _restore_class(cls, saved)
    for obj in snap.instances:
        _restore_instance(obj, snap.instance_vars[id(obj)])
    for name, value in snap.objects.items():
        if value is not _MISSING and getattr(shell, name, _MISSING) is not value:
            setattr(shell, name, value)
    for name, saved in snap.lists.items():
        getattr(shell, name)[:] = saved
    manager = shell.input_transformer_manager
    for name, saved in snap.manager_lists.items():
        if hasattr(manager, name):
            getattr(manager, name)[:] = saved
    callbacks = shell.events.callbacks
    for event, saved in snap.events.items():
        added = [cb for cb in callbacks.get(event, []) if cb not in saved and _from_library(cb)]
        callbacks[event] = list(saved) + added
    ns = snap.objects["user_ns"]
    ns["__builtins__"] = snap.modules["builtins"]


def _reporting(fn, stream, nonce: str):
    def report(kind: str) -> None:
        stream.write("\n" + MARKER.format(nonce=nonce, kind=kind) + "\n")
        stream.flush()

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            report("fail")
            raise
        report("pass")
        return result

    return checked


def pristine_checker(check_path: str, nonce: str, stream):
    """``ftcourse/classroom/check.py`` loaded afresh from its file; each public function reports to
    ``stream``."""
    spec = importlib.util.spec_from_file_location(f"_ftcourse_check_{nonce[:12]}", check_path)
    if spec is None or spec.loader is None:
        raise GuardError(f"cannot load the checker from {check_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, value in list(vars(module).items()):
        if (not name.startswith("_") and isinstance(value, types.FunctionType)
                and value.__module__ == module.__name__):
            setattr(module, name, _reporting(value, stream, nonce))
    return module


def arm(check_path: str, nonce: str, check_names: dict[str, str], shadows: list[str], token: str = "") -> str:
    """Put the kernel back as :func:`install` found it and bind a reporting, pristine checker.

    ``check_names`` maps a name in the notebook's namespace to an attribute of the checker
    (``""``: the checker module itself); ``shadows`` are builtin names a grader cell reads that
    no course cell defines, so a learner's variable of that name is dropped.
    """
    snap = _snapshot()
    _restore(snap)
    ns = snap.objects["user_ns"]
    for name in shadows:
        ns.pop(name, None)
    ns.update(snap.kept)
    checker = pristine_checker(check_path, nonce, snap.sys_hooks["stdout"])
    sys.modules[CHECK_MODULE] = checker
    package, classroom = snap.modules.get("ftcourse"), snap.modules.get("ftcourse.classroom")
    if classroom is not None:
        classroom.check = checker
        if package is not None:
            package.classroom = classroom
    for name, attr in check_names.items():
        ns[name] = getattr(checker, attr) if attr else checker
    ns.pop("AssertionError", None)
    if snap.modules["builtins"].AssertionError is not snap.module_dicts["builtins"]["AssertionError"]:
        raise GuardError("builtins.AssertionError could not be restored")
    return f"arm {token}"
