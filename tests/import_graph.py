"""Static import graph of a package: every ``import`` statement, at module level or inside a function.

Used by ``test_import_graph.py`` to keep the layers of ``ncal`` honest: no cycles between modules and no
import from a lower layer to a higher one. Imports done by name at run time (``importlib``) are not
statements and are not seen; the lazy strategy registry relies on that on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root`` (the package folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def _resolve(name: str, is_pkg: bool, level: int, target: str | None) -> str:
    """Absolute module named by ``from <level dots><target> import ...`` inside module ``name``."""
    if level == 0:
        return target or ""
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_edges(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (explicit statements only, lazy ones included)."""
    modules = module_names(root, package)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_pkg, node.level, node.module)
                subs = [f"{base}.{alias.name}" for alias in node.names]
                found = [s for s in subs if s in modules]
                # names that are not submodules come from the module ``base`` itself
                targets = found + ([base] if len(found) < len(subs) else [])
            for t in targets:
                while t and t not in modules:  # ``import a.b.c`` of a name inside a.b
                    t = t.rpartition(".")[0]
                if t and t != name and t.split(".")[0] == package:
                    edges[name].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_violations(
    edges: dict[str, set[str]], layers: dict[str, int], package: str
) -> list[tuple[str, str]]:
    """Edges ``(a, b)`` where ``b``'s layer is above ``a``'s. A module's layer is the layer of its
    first component below ``package`` (the package's own ``__init__`` is keyed by ``package``)."""

    def layer(mod: str) -> int:
        parts = mod.split(".")
        key = parts[1] if len(parts) > 1 else package
        if key not in layers:
            raise KeyError(f"module {mod} has no layer: add {key!r} to the layer table")
        return layers[key]

    return sorted((a, b) for a, bs in edges.items() for b in bs if layer(b) > layer(a))


def describe(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"  {a} -> {b}" for a, b in pairs)
