"""The projection worker's health and readiness, over plain HTTP on a local port (opt-in: ``--health-port``
or ``SHAREHUB_WORKER_HEALTH_PORT``), for systemd, ``sharehub up``, a load balancer or an orchestrator.

- ``GET /healthz``: ``200 {"status": "ok"}`` while the worker process serves and has not decided to start
  over (then ``503``: a fresh worker replaces it).
- ``GET /readyz``: ``200 {"status": "ready"}`` when the broker answers with the worker's login, the read
  models answer (the worker's last reconciliation, which asks every one of them, succeeded within
  :data:`RECONCILED_WITHIN_S`), and the consumer group has given the worker its share of the partitions
  (possibly none, when there are more workers than partitions); otherwise ``503 {"error": "unavailable",
  "detail": ...}`` naming each reason, with ``Retry-After``.

The answers say nothing but ready or why not, and take no credential: bind the listener to loopback (the
default host) or a network only probes reach.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from sharehub.errors import BrokerError, ConfigurationError

#: How recent the last successful reconciliation must be (the worker reconciles every second).
RECONCILED_WITHIN_S = 10.0
RETRY_AFTER_S = 5


class WorkerState(Protocol):
    """What readiness reads of the worker (:class:`projections.worker.ProjectionWorker`)."""

    #: Why it stops to start over; empty while it runs on.
    restart_reasons: list[str]
    #: ``time.monotonic()`` of the last successful reconciliation, and of the last partition assignment
    #: (None before the first, and while partitions are being taken away).
    reconciled_at: float | None
    assigned_at: float | None


@dataclass
class Readiness:
    worker: WorkerState
    #: Raises BrokerError when the broker does not answer with the worker's login.
    broker_check: Callable[[], None]
    clock: Callable[[], float] = field(default=time.monotonic)

    def alive(self) -> list[str]:
        return (
            [f"starting over: {'; '.join(self.worker.restart_reasons)}"]
            if self.worker.restart_reasons
            else []
        )

    def not_ready(self) -> list[str]:
        """Every reason the worker is not ready; empty when it is."""
        reasons = self.alive()
        reconciled = self.worker.reconciled_at
        if reconciled is None:
            reasons.append("the read models have not answered yet")
        elif self.clock() - reconciled > RECONCILED_WITHIN_S:
            reasons.append(f"the read models have not answered for {self.clock() - reconciled:.0f} s")
        if self.worker.assigned_at is None:
            reasons.append("no partition assignment from the consumer group yet")
        try:
            self.broker_check()
        except BrokerError as exc:
            reasons.append(str(exc))
        return reasons


class HealthListener:
    """``/healthz`` and ``/readyz`` of ``readiness`` on ``host:port``, served by a thread of its own."""

    def __init__(self, readiness: Readiness, host: str, port: int) -> None:
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(readiness))
        except OSError as exc:
            raise ConfigurationError(
                f"the worker's health port {port} on {host} is not free ({exc.strerror}); choose another"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> HealthListener:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(readiness: Readiness) -> type[BaseHTTPRequestHandler]:
    class Probe(BaseHTTPRequestHandler):
        timeout = 5  # seconds for a probe to send its request: a silent connection holds no thread long

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            checks = {"/healthz": (readiness.alive, "ok"), "/readyz": (readiness.not_ready, "ready")}
            if self.path not in checks:
                self._answer(404, {"error": "not_found", "detail": "only /healthz and /readyz are here"})
                return
            check, good = checks[self.path]
            reasons = check()
            if reasons:
                self._answer(503, {"error": "unavailable", "detail": "; ".join(reasons)})
            else:
                self._answer(200, {"status": good})

        def _answer(self, status: int, body: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", str(RETRY_AFTER_S))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            pass  # probes every few seconds would drown the worker's log

    return Probe
