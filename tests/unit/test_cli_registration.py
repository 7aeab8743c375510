"""The command line registers only the group a command names (services.cli._register): each group's module
must therefore register everything of its group itself, never another module's group."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "services" / "cli"
REGISTERING = {"command", "callback", "add_typer"}


def _imported_from_other_cli_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("services.cli."):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _registrations_on(tree: ast.Module, foreign: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in REGISTERING
            and isinstance(node.value, ast.Name)
            and node.value.id in foreign
        ):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


def test_no_command_module_adds_to_another_modules_group() -> None:
    offences = {}
    for path in sorted(CLI.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = _registrations_on(tree, _imported_from_other_cli_modules(tree))
        if found:
            offences[path.name] = found
    assert offences == {}, "a group registered alone would miss these commands"


def test_a_group_registered_alone_has_every_command_of_its_own() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "services", "gov", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0, shown.stderr
    listed = {
        line.split()[1]
        for line in shown.stdout.splitlines()
        if line.startswith("│ ") and len(line.split()) > 1
    }
    assert {"erase", "apply", "propose", "credentials", "purposes"} <= listed
