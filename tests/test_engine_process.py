"""The projection engine in a process of its own: calls, answers and failures cross the pipe intact, and a
failed or vanished engine is an error, never a hang."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.engine import Judged, LocalEngine
from projections.engine_process import EngineProcess, EngineProcessError
from projections.projector import LogMessage, Projector
from services.governance_bootstrap import load
from services.hub import Hub
from sharehub.errors import ConfigurationError
from sharehub.gov.log import MemoryLog
from sharehub.settings import Settings
from tests.conftest import demo_spec

PREFIX = "engine"


def offline_engine(home: str) -> LocalEngine:
    """Built in the engine process: demo governance in memory, SQLite read models under ``home``."""
    settings = Settings(home=Path(home), kafka_bootstrap="127.0.0.1:9", master_key=None, read_model_url=None)
    hub = Hub(settings, log=MemoryLog())
    load(hub, demo_spec(PREFIX), topics=False)
    stores = {consumer: hub.store(consumer) for consumer in hub.consumers()}
    return LocalEngine(Projector(hub.governance, hub.keys, stores), on_close=hub.close)


def refused_engine(home: str) -> LocalEngine:
    raise ConfigurationError(f"no read model may live under {home}")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    started = EngineProcess(offline_engine, str(tmp_path / "home"))
    yield started
    started.close()


def test_project_commits_at_once_only_a_batch_with_nothing_to_quarantine(engine: EngineProcess) -> None:
    [topic] = [t for t in engine.topics if "party-members" in t]
    garbage = LogMessage(topic, 0, 0, None, b"not an envelope")
    first = engine.project([garbage])
    assert not first.committed and first.rows == 0
    assert [(q.message, q.reason) for q in first.quarantined] == [(garbage, "malformed")]
    assert engine.stored_offset((topic, 0)) == 0, "positions wait until the quarantine has the event"
    engine.commit(first)
    again = engine.project([garbage])  # redelivered after a rebalance: judged already
    assert again.committed and again.quarantined == []
    assert engine.stored_offset((topic, 0)) == 1


def test_an_engine_failure_is_raised_in_the_worker_and_the_engine_goes_on(engine: EngineProcess) -> None:
    with pytest.raises(ValueError, match="no decided batch 41"):
        engine.commit(Judged([], 0, ticket=41))
    assert engine.stored_offset(("no-such-topic", 0)) == 0


def test_an_engine_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no read model may live under"):
        EngineProcess(refused_engine, str(tmp_path))


def test_a_vanished_engine_is_an_error_not_a_hang(engine: EngineProcess) -> None:
    assert engine.pid is not None
    os.kill(engine.pid, signal.SIGKILL)
    with pytest.raises(EngineProcessError, match="exited"):
        engine.stored_offset(("t", 0))


def test_closing_stops_the_engine_process(tmp_path: Path) -> None:
    started = EngineProcess(offline_engine, str(tmp_path / "home"))
    pid = started.pid
    started.close()
    assert pid is not None and not Path(f"/proc/{pid}").exists()
