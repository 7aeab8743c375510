"""``sharehub connect``: connectors that run at an agency's site (SHAREHUB_HOME is the site) and publish
exactly once through :mod:`connectors.exactly_once`; their health."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli.errors import reports_errors
from services.cli.progress import line_progress
from sharehub.errors import ConfigurationError, SharehubError

if TYPE_CHECKING:
    from connectors.outbox import OutboxDatabase, OutboxTotals

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


@app.command("outbox")
@reports_errors
def outbox(
    dsn: Annotated[
        str,
        typer.Option(
            help="The agency's database: a postgresql:// URL or key=value pairs, without a password"
        ),
    ],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id (the site's agency must own it)")],
    mapping: Annotated[Path, typer.Option(help="The outbox mapping: table, columns, types (YAML or TOML)")],
    password_file: Annotated[
        Path | None,
        typer.Option(help="Owner-only file holding the database password (else PGPASSFILE, ~/.pgpass)"),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Owner-only file holding the site keys' passphrase (else a prompt)")
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between two reads when no NOTIFY comes (the longest delay)")
    ] = 2.0,
    checkpoint_every: Annotated[
        int, typer.Option(help="Rows read, published and acknowledged in one batch", min=1)
    ] = 5000,
    delete_published: Annotated[
        bool, typer.Option("--delete-published", help="Delete rows once acknowledged (not the rejected)")
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Where bad rows are recorded (default <site>/connectors/<dataset>.outbox-rejects.jsonl)"
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Publish the rows there now, then exit")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (127.0.0.1)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines")] = False,
) -> None:
    """Publish each row of the agency's outbox table exactly once, in commit order, resuming after a crash;
    LISTEN/NOTIFY wakes it, a poll every --poll-interval bounds the delay."""
    try:
        from connectors import outbox as ob
    except ImportError as exc:  # psycopg: the 'postgres' extra
        raise ConfigurationError(f"the outbox connector needs sharehub[postgres] installed ({exc})") from None
    from connectors.outbox_mapping import OutboxMapping

    database = ob.OutboxDatabase(
        ob.checked_dsn(dsn),
        OutboxMapping.load(mapping),
        ob.read_password(password_file) if password_file is not None else None,
        delete=delete_published,
    )
    _run_outbox(database, dataset, passphrase_file, rejects, metrics_port, once=once,
                batch=checkpoint_every, poll_interval=poll_interval, quiet=quiet)  # fmt: skip


def _run_outbox(
    database: OutboxDatabase,
    dataset: str,
    passphrase_file: Path | None,
    rejects: Path | None,
    metrics_port: int | None,
    *,
    once: bool,
    batch: int,
    poll_interval: float,
    quiet: bool,
) -> None:
    from connectors.exactly_once import ExactlyOnce
    from connectors.journal import FOLDER, Journal
    from connectors.outbox import OutboxConnector, OutboxRejects, describe
    from connectors.site import AgencySite
    from services.cli.agency_commands import site_publisher
    from sharehub.settings import Settings

    home = Settings().home
    agency = AgencySite(home).agency
    first = database.table()  # the set-up's faults before the publisher is opened; the source's name
    source = first.source
    first.close()
    with Journal(home, dataset) as journal, site_publisher(home, agency, dataset, passphrase_file) as pub:
        if metrics_port is not None:
            _serve_metrics(home, metrics_port)
        stream = ExactlyOnce(pub, journal, checkpoint_every=batch).open(source, name=source, endless=True)
        assert stream is not None, "an endless source is never done"
        connector = OutboxConnector(
            database, stream, pub.key_field,
            OutboxRejects(rejects or home / FOLDER / f"{dataset}.outbox-rejects.jsonl"),
            batch=batch, poll_interval=poll_interval, progress=None if quiet else _outbox_progress(),
        )  # fmt: skip
        _stop_on_signals(connector.stop.set)
        err.print(f"reading {source} ({describe(database.dsn)}) for {dataset}")
        try:
            connector.run(once=once)
        except SharehubError as exc:
            stream.failed(str(exc))
            raise
    _print_status(home, err)


def _outbox_progress() -> Callable[[OutboxTotals, int | None], None]:
    """A line on stderr at most every ten seconds while rows move: what went, and the lag."""
    last = [0.0]

    def tell(totals: OutboxTotals, lag: int | None) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            err.print(
                f"rows: {totals.published} published, {totals.skipped} already on the topic, "
                f"{totals.rejected} rejected; lag {'?' if lag is None else lag}"
            )

    return tell


@app.command("outbox-setup")
@reports_errors
def outbox_setup(
    mapping: Annotated[Path, typer.Option(help="The outbox mapping (YAML or TOML)")],
    role: Annotated[
        str | None, typer.Option(help="A login role that may only read the table (its password set apart)")
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Let the role delete rows too (for --delete-published)")
    ] = False,
    dsn: Annotated[
        str | None, typer.Option(help="Run the statements there (as the table's owner); else print them")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="Owner-only file holding that login's password")
    ] = None,
) -> None:
    """The SQL that makes the mapping's table ready: its commit-order column (xid8) and index, the NOTIFY
    trigger when the mapping names a channel, a read-only role. Printed, or run in one transaction."""
    from connectors.outbox_mapping import OutboxMapping, setup_sql

    statements = setup_sql(OutboxMapping.load(mapping), role=role, delete=delete)
    if dsn is None:
        for statement in statements:
            print(statement + ";")
        return
    from connectors import outbox as ob

    checked = ob.checked_dsn(dsn)
    password = ob.read_password(password_file) if password_file is not None else None
    with ob.connect(checked, password) as conn, ob.answering("the set-up"), conn.transaction():
        for statement in statements:
            conn.execute(statement.encode())
    err.print(f"{len(statements)} statements run on {ob.describe(checked)}")


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

    table = Table("dataset", "source", "state", "acknowledged", "pending", "rejects", "last error")
    for h in site_health(home):
        state = "done" if h.done else ("failing" if h.error else "following" if h.endless else "in progress")
        pending = "?" if h.pending is None else str(h.pending)
        table.add_row(h.dataset, h.name, state, str(h.acknowledged), pending, str(h.rejected), h.error or "")
    if not console.is_terminal:  # a pipe or a file: whole rows, never folded to 80 columns
        console = Console(file=console.file, width=240, soft_wrap=True)
    console.print(table)
