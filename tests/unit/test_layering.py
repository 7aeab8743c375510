"""Data flows one way (connectors → kernel ← projections ← services; tooling beside them): an import pointing
back fails here. The kernel imports nothing of the hub's; a connector or a projection no service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: package → the first-party packages it must never import.
FORBIDDEN = {
    "sharehub": {"connectors", "projections", "services", "tooling", "bench", "tests"},
    "connectors": {"projections", "services", "tooling", "bench", "tests"},
    "projections": {"connectors", "services", "tooling", "bench", "tests"},
    "services": {"bench", "tests"},
    "tooling": {"connectors", "projections", "services", "bench", "tests"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_the_wrong_way(package: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in imports(path) & FORBIDDEN[package]
    }
    assert not wrong, "\n".join(sorted(wrong))


#: The runtime edges stay small: no function longer than this in projections/ or services/.
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("package", ["projections", "services"])
def test_no_function_in_the_runtime_edges_is_longer_than_sixty_lines(package: str) -> None:
    too_long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((REPO / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert too_long == []
