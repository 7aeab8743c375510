"""The projection worker's intake (:mod:`projections.intake`) against the real broker: faust's consumer hands
on every record of its topics once, each partition's in order, a batch at a time; and a batch whose fetch
spanned a new assignment is handed on as such, so that the worker can go back to where its stream stands."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import Producer

from projections.intake import batch_consumers
from projections.worker import BATCH_SIZE, _faust_app
from sharehub.kafka import KafkaAccess, client_config, ensure_topics

pytestmark = pytest.mark.kafka

RECORDS = 6000
PARTITIONS = 3


class Recorder:
    """A taker that keeps what it is handed, and stops the app once it holds ``until`` records."""

    def __init__(self, until: int) -> None:
        self.assignments = 0
        self.until = until
        self.batches: list[list[tuple[int, int, bytes]]] = []
        self.fetched_in: list[int] = []
        self.worker: faust.Worker | None = None

    async def take_batch(self, records: list[Any], fetched_in: int) -> None:
        self.batches.append([(r.partition, r.offset, r.value) for r in records])
        self.fetched_in.append(fetched_in)
        if self.assignments == 0:
            self.assignments = 1  # as a worker placed at its first assignment while this batch was fetched
        if sum(map(len, self.batches)) >= self.until and self.worker is not None:
            asyncio.ensure_future(self.worker.stop())


def _topic_with_records(admin: KafkaAccess) -> str:
    topic = f"intake-{uuid.uuid4().hex[:10]}"
    ensure_topics(admin, [(topic, PARTITIONS)])
    producer = Producer(client_config(admin, **{"linger.ms": 5}))
    for n in range(RECORDS):
        producer.produce(topic, key=b"%d" % n, value=b"record %d" % n, partition=n % PARTITIONS)
        if n % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    return topic


def _run(admin: KafkaAccess, topic: str, datadir: Path, recorder: Recorder) -> None:
    """faust's app with the intake over ``topic``, until ``recorder`` stops it (its worker in a process of
    its own, as ``sharehub project`` runs it: faust closes its event loop when it stops)."""
    app = _faust_app(admin, f"intake-test-{uuid.uuid4().hex[:8]}", datadir, 10.0)
    app.transport.Consumer = batch_consumers(recorder)  # type: ignore[assignment,misc]
    app.topics.add(app.topic(topic, key_type=bytes, value_type=bytes, acks=False))

    @app.timer(interval=90.0)
    async def give_up() -> None:  # (a hung intake fails the test instead of hanging it)
        assert recorder.worker is not None
        await recorder.worker.stop()

    recorder.worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    with contextlib.suppress(SystemExit):
        recorder.worker.execute_from_commandline()


def _taken(admin: KafkaAccess, topic: str, datadir: Path, until: int) -> Recorder:
    """Run the intake in a child process (spawned: a fresh interpreter) and return what its taker kept."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_run_and_return, (admin, topic, datadir, until))


def _run_and_return(admin: KafkaAccess, topic: str, datadir: Path, until: int) -> Recorder:
    recorder = Recorder(until)
    _run(admin, topic, datadir, recorder)
    recorder.worker = None
    return recorder


def test_every_record_is_handed_on_once_in_order_a_batch_at_a_time(
    kafka_admin: KafkaAccess, tmp_path: Path
) -> None:
    topic = _topic_with_records(kafka_admin)
    recorder = _taken(kafka_admin, topic, tmp_path / "app", RECORDS)

    taken = [record for batch in recorder.batches for record in batch]
    assert len(taken) == RECORDS, "every record once, none twice"
    for partition in range(PARTITIONS):
        offsets = [offset for p, offset, _ in taken if p == partition]
        assert offsets == list(range(RECORDS // PARTITIONS)), (
            f"partition {partition} in the order of its offsets"
        )
    assert {value for _, _, value in taken} == {b"record %d" % n for n in range(RECORDS)}
    assert max(map(len, recorder.batches)) <= BATCH_SIZE
    assert len(recorder.batches) <= 3 * RECORDS // BATCH_SIZE, "records come in batches, not one by one"


def test_each_batch_says_which_assignment_its_fetch_started_in(
    kafka_admin: KafkaAccess, tmp_path: Path
) -> None:
    topic = _topic_with_records(kafka_admin)
    recorder = _taken(kafka_admin, topic, tmp_path / "app", 2 * BATCH_SIZE)

    assert recorder.fetched_in[0] == 0
    assert recorder.fetched_in[1:] and set(recorder.fetched_in[1:]) == {1}, (
        "a fetch started after the taker was placed says so"
    )
