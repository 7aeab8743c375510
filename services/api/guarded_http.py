"""Every HTTPS server's defence against slow clients, in uvicorn's own extension points.

uvicorn bounds only the idle time between two requests (``timeout_keep_alive``, restarted by every byte
that arrives): a client that sends its headers a byte at a time, never finishes its body, or opens a
connection and sends nothing holds it as long as it likes (uvicorn's issue #157 lists the
``--timeout-request-start`` and ``--timeout-request-complete`` it does not have). So each server
(:func:`run_https`) runs with

- :class:`GuardedHttpProtocol`, uvicorn's httptools protocol (its ``http`` setting takes a class) with
  deadlines: a request's line and headers within ``http_header_timeout_s`` of the connection opening or of
  the request's first byte (else ``408`` and the connection closed), the whole body within
  ``http_body_timeout_s`` of the headers (else the connection is closed and the application sees the
  client gone); line and headers of at most ``http_max_header_bytes`` (else ``431``, closed); and at most
  ``http_max_connections`` connections: one more closes the connection that has waited longest for a
  request's headers (slow clients make way for new ones), or, when every connection has a request in hand,
  uvicorn answers it ``503`` (its ``limit_concurrency``);
- :class:`HandshakeBoundedLoop`, uvloop's loop (uvicorn's ``loop`` setting names its factory) whose TLS
  listeners drop a handshake not done within ``http_tls_handshake_timeout_s`` (instead of 60 s).

The limits come from the settings (``SHAREHUB_HTTP_*``), read once per process, so ``--workers``
processes have them too. Bodies are bounded inside the application (:mod:`services.api.body_limit`),
where a ``413`` has the APIs' JSON shape.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sharehub.pki import ServerCertificate
from sharehub.settings import Settings

#: Seconds a ``--workers`` process has to start serving before uvicorn kills it and starts another
#: (uvicorn's default, 5 s, is less than the API takes to start on a busy machine: it never served).
WORKER_START_S = 60


@dataclass(frozen=True)
class HttpLimits:
    tls_handshake_s: float
    header_s: float
    body_s: float
    keep_alive_s: int
    max_header_bytes: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        return cls(
            tls_handshake_s=settings.http_tls_handshake_timeout_s,
            header_s=settings.http_header_timeout_s,
            body_s=settings.http_body_timeout_s,
            keep_alive_s=settings.http_keep_alive_s,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=settings.http_max_connections,
        )


@functools.cache
def process_limits() -> HttpLimits:
    """This process's limits, from its environment (a ``--workers`` process reads its own)."""
    return HttpLimits.of(Settings())


class HeadersTooLarge(Exception):
    """Raised in a parser callback to stop parsing a request whose headers pass the limit."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on receiving a request and a bound on its headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = process_limits()
        self._deadline: asyncio.TimerHandle | None = None
        #: Loop time since which the connection waits for a request's headers; None while it has one.
        self.waiting_since: float | None = None
        #: Bytes received while waiting for the end of the headers, and bytes of line and headers parsed.
        self._header_bytes = self._parsed_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = self.loop.time()
        self._arm(self._limits.header_s)
        self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.waiting_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self.waiting_since is not None and not self.transport.is_closing():
            # Still no end of headers: every byte since the request began is line and headers.
            self._header_bytes += len(data)
            if self._header_bytes > self._limits.max_header_bytes:
                self._refuse(431, "headers_too_large", "the request's line and headers are too large")

    def send_400_response(self, msg: str) -> None:
        if self._parsed_bytes > self._limits.max_header_bytes:  # the parser stopped at _count_parsed
            self._refuse(431, "headers_too_large", "the request's line and headers are too large")
        else:
            super().send_400_response(msg)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_parsed(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_parsed(len(name) + len(value) + 4)

    def _count_parsed(self, size: int) -> None:
        # A whole header block can arrive in one read: counted as it is parsed, and the parse stopped
        # (uvicorn then answers the parser's error, with send_400_response).
        self._parsed_bytes += size
        if self._parsed_bytes > self._limits.max_header_bytes:
            raise HeadersTooLarge

    def on_message_begin(self) -> None:
        self._parsed_bytes = 0
        super().on_message_begin()
        if self.waiting_since is None:  # a request following one still being answered
            self.waiting_since, self._header_bytes = self.loop.time(), 0
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm(self._limits.header_s)

    def on_headers_complete(self) -> None:
        self.waiting_since, self._header_bytes = None, 0
        self._arm(self._limits.body_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.waiting_since is None and not self.pipeline:
            self.waiting_since, self._header_bytes = self.loop.time(), 0  # idle: uvicorn's keep-alive

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.waiting_since is not None:
            self._refuse(408, "request_timeout", "the request's headers did not arrive in time")
        else:  # the body is late: the application sees the client gone
            self.transport.close()

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer ``status`` with the APIs' JSON refusal and close, unless a response is under way."""
        self._disarm()
        self.waiting_since = None
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps({"error": code, "detail": detail}).encode()
            reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}[status]
            self.transport.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
        self.transport.close()

    def _make_room(self) -> None:
        """Past the connection limit, close the connection that has waited longest for its headers."""
        if len(self.connections) <= self._limits.max_connections:
            return
        waiting = [
            c for c in self.connections
            if c is not self and isinstance(c, GuardedHttpProtocol) and c.waiting_since is not None
        ]  # fmt: skip
        if waiting:
            oldest = min(waiting, key=lambda c: c.waiting_since or 0.0)
            self.connections.discard(oldest)  # gone now, not when the loop next reports it lost
            oldest._refuse(408, "request_timeout", "closed for a new connection: the server is full")


#: Seconds a closing TLS connection waits for the client's close_notify (uvloop's default, 30 s): a client
#: that holds an idle keep-alive connection and reads nothing (a publisher between two batches) held a
#: graceful stop of the server that long.
TLS_SHUTDOWN_S = 2.0


class HandshakeBoundedLoop(uvloop.Loop):
    """uvloop's loop whose TLS listeners end handshakes that take longer than the process's limit, and
    wait at most :data:`TLS_SHUTDOWN_S` for a client to answer the closing of a connection."""

    async def create_server(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> asyncio.AbstractServer:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", process_limits().tls_handshake_s)
            kwargs.setdefault("ssl_shutdown_timeout", TLS_SHUTDOWN_S)
        return await super().create_server(*args, **kwargs)


def run_https(
    app: Any, *, host: str, port: int, certificate: ServerCertificate, log_level: str, **options: Any
) -> None:
    """Serve ``app`` (an ASGI app, or an import string with ``factory``/``workers`` in ``options``) over
    TLS with :class:`GuardedHttpProtocol` and :class:`HandshakeBoundedLoop`, writing no access lines."""
    import uvicorn

    limits = process_limits()
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, access_log=False,
        loop=f"{__name__}:{HandshakeBoundedLoop.__name__}", http=GuardedHttpProtocol,
        timeout_keep_alive=limits.keep_alive_s, limit_concurrency=limits.max_connections + 1,
        ssl_certfile=str(certificate.cert_file), ssl_keyfile=str(certificate.key_file),
        timeout_worker_healthcheck=WORKER_START_S, **options,
    )  # fmt: skip
