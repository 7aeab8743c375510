"""The benches' view of a hub's read models answers alike on SQLite files and PostgreSQL schemas: progress is
the slowest consumer's positions on the topic, sizes are the consumer's own, and a run's leftovers can be
dropped. Run against real SQLite and real PostgreSQL, as the read-model contract is."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from bench.environment import settings
from bench.read_models import (
    backend,
    bare_engine,
    described,
    drop_schemas,
    engine_settings,
    events_projected,
    stored_bytes,
)
from projections.read_model_tables import Row, schema_name
from services.hub import Hub


def _postgres() -> str:
    url = os.environ.get("SHAREHUB_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("SHAREHUB_TEST_POSTGRES_URL is not set: run the suite with 'make test', which starts it")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    url = _postgres() if request.param == "postgresql" else None
    with Hub(settings(tmp_path, None, url)) as made:
        yield made


def _consumers() -> list[str]:
    """Names no other test's read models share (the PostgreSQL database is the whole suite's)."""
    tag = uuid.uuid4().hex[:8]
    return [f"ahead-{tag}", f"behind-{tag}", f"idle-{tag}"]


def _member(n: int) -> Row:
    occurred = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
    key = f"PM{n:010d}"
    return Row("party-members", key, f"ref-{n}", {"member_id": key}, str(uuid.uuid4()), occurred, "a")


def test_progress_is_the_slowest_consumers_positions_on_the_topic(hub: Hub) -> None:
    ahead, behind, idle = consumers = _consumers()
    try:
        hub.store(ahead).apply([_member(1)], {("members", 0): 7, ("members", 1): 5, ("other", 0): 90})
        hub.store(behind).apply([_member(2)], {("members", 0): 4, ("members", 1): 2})
        assert events_projected(hub, [ahead, behind], "members") == 6
        assert events_projected(hub, [ahead], "members") == 12
        assert events_projected(hub, consumers, "members") == 0  # one has applied nothing yet
        assert stored_bytes(hub, ahead) > 0
        assert stored_bytes(hub, ahead, with_logs=True) >= stored_bytes(hub, ahead)
        engine, table = bare_engine(hub, behind)
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT record_key FROM {table}")).scalars().all() == ["PM0000000002"]
        engine.dispose()
    finally:
        drop_schemas(hub.settings.read_model_url_template, consumers)
    if backend(hub) == "postgresql":
        with hub.store(ahead).engine.connect() as conn:
            schemas = set(inspect(conn).get_schema_names())
        assert not schemas & {schema_name(c) for c in consumers}


def test_a_report_says_how_durably_the_postgresql_server_it_measured_commits(hub: Hub) -> None:
    consumer = _consumers()[0]
    try:
        engine = hub.store(consumer).engine
        found = engine_settings(engine)
        with engine.connect() as conn:
            fsync = conn.exec_driver_sql("SHOW fsync").scalar_one() if backend(hub) == "postgresql" else None
    finally:
        drop_schemas(hub.settings.read_model_url_template, [consumer])
    assert found["backend"] == backend(hub)
    if fsync is None:
        assert described(found) == ""
    else:
        assert f"fsync={fsync}" in described(found) and "full_page_writes=" in described(found)
