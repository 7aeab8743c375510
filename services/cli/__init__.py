"""The ``sharehub`` command line: one Typer app, one sub-module per command group."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType

import typer

from sharehub.collector import collect_for_batches

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="sharehub: the data-sharing hub for public agencies.",
)


@app.callback()
def _hub() -> None:
    """sharehub: the data-sharing hub for public agencies."""  # a group, even with one command registered


def _register_groups() -> dict[str, Callable[[], None]]:
    """Each top-level name and what registers it; a registrar imports only its own command module."""

    def group(module: str, attribute: str, name: str) -> Callable[[], None]:
        return lambda: app.add_typer(getattr(_commands(module), attribute), name=name)

    def command(module: str, attribute: str, name: str) -> Callable[[], None]:
        return lambda: app.command(name)(getattr(_commands(module), attribute))

    def gov() -> None:
        credentials = _commands("credential_commands")
        _commands("gov_commands").app.add_typer(credentials.app, name="credentials")
        group("gov_commands", "app", "gov")()

    return {
        "kafka": group("kafka_commands", "app", "kafka"),
        "tls": group("tls_commands", "app", "tls"),
        "agency": group("agency_commands", "app", "agency"),
        "gov": gov,
        "credentials": group("hub_commands", "credentials_app", "credentials"),
        "audit": group("hub_commands", "audit_app", "audit"),
        "keys": group("hub_commands", "keys_app", "keys"),
        "quarantine": group("hub_commands", "quarantine_app", "quarantine"),
        "generate": group("generate_commands", "app", "generate"),
        "demo": group("demo_commands", "app", "demo"),
        "publish": command("hub_commands", "publish", "publish"),
        "connect": group("connect_commands", "app", "connect"),
        "project": group("hub_commands", "project_app", "project"),
        "serve": group("serve_commands", "app", "serve"),
        "backup": group("backup_commands", "app", "backup"),
        "up": command("up_command", "up", "up"),
    }


def _commands(module: str) -> ModuleType:
    return importlib.import_module(f"services.cli.{module}")


def _register(argv: list[str]) -> None:
    """Registers the command group ``argv`` names, or every group (for help, or a name not known here,
    which Typer then refuses with the list): a command imports only what it runs, not every group's
    dependencies, which took about half a second at each start."""
    groups = _register_groups()
    named = next((a for a in argv if not a.startswith("-")), None)
    if named in groups:
        groups[named]()
        return
    for register in groups.values():
        register()


def main() -> None:
    # Read models, key stores and demo data hold classified records: nothing the hub writes is for others.
    os.umask(0o077)
    # Every command streams events in batches (publish, audit, rebuild, recheck) or serves for long: what
    # it imported is frozen, and the youngest generation is collected less often (opening a batch of events
    # spent a fifth of its time collecting garbage with Python's defaults).
    collect_for_batches()
    _register(sys.argv[1:])
    app()
