"""Fixed-rate request loops and the query API as a real server process (uvicorn, HTTPS) on 127.0.0.1.

Latency is measured from when a request was *due*, not from when it was sent: if the server falls
behind, the wait shows up in the numbers instead of silently lowering the rate (coordinated omission).
Requests go out from one event loop that starts each at its time, however many are still waiting for
their answers, so the client itself is not what falls behind. (Client threads were: sixteen of them
contending for one interpreter lock put several milliseconds of the client's own queueing into every
request's latency, and spent twice the CPU of this loop on the cores the server needs.)
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx2

from bench.stats import percentile
from sharehub import pki

START_TIMEOUT_S = 60.0
#: Connections the client keeps open at most: more than are ever waiting at 500 requests/s.
CLIENT_CONNECTIONS = 64


def paced(count: int, rate: float, call: Callable[[int], None]) -> list[float]:
    """Call ``call(i)`` for i in 0..count-1 at ``rate`` per second; latency of each in milliseconds. For
    calls that finish without waiting (a read of a local file): each runs when due, one after another."""

    async def run(i: int) -> None:
        call(i)

    return asyncio.run(_open_loop(count, rate, run))


@contextmanager
def collector_pauses() -> Iterator[list[float]]:
    """The milliseconds each of this process's garbage collections took while the block ran: a client that
    pauses delays the requests it sends, and its pauses count in the latencies it measures."""
    pauses: list[float] = []
    started: list[float] = []

    def timed(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append((time.perf_counter() - started.pop()) * 1000)

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)


def paced_gets(
    count: int,
    rate: float,
    url: str,
    keys: list[str],
    headers: dict[str, str],
    tls: ssl.SSLContext | None = None,
    *,
    connect_first: int = 0,
) -> list[float]:
    """GET ``url + keys[i]`` for i in 0..count-1 at ``rate`` per second over keep-alive connections (HTTPS
    verified with ``tls``, the server's :attr:`Server.tls`); latency of each in milliseconds. Anything but 200
    fails loudly.

    ``connect_first``: before the clock starts, that many GETs (of the first keys, not timed) at once, so
    that the client holds that many open connections: the run then measures requests, not TLS handshakes.
    Otherwise the first requests of a run open the connections as they go, and the handshakes (about a
    millisecond of the server's CPU each, dozens of them at 1,000 requests/s) stall the server for a
    hundred milliseconds or more at the start of every run."""

    async def run() -> list[float]:
        connector = aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS, ssl=tls if tls is not None else True)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def get(i: int) -> None:
                async with session.get(url + keys[i], params=BENCH_PURPOSE) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {keys[i]}: {response.status} {body[:200]!r}")

            await asyncio.gather(*(get(i % len(keys)) for i in range(connect_first)))
            return await _open_loop(count, rate, get)

    return asyncio.run(run())


async def _open_loop(count: int, rate: float, call: Callable[[int], Awaitable[None]]) -> list[float]:
    """Open loop: call ``i`` starts when due (``i / rate`` seconds after the start), whether or not the
    calls before it have finished, as with many independent users; its latency counts from then. The
    loop's timer may wake a call up to about a millisecond late: both sides of a comparison share that."""
    loop = asyncio.get_running_loop()
    latencies = [0.0] * count
    start = loop.time() + 0.01

    async def timed(i: int, due: float) -> None:
        await call(i)
        latencies[i] = (loop.time() - due) * 1000

    running: list[asyncio.Task[None]] = []
    for i in range(count):
        due = start + i / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        running.append(asyncio.ensure_future(timed(i, due)))
    await asyncio.gather(*running)  # the first failure fails the run
    return latencies


def paced_posts(
    count: int, rate: float, url: str, bodies: list[bytes], headers: dict[str, str], tls: ssl.SSLContext
) -> list[float]:
    """POST ``bodies[i]`` (JSON) to ``url`` for i in 0..count-1 at ``rate`` per second, each with its own
    Idempotency-Key, as :func:`paced_gets`; latency of each in milliseconds. Anything but 200 fails loudly."""

    async def run() -> list[float]:
        connector = aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS, ssl=tls)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def post(i: int) -> None:
                sent = {"Content-Type": "application/json", "Idempotency-Key": f"paced-{i}-{os.getpid()}"}
                async with session.post(url, data=bodies[i], headers=sent) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"POST {i}: {response.status} {body[:200]!r}")

            return await _open_loop(count, rate, post)

    return asyncio.run(run())


