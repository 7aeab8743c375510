"""Fixtures of the end-to-end tests that several files share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.hub import Hub
from tests.kafka_helpers import served_api


@pytest.fixture
def api(hub: Hub) -> Iterator[str]:
    """A real API process of ``hub`` (the key service among its routes); its HTTPS base address."""
    with served_api(hub) as base:
        yield base
