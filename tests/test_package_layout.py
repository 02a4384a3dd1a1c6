"""The package's subpackages import downwards only: no cycle between two of them.

A subpackage is a direct child of ``contextrast`` (``config``, ``data``, ``modeling``, ...). The
imports of every module are read from its source (``ast``; imports inside functions included),
so the check needs no import and sees lazy imports too.
"""

import ast
import os
from typing import Dict, Set

from helpers import ROOT

PACKAGE_DIR = os.path.join(ROOT, "projects", "Contextrast", "contextrast")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[: -len(".py")]
    parts = rel.split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_modules(path: str, module: str) -> Set[str]:
    is_package = path.endswith("__init__.py")
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "contextrast" else ""


def subpackage_imports() -> Dict[str, Set[str]]:
    """``{subpackage: subpackages it imports}`` over every module of the package."""
    graph: Dict[str, Set[str]] = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = _module_name(path)
            source = _subpackage(module)
            if not source:  # contextrast/__init__.py: the package's registration imports
                continue
            targets = {_subpackage(m) for m in _imported_modules(path, module)}
            graph.setdefault(source, set()).update(t for t in targets if t and t != source)
    return graph


def test_subpackages_exist():
    graph = subpackage_imports()
    assert {"config", "data", "modeling", "checkpoint", "engine", "evaluation", "export"} <= set(
        graph
    )


def test_no_subpackage_imports_one_that_imports_it_back():
    graph = subpackage_imports()
    # Depth-first search for a cycle; report the first one found.
    state: Dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError("import cycle between subpackages: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
