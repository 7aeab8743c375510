"""Slow clients and oversized requests against each real HTTPS server (the query API, which also serves
governance and the key service, and the ingest gateway), over TLS, against the real broker: connections
that trickle their headers, never finish a body or never begin a TLS handshake do not stop an honest
request from being answered and are closed after their bound; past the connection limit the connection
waiting longest makes way; a body over the limit is 413 before it is read (declared, or chunked and
growing), huge headers are 431; nothing hangs.

The servers run with short bounds (seconds) so the test sees them expire; the defaults are in
:mod:`sharehub.settings` and RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services import processes
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import answers, free_port, hub_env, wait_until

pytestmark = pytest.mark.kafka

HEADER_S, BODY_S, HANDSHAKE_S = 2.0, 3.0, 2.0
MAX_BODY, MAX_CONNECTIONS = 65536, 8
#: How late past its bound a connection may still be closed on this loaded machine.
SLACK_S = 4.0
LIMITS = {
    "SHAREHUB_HTTP_HEADER_TIMEOUT_S": str(HEADER_S),
    "SHAREHUB_HTTP_BODY_TIMEOUT_S": str(BODY_S),
    "SHAREHUB_HTTP_TLS_HANDSHAKE_TIMEOUT_S": str(HANDSHAKE_S),
    "SHAREHUB_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "SHAREHUB_API_MAX_BODY": str(MAX_BODY),
}


@dataclass
class Server:
    name: str
    port: int
    ca: Path
    #: A route that reads a JSON body, and the headers a request to it needs to get that far.
    body_route: str
    body_headers: dict[str, str]

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def get(self, path: str, timeout: float = 30) -> httpx.Response:
        with httpx.Client(verify=self.tls(), timeout=timeout) as client:
            return client.get(f"https://127.0.0.1:{self.port}{path}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Hub]:
    """One hub for the module: its servers start once for all the tests (each a minute on a busy box)."""
    home = tmp_path_factory.mktemp("slow") / "home"
    settings = Settings(home=home, kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None)
    with Hub(settings) as hub:
        load(hub.governance_desk(), demo_spec())
        yield hub


@pytest.fixture(scope="module", params=["query API", "gateway"])
def server(request: pytest.FixtureRequest, hub: Hub) -> Iterator[Server]:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    if request.param == "query API":
        processes.start(hub.home, "api", ["serve", "--port", str(port)], env=hub_env(hub, **LIMITS))
        try:
            wait_until(lambda: answers(hub, base + "/healthz"), timeout=60, what="the API")
            token = issue_credential(hub, "cpo")
            yield Server(request.param, port, hub.settings.ca_file, "/v1/gov/register-agency",
                         {"Authorization": f"Bearer {token}"})  # fmt: skip
        finally:
            processes.stop(hub.home, "api")
        return
    command = [sys.executable, "-m", "services", "serve", "gateway", "--port", str(port)]
    log = hub.home / "gateway.log"
    with log.open("ab") as out:
        gateway = subprocess.Popen([*command, "--max-body", str(MAX_BODY)], env=hub_env(hub, **LIMITS),
                                   stdout=out, stderr=out)  # fmt: skip
    try:
        wait_until(lambda: answers(hub, base + "/healthz"), timeout=60, what="the gateway", log=log)
        token = issue_credential(hub, "go")  # in the hub's custody: the hub's gateway takes its records
        yield Server(request.param, port, hub.settings.ca_file, "/v1/datasets/citizen-feedback/records",
                     {"Authorization": f"Bearer {token}", "Idempotency-Key": "k1"})  # fmt: skip
    finally:
        gateway.terminate()
        gateway.wait(20)


async def _open(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, ssl=server.tls())


async def _closed_after(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: float
) -> tuple[float, bytes]:
    """Seconds from ``opened`` until the server closed the connection, and what it sent first."""
    answer = b""
    try:
        while chunk := await reader.read(65536):
            answer += chunk
    except (ConnectionError, ssl.SSLError):
        pass
    took = time.monotonic() - opened
    writer.close()
    return took, answer


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every_s: float) -> None:
    """Send ``data`` a byte at a time until the server closes the connection."""
    try:
        for byte in data:
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)
    except (ConnectionError, ssl.SSLError):
        return


async def _honest(server: Server) -> tuple[float, int]:
    started = time.monotonic()
    answer = await asyncio.to_thread(server.get, "/healthz")
    return time.monotonic() - started, answer.status_code


def test_headers_sent_a_byte_at_a_time_do_not_hold_the_server(server: Server) -> None:
    """Slow connections up to the limit, each trickling a header line forever (every byte would restart
    uvicorn's keep-alive timer): an honest request is answered while they are held, and each is answered
    408 and closed once its headers are HEADER_S late."""
    slow = MAX_CONNECTIONS - 2

    async def run() -> None:
        opened = [(await _open(server), time.monotonic()) for _ in range(slow)]
        trickles = [
            asyncio.create_task(_trickle(w, b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"y" * 200, 0.2))
            for (_, w), _ in opened
        ]
        took, status = await _honest(server)
        assert status == 200 and took < HEADER_S, f"{server.name}: honest request {status} in {took:.1f} s"
        closed = await asyncio.wait_for(
            asyncio.gather(*(_closed_after(r, w, at) for (r, w), at in opened)), HEADER_S + SLACK_S + 5
        )
        for seconds, answer in closed:
            assert HEADER_S * 0.9 <= seconds <= HEADER_S + SLACK_S, (
                f"{server.name}: closed at {seconds:.1f} s"
            )
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
            assert b'"error": "request_timeout"' in answer
        await asyncio.gather(*trickles)

    asyncio.run(run())


def test_a_body_that_never_ends_is_closed_and_honest_requests_pass(server: Server) -> None:
    async def run() -> None:
        (reader, writer), at = await _open(server), time.monotonic()
        head = "".join(f"{k}: {v}\r\n" for k, v in server.body_headers.items())
        writer.write(
            f"POST {server.body_route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: 1000\r\n\r\n".encode()
        )
        trickle = asyncio.create_task(_trickle(writer, b'{"id": "' + b"x" * 900, 0.2))
        took, status = await _honest(server)
        assert status == 200 and took < BODY_S, f"{server.name}: honest request {status} in {took:.1f} s"
        seconds, _ = await asyncio.wait_for(_closed_after(reader, writer, at), BODY_S + SLACK_S + 5)
        assert BODY_S * 0.9 <= seconds <= BODY_S + SLACK_S, f"{server.name}: closed at {seconds:.1f} s"
        await trickle

    asyncio.run(run())


def test_tls_handshakes_never_begun_are_dropped(server: Server) -> None:
    async def run() -> None:
        silent = []
        for _ in range(20):  # not counted against the connection limit: no HTTP connection yet
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            silent.append((reader, writer, time.monotonic()))
        took, status = await _honest(server)
        assert status == 200 and took < HANDSHAKE_S, f"{server.name}: honest request {status} in {took:.1f} s"
        closed = await asyncio.wait_for(
            asyncio.gather(*(_closed_after(r, w, at) for r, w, at in silent)), HANDSHAKE_S + SLACK_S + 5
        )
        for seconds, _ in closed:
            assert HANDSHAKE_S * 0.9 <= seconds <= HANDSHAKE_S + SLACK_S, f"closed at {seconds:.1f} s"

    asyncio.run(run())


def test_past_the_connection_limit_the_longest_waiting_makes_way(server: Server) -> None:
    """More slow connections than the limit: each new one closes the oldest still waiting for its headers,
    so an honest request is answered at once (not 503, not after a timeout)."""

    async def run() -> None:
        opened = []
        for _ in range(MAX_CONNECTIONS + 4):
            reader, writer = await _open(server)
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            await writer.drain()
            opened.append((reader, writer, time.monotonic()))
            await asyncio.sleep(0.05)
        took, status = await _honest(server)
        assert status == 200 and took < HEADER_S, f"{server.name}: honest request {status} in {took:.1f} s"
        closed = await asyncio.gather(*(_closed_after(*o) for o in opened))
        made_way = [answer for seconds, answer in closed if seconds < HEADER_S * 0.9]
        assert len(made_way) >= 4, "the oldest made way for newer connections before their deadline"
        assert all(a.startswith(b"HTTP/1.1 408 ") and b"the server is full" in a for a in made_way)
        assert closed[0][0] < HEADER_S * 0.9, "the first made way first"

    asyncio.run(run())


def _raw_request(server: Server, head: bytes, body_chunks: Sequence[bytes] = ()) -> bytes:
    """Send ``head`` (and ``body_chunks``, as they are) on a fresh TLS connection; what the server answers
    until it closes (a server that waited for more would fail the timeout)."""
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=15) as raw,
        server.tls().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        try:
            for data in (head, *body_chunks):
                tls.sendall(data)
        except (ConnectionError, ssl.SSLError):
            pass  # refused and closed while it was still being sent
        answer = b""
        try:
            while data := tls.recv(65536):
                answer += data
        except (ConnectionError, ssl.SSLError):
            pass
        return answer


def _post_head(server: Server, extra: str) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in server.body_headers.items())
    return (
        f"POST {server.body_route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}{extra}\r\n"
    ).encode()


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(server: Server) -> None:
    started = time.monotonic()
    answer = _raw_request(server, _post_head(server, "Content-Length: 1000000000\r\n"))  # and no body
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"error":"too_large"' in answer.replace(b" ", b"") and b"connection: close" in answer.lower()
    assert time.monotonic() - started < BODY_S, "answered at once, not when the body timed out"


def test_a_chunked_body_growing_past_the_limit_is_413_and_the_rest_unread(server: Server) -> None:
    piece = b'{"records": [' + b" " * 4096
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (4 * MAX_BODY // len(piece))
    answer = _raw_request(server, _post_head(server, "Transfer-Encoding: chunked\r\n"), chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"too_large" in answer and answer.count(b"HTTP/1.1") == 1, "one answer: the refusal"


@pytest.mark.parametrize(("name", "size"), [("one huge header", 200_000), ("many headers", 2_000)])
def test_huge_headers_are_431_and_closed(server: Server, name: str, size: int) -> None:
    if name == "one huge header":
        headers = f"X-Huge: {'h' * size}\r\n"
    else:
        headers = "".join(f"X-Many-{n}: {'m' * 40}\r\n" for n in range(size))
    started = time.monotonic()
    answer = _raw_request(server, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:200]
    assert time.monotonic() - started < HEADER_S + SLACK_S
    assert server.get("/healthz").status_code == 200, "the server still answers"


def test_the_query_api_in_several_processes_serves_each_with_the_same_bounds(hub: Hub) -> None:
    """``--workers 2``: each process starts (uvicorn's 5 s start bound killed them on a busy machine) and
    reads the bounds from its environment."""
    port = free_port()
    name = "api-workers"
    _, log = processes.start(
        hub.home, name, ["serve", "--port", str(port), "--workers", "2"], env=hub_env(hub, **LIMITS)
    )
    try:
        wait_until(lambda: answers(hub, f"https://127.0.0.1:{port}/healthz"), timeout=120, what="2 processes",
                   log=log)  # fmt: skip
        served = Server("query API, 2 processes", port, hub.settings.ca_file, "/", {})

        async def run() -> list[tuple[float, bytes]]:
            opened = []
            for _ in range(4):  # spread over both processes by the kernel
                reader, writer = await _open(served)
                writer.write(b"GET /healthz HTTP/1.1\r\n")
                opened.append((reader, writer, time.monotonic()))
            return await asyncio.gather(*(_closed_after(*o) for o in opened))

        for seconds, answer in asyncio.run(run()):
            assert HEADER_S * 0.9 <= seconds <= HEADER_S + SLACK_S and answer.startswith(b"HTTP/1.1 408 ")
        assert "died" not in log.read_text(), "no process was killed while it started"
    finally:
        processes.stop(hub.home, name)
