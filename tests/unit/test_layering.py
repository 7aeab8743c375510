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


#: The composition roots: the only modules that build a :class:`services.hub.Hub` (or take one) and hand
#: the services the parts they use. One per process: the CLI's commands, the API's app factory, the
#: projection worker's engine process; and the hub itself.
COMPOSITION_ROOTS = {
    "services/hub.py",
    "services/cli",
    "services/api/app.py",
    "services/projection_engine.py",
    # The ingest gateway's process: at a site or at the hub.
    "services/gateway/modes.py",
}


def _is_composition_root(path: Path) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == root or relative.startswith(root + "/") for root in COMPOSITION_ROOTS)


def hub_uses(path: Path) -> list[str]:
    """Where a module imports ``Hub`` from :mod:`services.hub`, or annotates a parameter with it."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "services.hub":
            if any(alias.name == "Hub" for alias in node.names):
                found.append(f"{node.lineno}: imports Hub")
        elif isinstance(node, ast.arg) and node.annotation is not None and "Hub" in _names(node.annotation):
            found.append(f"{node.lineno}: parameter {node.arg} is a Hub")
    return found


def _names(annotation: ast.expr) -> set[str]:
    """The names an annotation mentions, in a quoted one too."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    return {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("package", ["services", "connectors", "projections", "sharehub"])
def test_only_the_composition_roots_know_the_hub(package: str) -> None:
    """Every service takes the parts it uses (settings, governance, keys, a broker login, stores); the hub
    that holds them is built and taken apart only in a composition root."""
    knowing = [
        f"{path.relative_to(REPO)}:{use}"
        for path in sorted((REPO / package).rglob("*.py"))
        if not _is_composition_root(path)
        for use in hub_uses(path)
    ]
    assert knowing == []


def test_the_hub_check_sees_an_import_and_a_parameter(tmp_path: Path) -> None:
    module = tmp_path / "service.py"
    module.write_text(
        "from services.hub import HUB_PRINCIPAL\n\ndef run(store: int, hub: 'Hub | None') -> None: ...\n"
    )
    assert hub_uses(module) == ["3: parameter hub is a Hub"]
    module.write_text(
        "from services.hub import Hub\n\nclass S:\n    def __init__(self, h: list[Hub]) -> None: ...\n"
    )
    assert hub_uses(module) == ["1: imports Hub", "4: parameter h is a Hub"]
