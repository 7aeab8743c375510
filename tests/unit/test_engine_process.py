"""The projection engine in a process of its own: calls, answers and failures cross the pipe intact, and a
failed or vanished engine is an error, never a hang."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from projections.engine import EarlierBatchFailed, Judged, LocalEngine
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
    load(hub.governance_desk(), demo_spec(PREFIX), topics=False)
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


def test_calls_made_while_a_batch_waits_for_its_commit_are_taken_after_it(engine: EngineProcess) -> None:
    [topic] = [t for t in engine.topics if "party-members" in t]
    first = engine.project([LogMessage(topic, 0, 0, None, b"garbage")])
    assert not first.committed
    later = engine.project_in_turn([LogMessage(topic, 0, 1, None, b"more garbage")])
    # Reading a position may pass (it changes nothing); it was sent after the later batch, so that batch
    # has reached the engine and waits there.
    assert engine.stored_offset((topic, 0)) == 0
    assert not later.done(), "no batch is decided while the one before waits for its commit"
    engine.commit(first)
    second = later.result(timeout=30)
    assert [q.message.offset for q in second.quarantined] == [1]
    engine.commit(second)
    assert engine.stored_offset((topic, 0)) == 2


def test_no_batch_is_projected_after_one_was_given_up(engine: EngineProcess) -> None:
    [topic] = [t for t in engine.topics if "party-members" in t]
    first = engine.project([LogMessage(topic, 0, 0, None, b"garbage")])
    waiting = engine.project_in_turn([LogMessage(topic, 0, 1, None, b"more garbage")])
    engine.abandon("the quarantine topic is unreachable")
    with pytest.raises(EarlierBatchFailed, match="the quarantine topic is unreachable"):
        waiting.result(timeout=30)
    with pytest.raises(EarlierBatchFailed):
        engine.project([LogMessage(topic, 1, 0, None, b"garbage")])
    with pytest.raises(ValueError, match=f"no decided batch {first.ticket}"):
        engine.commit(first)
    assert engine.stored_offset((topic, 0)) == 0


def test_after_a_batch_fails_no_later_batch_is_projected(engine: EngineProcess, tmp_path: Path) -> None:
    """The stream moves past a failed batch: a later one would skip its events (a worker starts over)."""
    [topic] = [t for t in engine.topics if "party-members" in t]
    [read_model, *_] = sorted((tmp_path / "home" / "readmodels").glob("*.db"))
    with sqlite3.connect(read_model) as db:
        db.execute("DROP TABLE positions")
    with pytest.raises(Exception, match="no such table: positions"):
        engine.project([LogMessage(topic, 0, 0, None, b"garbage")])
    with sqlite3.connect(read_model) as db:  # repaired: still, what failed was never projected
        db.execute("CREATE TABLE positions (topic TEXT, partition INTEGER, next_offset INTEGER)")
    with pytest.raises(EarlierBatchFailed, match="no such table: positions"):
        engine.project([LogMessage(topic, 0, 1, None, b"garbage")])


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


def test_a_batch_sent_to_a_vanished_engine_fails_through_its_answer(engine: EngineProcess) -> None:
    """The worker sends a batch without waiting and learns of failures from the answer: a batch sent after
    the engine is known to be gone must fail there too (raising at the send crashed the worker instead of
    making it start over)."""
    assert engine.pid is not None
    os.kill(engine.pid, signal.SIGKILL)
    with pytest.raises(EngineProcessError, match="exited"):
        engine.stored_offset(("t", 0))  # by now the engine is known to be gone
    answer = engine.project_in_turn([LogMessage("t", 0, 0, None, b"garbage")])
    with pytest.raises(EngineProcessError, match="exited"):
        answer.result(timeout=10)


def test_closing_stops_the_engine_process(tmp_path: Path) -> None:
    started = EngineProcess(offline_engine, str(tmp_path / "home"))
    pid = started.pid
    started.close()
    assert pid is not None and not Path(f"/proc/{pid}").exists()


def test_every_call_that_learns_of_a_dead_engine_names_its_exit(tmp_path: Path) -> None:
    """Calls made at once from many threads learn of the death through a broken send or an unanswered
    call; each names the same exit (two threads reaping the process at once once left one without it)."""
    for attempt in range(3):
        engine = EngineProcess(offline_engine, str(tmp_path / f"home{attempt}"))
        try:
            assert engine.pid is not None
            os.kill(engine.pid, signal.SIGKILL)
            with ThreadPoolExecutor(max_workers=8) as pool:
                asked = [pool.submit(engine.stored_offset, ("t", 0)) for _ in range(64)]
                errors = {str(call.exception(timeout=30)) for call in asked}
            assert errors == {"the projection engine exited (code -9)"}
        finally:
            engine.close()
