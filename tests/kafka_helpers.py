"""Helpers for tests that run the hub's real processes against the real broker."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from services import processes
from services.hub import Hub
from sharehub.kafka import read_topic, records

#: Seconds the broker waits for a killed worker before its partitions go to the next (the default is 60).
KILLED_WORKER_SESSION_S = 10


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def topic_messages(hub: Hub, topic: str) -> Iterator[tuple[int, int, bytes]]:
    """(partition, offset, value) of every message of ``topic``, read as the hub's services read it."""
    for record in records(read_topic(hub.kafka, topic)):
        yield record.partition, record.offset, record.value


def https_client(hub: Hub) -> httpx.Client:
    """A client of the hub's HTTPS APIs that verifies their certificate with the hub CA."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(hub.settings.ca_file)))


def answers(hub: Hub, url: str) -> bool:
    """``url`` of one of the hub's HTTPS servers answers 200; False while it is not up (its CA not even
    made, which ``serve`` does on first start)."""
    try:
        with https_client(hub) as client:
            return client.get(url, timeout=2).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sharehub(
    hub: Hub, *args: str, input_file: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real command line against ``hub``."""
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        env=hub_env(hub),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def served_api(hub: Hub) -> Iterator[str]:
    """A real ``sharehub serve`` process of ``hub`` (the key service and the console among its routes),
    stopped afterwards; its HTTPS base address."""
    port = free_port()
    processes.start(hub.home, "api", ["serve", "--port", str(port)], env=hub_env(hub))
    base = f"https://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(hub, base + "/healthz"), timeout=60, what="the API")
        yield base
    finally:
        processes.stop(hub.home, "api")


class Worker:
    """The projection worker as a real background process."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pid: int | None = None
        self.log: Path | None = None

    def start(self, **env: str) -> None:
        """Start it, with ``env``'s settings (``SHAREHUB_...``) on top of the hub's."""
        self.pid, self.log = processes.start(
            self.hub.home, "projector", ["project"], env=hub_env(self.hub, **env)
        )

    def stop(self) -> None:
        processes.stop(self.hub.home, "projector")

    def alive(self) -> bool:
        return processes.running_pid(self.hub.home, "projector") is not None


def hub_env(hub: Hub, **extra: str) -> dict[str, str]:
    """Environment for running sharehub commands against ``hub`` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    if hub.settings.read_model_url:
        env["SHAREHUB_READ_MODEL_URL"] = hub.settings.read_model_url
    env.update(
        SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE=str(hub.settings.admin_password_path),
        SHAREHUB_KAFKA_CA_FILE=str(hub.settings.kafka_ca_path),
        SHAREHUB_KAFKA_MTLS_BOOTSTRAP=hub.settings.mtls_bootstrap,
        SHAREHUB_HOME=str(hub.home),
        SHAREHUB_KAFKA_BOOTSTRAP=hub.settings.bootstrap,
        SHAREHUB_CACHE_DIR=str(hub.settings.cache_dir),
        **extra,
    )
    return env
