"""``sharehub up`` supervises the worker and the query API as real processes on the real broker: each part
killed is started again, SIGTERM stops every part and exits 0, and nothing outlives a killed supervisor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load import family
from services.hub import Hub
from tests.kafka_helpers import answers, free_port, hub_env, sharehub, wait_until


def _child(pid: int, marker: bytes) -> int | None:
    """The child of ``pid`` whose command line holds ``marker``."""
    for member in family(pid)[1:]:
        try:
            cmdline = Path(f"/proc/{member}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and marker in cmdline:
            return member
    return None


def _gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


@pytest.fixture
def up(hub: Hub, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``sharehub up --gateway`` of ``hub`` running; (its process, the API's address, its log). The
    gateway's address is the API's with the next port."""
    port = _two_free_ports()
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services", "up", "--gateway", "--api-port", str(port)]
            + ["--gateway-port", str(port + 1)],
            env=hub_env(hub),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, f"https://127.0.0.1:{port}", log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _two_free_ports() -> int:
    """A port free with the next one."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


API, WORKER, GATEWAY = b"\x00serve\x00--port", b"\x00project\x00run\x00", b"\x00serve\x00gateway\x00"


def test_up_restarts_each_killed_part_and_stops_all_on_sigterm(
    hub: Hub, up: tuple[subprocess.Popen[bytes], str, Path]
) -> None:
    proc, base, log = up
    wait_until(lambda: answers(hub, base + "/readyz"), timeout=90, what="the API ready", log=log)
    gateway = base.rsplit(":", 1)[0] + f":{int(base.rsplit(':', 1)[1]) + 1}"
    wait_until(lambda: answers(hub, gateway + "/readyz"), timeout=30, what="the gateway ready", log=log)
    api, worker = _child(proc.pid, API), _child(proc.pid, WORKER)
    assert api is not None and worker is not None and _child(proc.pid, GATEWAY) is not None, log.read_text()

    os.kill(api, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: _child(proc.pid, API) not in (None, api), timeout=10, what="a new API", log=log)
    wait_until(lambda: answers(hub, base + "/healthz"), timeout=45, what="the new API", log=log)
    assert time.monotonic() - killed < 45

    os.kill(worker, signal.SIGKILL)
    wait_until(
        lambda: _child(proc.pid, WORKER) not in (None, worker), timeout=10, what="a new worker", log=log
    )
    text = log.read_text()
    assert "query API was killed by SIGKILL (status -9); starting a new one in 1 s" in text
    assert "projection worker was killed by SIGKILL (status -9); starting a new one in 1 s" in text

    everyone = family(proc.pid)[1:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=45) == 0, log.read_text()[-3000:]
    wait_until(lambda: _gone(everyone), timeout=5, what="every part gone", log=log)
    assert "SIGTERM: stopping projection worker, query API, gateway" in log.read_text()
    assert log.read_text().rstrip().endswith("every part stopped")


def test_up_refuses_a_taken_port(hub: Hub) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sharehub(hub, "up", "--api-port", str(port), timeout=60)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 for the query API is not free" in result.stderr
    assert "Traceback" not in result.stderr


def test_parts_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """The parts' parent-death signal is tied to the thread that started them: it must fire only when the
    supervising process dies, and then it must."""
    script = (
        "from services.supervisor import Supervisor, supervise_all\n"
        "parts = [Supervisor(['sleep', '60'], name=n) for n in ('one', 'two')]\n"
        "supervise_all(parts)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(family(proc.pid)) == 3, timeout=10, what="two parts")
        parts = family(proc.pid)[1:]
        proc.kill()
        proc.wait()
        wait_until(lambda: _gone(parts), timeout=5, what="the parts gone with their supervisor")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
