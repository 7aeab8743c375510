"""``sharehub serve``: the query API (the group's own command) and ``sharehub serve gateway``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from services.cli.errors import reports_errors

app = typer.Typer(
    invoke_without_command=True,
    help="Serve over HTTPS: the query API (no sub-command), or the ingest gateway ('serve gateway').",
)
GATEWAY_PORT = 8385


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default SHAREHUB_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SHAREHUB_API_PORT, 8384)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Processes serving (default SHAREHUB_API_WORKERS, 1)")
    ] = None,
) -> None:
    """Run the query API over HTTPS (the hub CA's certificate, see SHAREHUB_API_TLS_CERT_FILE). Every answer
    is recorded in the access-log topic (R7), so the server writes no access line of its own."""
    if ctx.invoked_subcommand is None:
        _serve_query_api(host, port, workers)


@reports_errors
def _serve_query_api(host: str | None, port: int | None, workers: int | None) -> None:
    from services.api.guarded_http import run_https
    from services.api.tls import api_certificate
    from services.hub import Hub

    with Hub() as hub:
        hub.governance  # noqa: B018 - fail now, clearly, if there is no governance
        settings = hub.settings
    certificate = api_certificate(settings, [host] if host else [])
    run_https(
        "services.api.app:serve_app", factory=True, host=host or settings.api_host,
        port=port or settings.api_port, workers=workers or settings.api_workers, log_level="info",
        certificate=certificate,
    )  # fmt: skip


@app.command("gateway")
@reports_errors
def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = GATEWAY_PORT,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="At a site: owner-only file holding the site keys' passphrase")
    ] = None,
    rate: Annotated[float, typer.Option(help="Requests a second per agency, on average", min=0.01)] = 20.0,
    burst: Annotated[int, typer.Option(help="Requests per agency at once", min=1)] = 40,
    max_body: Annotated[int, typer.Option(help="Bytes of a request body at most", min=1024)] = 8
    * 1024
    * 1024,
    retention_hours: Annotated[
        float, typer.Option(help="Hours a finished request's Idempotency-Key is remembered", min=0.01)
    ] = 24.0,
) -> None:
    """Run the HTTPS ingest gateway: at an agency's site (SHAREHUB_HOME=the site) it publishes the agency's
    envelopes and records, signed at the site; at the hub it seals records of agencies in its custody."""
    from services.api.guarded_http import run_https
    from services.api.tls import api_certificate
    from services.cli.agency_commands import site_passphrase
    from services.gateway.app import create_gateway
    from services.gateway.modes import Limits, for_home
    from sharehub.settings import Settings

    settings = Settings()
    limits = Limits(rate, burst, max_body, dt.timedelta(hours=retention_hours))
    served, close = for_home(settings.home, lambda: site_passphrase(settings.home, passphrase_file), limits)
    try:
        certificate = api_certificate(settings, [host])
        run_https(create_gateway(served), host=host, port=port, log_level="warning", certificate=certificate)
    finally:
        close()
