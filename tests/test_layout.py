"""The house rules of the package layout (docs/DESIGN.md, "Dependencies"): imports between
weightprog's modules form no cycle, and no module imports another's private names.

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
