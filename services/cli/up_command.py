"""``sharehub up``: the hub's long-running parts in the foreground, each under a supervisor of its own.

The projection worker (``sharehub project run``: restarted at once when it starts over), the query API
(``sharehub serve``) and, with ``--gateway``, the ingest gateway (``sharehub serve gateway``): each is
restarted after a pause that doubles from 1 s to a minute when it exits (:mod:`services.supervisor`), and the
log says which part and why. With ``--worker-health-port`` the worker answers ``/healthz`` and ``/readyz``
there (:mod:`projections.health`), as the servers do on their own ports. SIGTERM or SIGINT stops them all
gracefully; if ``sharehub up`` itself is killed, its children die with it. The broker and the read models'
database are not its parts: they run beside it (``sharehub kafka start``, PostgreSQL)."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Annotated

import typer

from services.cli.errors import fail, reports_errors
from services.cli.serve_commands import GATEWAY_PORT
from services.supervisor import Supervisor, supervise_all

#: How long each part has for its graceful stop before SIGKILL: the worker finishes its batch first.
WORKER_STOP_S = 30.0
SERVER_STOP_S = 10.0


@reports_errors
def up(
    gateway: Annotated[bool, typer.Option("--gateway", help="Also run the ingest gateway")] = False,
    api_port: Annotated[int | None, typer.Option(help="Query API port (default SHAREHUB_API_PORT)")] = None,
    gateway_port: Annotated[int, typer.Option(help="Gateway port (with --gateway)")] = GATEWAY_PORT,
    worker_health_port: Annotated[
        int | None,
        typer.Option(help="The worker's /healthz and /readyz port (default SHAREHUB_WORKER_HEALTH_PORT)"),
    ] = None,
) -> None:
    """Run the projection worker and the query API (and the gateway with --gateway) in the foreground,
    restarting each when it exits, with a growing pause when it failed; Ctrl-C or SIGTERM stops them all."""
    from services.hub import Hub

    with Hub() as hub:
        hub.governance  # noqa: B018 - fail now, clearly, if there is no governance
        settings = hub.settings
    api_port = api_port or settings.api_port
    _free(settings.api_host, api_port, "the query API")
    if gateway:
        _free("127.0.0.1", gateway_port, "the gateway")
    worker = ["project", "run"]
    worker_health_port = worker_health_port or settings.worker_health_port
    if worker_health_port is not None:
        _free(settings.worker_health_host, worker_health_port, "the worker's health listener")
        worker += ["--health-port", str(worker_health_port)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parts = [
        Supervisor(_sharehub(*worker), name="projection worker", stop_timeout_s=WORKER_STOP_S),
        _server("query API", "serve", "--port", str(api_port)),
    ]
    if gateway:
        parts.append(_server("gateway", "serve", "gateway", "--port", str(gateway_port)))
    raise typer.Exit(supervise_all(parts))


def _server(name: str, *args: str) -> Supervisor:
    """A server's supervisor: it has no start-over exit, so every exit is a failure."""
    return Supervisor(_sharehub(*args), name=name, starts_over=False, stop_timeout_s=SERVER_STOP_S)


def _sharehub(*args: str) -> list[str]:
    return [sys.executable, "-m", "services", *args]


def _free(host: str, port: int, part: str) -> None:
    """Refuse to start when ``port`` is taken: the part would only fail and be restarted forever."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise fail(
                f"port {port} on {host} for {part} is not free ({exc.strerror}); choose another"
            ) from None
