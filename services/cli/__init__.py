"""The ``sharehub`` command line: one Typer app, one sub-module per command group."""

from __future__ import annotations

import os

import typer

from sharehub.collector import collect_for_batches

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="sharehub: the data-sharing hub for public agencies.",
)


def _register() -> None:
    from services.cli import (
        agency_commands,
        backup_commands,
        connect_commands,
        credential_commands,
        demo_commands,
        generate_commands,
        gov_commands,
        hub_commands,
        kafka_commands,
        serve_commands,
        tls_commands,
        up_command,
    )

    app.add_typer(kafka_commands.app, name="kafka")
    app.add_typer(tls_commands.app, name="tls")
    app.add_typer(agency_commands.app, name="agency")
    gov_commands.app.add_typer(credential_commands.app, name="credentials")
    app.add_typer(gov_commands.app, name="gov")
    app.add_typer(hub_commands.credentials_app, name="credentials")
    app.add_typer(hub_commands.audit_app, name="audit")
    app.add_typer(hub_commands.keys_app, name="keys")
    app.add_typer(hub_commands.quarantine_app, name="quarantine")
    app.add_typer(generate_commands.app, name="generate")
    app.add_typer(demo_commands.app, name="demo")
    app.command("publish")(hub_commands.publish)
    app.add_typer(connect_commands.app, name="connect")
    app.add_typer(hub_commands.project_app, name="project")
    app.add_typer(serve_commands.app, name="serve")
    app.add_typer(backup_commands.app, name="backup")
    app.command("up")(up_command.up)


def main() -> None:
    # Read models, key stores and demo data hold classified records: nothing the hub writes is for others.
    os.umask(0o077)
    # Every command streams events in batches (publish, audit, rebuild, recheck) or serves for long: what
    # it imported is frozen, and the youngest generation is collected less often (opening a batch of events
    # spent a fifth of its time collecting garbage with Python's defaults).
    collect_for_batches()
    _register()
    app()
