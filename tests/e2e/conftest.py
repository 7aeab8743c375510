"""Fixtures of the end-to-end tests that several files share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services import processes
from services.hub import Hub
from tests.kafka_helpers import answers, free_port, hub_env, wait_until


@pytest.fixture
def api(hub: Hub) -> Iterator[str]:
    """A real API process of ``hub`` (the key service among its routes); its HTTPS base address."""
    port = free_port()
    processes.start(hub.home, "api", ["serve", "--port", str(port)], env=hub_env(hub))
    base = f"https://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(hub, base + "/healthz"), timeout=60, what="the API")
        yield base
    finally:
        processes.stop(hub.home, "api")