def latency_summary(latencies: list[float], prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}p50_ms": percentile(latencies, 50),
        f"{prefix}p99_ms": percentile(latencies, 99),
        f"{prefix}max_ms": max(latencies),
    }


#: An answer later than this is part of a pause (:func:`late_runs`).
LATE_MS = 50.0


def late_runs(latencies: list[float], rate: float, over_ms: float = LATE_MS) -> list[dict[str, float]]:
    """Where answers came back late, in the order requests were due at ``rate``: each run of late answers in
    a row, as the second into the series its first request was due, how many it holds and the longest. An
    open-loop series times each request from when it was due, so one pause makes a run of late answers; a
    pause of the whole machine shows as a run in whichever series was being measured."""
    runs: list[dict[str, float]] = []
    current: dict[str, float] | None = None
    for i, ms in enumerate(latencies):
        if ms <= over_ms:
            current = None
            continue
        if current is None:
            current = {"at_s": round(i / rate, 3), "requests": 0, "longest_ms": 0.0}
            runs.append(current)
        current["requests"] += 1
        current["longest_ms"] = max(current["longest_ms"], round(ms, 1))
    return runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_kb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a process's ``/proc/<pid>/stat`` after its command name (state, parent, ...); empty
    if the process is gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a live process has used so far, in seconds; 0 if it is gone."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def command_line(pid: int) -> str:
    """A live process's command line, its arguments joined by spaces; empty if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def rss_kb(pid: int) -> int:
    """VmRSS (current resident set) of a live process, in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def family(pid: int) -> list[int]:
    """``pid`` and every process descended from it (a worker and its engine process), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields:
            parents[int(stat.parent.name)] = int(fields[1])
    found = [pid]
    for member in found:
        found.extend(child for child, parent in parents.items() if parent == member)
    return found


def family_rss_kb(pid: int) -> tuple[int, int]:
    """(current, peak) resident set of ``pid`` and its descendants together, in KiB. The peak is the sum
    of each one's peak: an upper bound of the family's."""
    members = family(pid)
    return sum(rss_kb(m) for m in members), sum(peak_rss_kb(m) for m in members)


def family_cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` and its live descendants have used so far, together."""
    return sum(cpu_seconds(member) for member in family(pid))


class Server:
    """A running ``sharehub serve``: its base URL, the TLS its clients verify it with (the hub CA), and its
    peak RSS read just before it is stopped."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str, tls: ssl.SSLContext) -> None:
        self.proc = proc
        self.base = base
        self.tls = tls
        self.peak_rss_kb = 0


@contextmanager
def query_api(env: dict[str, str], log: Path) -> Iterator[Server]:
    """``sharehub serve`` on a free port of 127.0.0.1 in its own process group; stopped on the way out."""
    with served(["serve"], env, log) as server:
        yield server


@contextmanager
def gateway(env: dict[str, str], log: Path, options: list[str]) -> Iterator[Server]:
    """``sharehub serve gateway`` of the home in ``env`` (an agency's site), as :func:`query_api`."""
    with served(["serve", "gateway", *options], env, log) as server:
        yield server


@contextmanager
def served(command: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    port = free_port()
    # The hub CA, made now if the hub has none, so the client can trust the certificate serve is issued.
    tls_dir = pki.tls_dir(Path(env["SHAREHUB_HOME"]))
    pki.HubCA.open(tls_dir)
    tls = ssl.create_default_context(cafile=str(pki.HubCA.paths(tls_dir)[0]))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services", *command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"https://127.0.0.1:{port}", tls)
    try:
        _wait_healthy(server, log)
        yield server
    finally:
        server.peak_rss_kb = family_rss_kb(proc.pid)[1]  # with its worker processes, when it has some
        stop_group(proc)


def projection_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``sharehub project`` in its own process group, output to ``log``; :func:`stop_group` stops it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services", "project", "--loglevel", "WARNING"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_healthy(server: Server, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {server.proc.returncode}; see {log}")
        try:
            if httpx2.get(f"{server.base}/healthz", timeout=1, verify=server.tls).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S:.0f} s; see {log}")


#: Every query states its purpose (R7): the one the demo's agreement of dongthap-ppc on party-members names
#: (demo/hub.yaml), the consumer every benchmark queries as.
BENCH_PURPOSE = {"purpose": "party-member-management"}


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``condition`` every ``every`` seconds until it holds (then the monotonic time it did), or
    RuntimeError after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(every)
    return time.monotonic()
