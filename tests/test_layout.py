"""The house rules of the package layout (docs/DESIGN.md, "Dependencies"): imports between
weightprog's modules form no cycle, no module imports another's private names, and no module is
over MAX_FILE_LINES lines nor any function over MAX_FUNCTION_LINES, outside an allow-list that can
only shrink (issue 25).

Every import counts, wherever it is written (top level, inside a function, under TYPE_CHECKING):
a cycle hidden in a function is still a cycle for the reader. A package's own `__init__` re-exports
its modules, so an import of a package by one of its own modules is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import weightprog

ROOT = Path(weightprog.__file__).parent


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package)."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def imports(mods: dict[str, tuple[Path, bool]]) -> tuple[dict[str, set[str]], list[str]]:
    """Import edges between weightprog modules, and the private names imported across modules."""
    edges: dict[str, set[str]] = {}
    private = []
    for name, (path, package) in mods.items():
        here = name.split(".") if package else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
                elif (node.module or "").split(".")[0] == "weightprog":
                    base = node.module.split(".")
                else:
                    continue
                source = ".".join(base)
                for alias in node.names:
                    if f"{source}.{alias.name}" in mods:
                        targets.add(f"{source}.{alias.name}")
                    elif source in mods:
                        targets.add(source)
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append(f"{name} imports {source}.{alias.name}")
        edges[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    edges, _ = imports(modules())
    assert len(edges) > 50  # the whole package was read
    assert cycles(edges) == []


def test_no_private_imports_across_modules():
    _, private = imports(modules())
    assert private == []


def test_public_api_is_documented():
    """Every function exported by `weightprog` documents its arguments (numpydoc `Parameters`);
    every exported class has a docstring (dataclasses document their fields beside them)."""
    import inspect

    undocumented = []
    for name in weightprog.__all__:
        obj = getattr(weightprog, name)
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            if not doc:
                undocumented.append(name)
        elif inspect.isfunction(obj) and inspect.signature(obj).parameters and "Parameters\n---" not in doc:
            undocumented.append(name)
    assert undocumented == []


# --- sizes ------------------------------------------------------------------------------------------
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80
"""From the `def` line to the last line of the body (docstring included, decorators not)."""

# Each over the limit by this many lines today: an entry must not grow, and is removed once within
# the limit, so the list only shrinks.
ALLOWED_FILES = {
}
ALLOWED_FUNCTIONS = {
    "weightprog/nn/calibration.py::calibrate": 101,
    "weightprog/nn/evaluate.py::evaluate_over_time": 149,
    "weightprog/workloads/fmnist_resnet.py::train": 88,
    "weightprog/workloads/ptb_lstm.py::train": 94,
}


def _functions(tree: ast.AST, prefix: str = "") -> dict[str, int]:
    """Length of every function and method, nested ones included, by qualified name."""
    out = {}
    for node in ast.iter_child_nodes(tree):
        name = prefix
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + node.name
            out[name] = node.end_lineno - node.lineno + 1
            name += "."
        elif isinstance(node, ast.ClassDef):
            name = prefix + node.name + "."
        out.update(_functions(node, name))
    return out


def _measure() -> tuple[dict[str, int], dict[str, int]]:
    files, functions = {}, {}
    for path in sorted(ROOT.rglob("*.py")):
        key = path.relative_to(ROOT.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        files[key] = len(text.splitlines())
        for name, length in _functions(ast.parse(text)).items():
            functions[f"{key}::{name}"] = length
    return files, functions


def _check(measured: dict[str, int], allowed: dict[str, int], limit: int, what: str) -> list[str]:
    errors = [f"{key}: {n} lines (limit {limit}); split it" for key, n in measured.items()
              if n > limit and key not in allowed]
    for key, recorded in allowed.items():
        n = measured.get(key)
        if n is None:
            errors.append(f"{key}: allow-listed {what} no longer exists; remove its entry")
        elif n <= limit:
            errors.append(f"{key}: now {n} lines, within the limit; remove its entry from the allow-list")
        elif n > recorded:
            errors.append(f"{key}: grew from {recorded} to {n} lines; an allow-listed {what} may only shrink")
    return errors


def test_no_file_or_function_over_the_limits():
    files, functions = _measure()
    assert len(files) > 50  # the whole package was read
    errors = (_check(files, ALLOWED_FILES, MAX_FILE_LINES, "file")
              + _check(functions, ALLOWED_FUNCTIONS, MAX_FUNCTION_LINES, "function"))
    assert not errors, "\n".join(errors)


def test_the_check_catches_growth_and_stale_entries():
    measured = {"a.py": 500, "b.py": 100, "c.py": 460}
    allowed = {"b.py": 600, "c.py": 455, "gone.py": 700}
    errors = _check(measured, allowed, 450, "file")
    assert [e.split(":")[0] for e in errors] == ["a.py", "b.py", "c.py", "gone.py"]
