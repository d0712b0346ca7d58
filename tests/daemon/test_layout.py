"""The daemon's import graph runs one way: no module imports one that (indirectly) imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import underpaint

PACKAGE = Path(underpaint.__file__).parent


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("underpaint."):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("underpaint."))
        graph[name] = found
    return {name: {dep for dep in deps if dep in graph and dep != name} for name, deps in graph.items()}


def test_no_import_cycles_in_the_daemon() -> None:
    graph = _imports()

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(graph.get(current, ()))
        return False

    daemon = [name for name in graph if name.startswith("underpaint.daemon.")]
    assert "underpaint.daemon.records" in daemon
    assert [name for name in daemon if reaches(name, name)] == []


def test_layer_names_are_distinct_from_the_wire() -> None:
    """One name, one meaning: the protocol's Rect/Layer/Limits are not redefined inside the daemon."""
    graph_files = [path for path in PACKAGE.rglob("*.py")]
    defined = {
        node.name
        for path in graph_files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    }
    assert not {"Rect", "Layer", "Limits", "ClientConnection"} & defined
