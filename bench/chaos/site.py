"""Publishing from the owner's own site in a chaos scenario: the agency SDK (``open_publisher``), whose keys
come from the hub's key service over HTTPS, here a ``sharehub serve`` process of its own on a fixed port (so
that it can be taken away and come back at the address the site knows, while the query load goes on
against the scenario's query API).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.chaos.load import DATASET
from bench.scenarios.site_publish import PASSPHRASE, connected_site
from connectors.publisher import Publisher
from connectors.sdk import open_publisher
from services import processes
from services.hub import Hub
from sharehub import pki

PROCESS = "key-service"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class KeyService:
    """The hub's key service (its API) on ``port`` of 127.0.0.1, started and stopped by the scenario."""

    hub: Hub
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        pki.HubCA.open(pki.tls_dir(self.hub.home))  # made now if need be: its clients verify the API with it
        processes.start(self.hub.home, PROCESS, ["serve", "--host", "127.0.0.1", "--port", str(self.port)],
                        env=self.env)  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if time.monotonic() > deadline:
                raise SystemExit(f"chaos: the key service did not answer within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def kill(self) -> None:
        """Gone at once (SIGKILL), requests in flight included: the site's next call finds no one."""
        pid = processes.running_pid(self.hub.home, PROCESS)
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
        processes.stop(self.hub.home, PROCESS)  # reaps it, removes its pid file

    def stop(self) -> None:
        processes.stop(self.hub.home, PROCESS)

    def answers(self) -> bool:
        try:
            with httpx.Client(verify=str(self.hub.settings.ca_file), timeout=2) as client:
                return client.get(f"{self.url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False


def site_publisher(hub: Hub, key_service: KeyService) -> Callable[[], Publisher]:
    """What opens a publisher of the owner's site (connected now: its own signing key and client
    certificate, mutual TLS to every node), which takes its keys from ``key_service``."""
    site = connected_site(
        hub, hub.settings.bootstrap, key_service.url, mtls_bootstrap=hub.settings.mtls_bootstrap
    )
    return lambda: open_publisher(site, DATASET, PASSPHRASE)
