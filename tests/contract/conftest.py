"""The contract tests' fixtures: the governance service (the log in memory, and again on the real broker), and
a read model on real SQLite and on real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.read_model import ReadModelStore
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


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/{{consumer}}.db"


def postgres_url(_tmp_path: Path) -> str:
    url = os.environ.get("SHAREHUB_TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "SHAREHUB_TEST_POSTGRES_URL is not set: run the suite with 'make test', which starts PostgreSQL"
        )
    return url


@pytest.fixture(
    params=[
        pytest.param(sqlite_url, id="sqlite"),
        pytest.param(postgres_url, id="postgres", marks=pytest.mark.postgres),
    ]
)
def url_template(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.param(tmp_path))


@pytest.fixture
def store(url_template: str) -> Iterator[ReadModelStore]:
    s = ReadModelStore(url_template, f"c-{uuid.uuid4().hex[:8]}")
    s.create()
    yield s
    s.drop()
    s.close()
