"""The governance service of the contract tests: the log in memory, and again on the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sharehub.gov import GovernanceService
from tests.gov_support import Clock, seed, seeded, signing_key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def svc(request: pytest.FixtureRequest, clock: Clock) -> Iterator[GovernanceService]:
    """Every rule and transition with the log in memory, and again with the real governance topic."""
    if request.param == "memory":
        yield seeded(clock)
        return
    admin = request.getfixturevalue("kafka_admin")
    service = GovernanceService.open(admin, f"life{uuid.uuid4().hex[:10]}", signing_key(), "cpo", clock=clock)
    seed(service)
    yield service
    service.close()
