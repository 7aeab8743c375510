"""``sharehub connect``: connectors that run at an agency's site (SHAREHUB_HOME is the site) and publish
exactly once through :mod:`connectors.exactly_once`; their health."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli.errors import reports_errors
from services.cli.progress import line_progress

app = typer.Typer(help="Connectors at an agency's site, and their health.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.command("files")
@reports_errors
def files(
    folder: Annotated[
        Path, typer.Argument(help="The folder agency systems drop CSV and JSON Lines files in")
    ],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id (the site's agency must own it)")],
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Owner-only file holding the site keys' passphrase (else a prompt)")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Publish the files there now, then exit")] = False,
    settle: Annotated[float, typer.Option(help="Seconds a file must be unchanged before it is taken")] = 5.0,
    poll: Annotated[float, typer.Option(help="Seconds between two looks at the folder")] = 2.0,
    checkpoint_every: Annotated[int, typer.Option(help="Lines between two checkpoints", min=1)] = 10_000,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (127.0.0.1)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar")] = False,
) -> None:
    """Watch FOLDER and publish each ready file exactly once; bad rows go to rejects/, files to done/."""
    from connectors.exactly_once import ExactlyOnce
    from connectors.file_drop import FileDrop, StopRequested
    from connectors.journal import Journal
    from connectors.site import AgencySite
    from services.cli.agency_commands import site_publisher
    from sharehub.settings import Settings

    home = Settings().home
    agency = AgencySite(home).agency
    with Journal(home, dataset) as journal, site_publisher(home, agency, dataset, passphrase_file) as pub:
        if metrics_port is not None:
            _serve_metrics(home, metrics_port)
        with line_progress(err, quiet=quiet) as tracker:
            core = ExactlyOnce(pub, journal, checkpoint_every=checkpoint_every)
            drop = FileDrop(folder, core, pub.schema, settle=settle, progress=tracker)
            _stop_on_signals(drop.stop.set)
            try:
                drop.run(once=once, poll=poll)
            except StopRequested:
                err.print("stopped; the file in progress resumes where it stood at the next start")
    _print_status(home, err)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _serve_metrics(home: Path, port: int) -> None:
    from prometheus_client import REGISTRY, start_http_server

    from connectors.health import HealthCollector, site_health

    REGISTRY.register(HealthCollector(lambda: site_health(home)))
    start_http_server(port, addr="127.0.0.1")


@app.command("status")
@reports_errors
def status() -> None:
    """Per connector and file: lines acknowledged, lines pending (lag), rejects, the last error."""
    from sharehub.settings import Settings

    _print_status(Settings().home, out)


def _print_status(home: Path, console: Console) -> None:
    from connectors.health import site_health

    table = Table("dataset", "file", "state", "acknowledged", "pending", "rejects", "last error")
    for h in site_health(home):
        state = "done" if h.done else ("failing" if h.error else "in progress")
        pending = "?" if h.pending is None else str(h.pending)
        table.add_row(h.dataset, h.name, state, str(h.acknowledged), pending, str(h.rejected), h.error or "")
    if not console.is_terminal:  # a pipe or a file: whole rows, never folded to 80 columns
        console = Console(file=console.file, width=240, soft_wrap=True)
    console.print(table)
