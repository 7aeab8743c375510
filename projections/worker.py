"""The projection worker: a faust-streaming app that feeds the :class:`Projector` from Kafka.

Positions live in the read models, not in Kafka's consumer-group offsets: on every partition assignment
the worker seeks to the least position any read model stored, and the projector skips what a read model
already holds. That is what makes a SIGKILL at any moment harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from projections.projector import Decision, LogMessage, Projector
from projections.quarantine import encode_quarantined
from sharehub.kafka import SASL_MECHANISM, KafkaAccess

log = logging.getLogger("sharehub.projection")

BATCH_SIZE = 500
BATCH_WAIT_S = 0.2
#: How often the worker looks for agreements that ended (the purge's latency, plus the governance refresh).
PURGE_EVERY_S = 1.0


def create_app(
    projector: Projector,
    bootstrap: str,
    *,
    group: str,
    quarantine_topic: str,
    datadir: Path,
    before_batch: Callable[[], object] = lambda: None,
) -> faust.App:
    """A faust app in consumer group ``group`` projecting every dataset topic the projector knows.

    ``before_batch`` runs on the batch's thread before the projector decides (the hub brings governance up
    to date there, so an agreement suspended on the log stops granting from the next batch on)."""
    login = bootstrap.sasl_config() if isinstance(bootstrap, KafkaAccess) else {}
    credentials = (
        faust.SASLCredentials(
            username=login["sasl.username"], password=login["sasl.password"], mechanism=SASL_MECHANISM
        )
        if login
        else None
    )
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        broker_credentials=credentials,
        datadir=str(datadir),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        autodiscover=False,
        topic_disable_leader=True,
        topic_allow_declare=False,  # governance creates every topic; the projection creates none
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=BATCH_SIZE,
        broker_commit_interval=1.0,
    )
    datasets = app.topic(*projector.topics, key_type=bytes, value_type=bytes)
    quarantine = app.topic(quarantine_topic, key_type=bytes, value_type=bytes)
    dataset_topics = set(projector.topics)
    # One batch at a time (decide → quarantine → commit), and the projector's memory of a partition is only
    # dropped between batches.
    one_at_a_time = asyncio.Lock()

    @app.agent(datasets)
    async def project(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_S):
            async with one_at_a_time:
                await _project(events)

    async def _project(events: Any) -> None:
        batch = [
            LogMessage(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in events
        ]

        def decide() -> Decision:
            before_batch()
            return projector.decide(batch)

        decision = await asyncio.to_thread(decide)
        for entry in decision.quarantined:
            key, value = encode_quarantined(entry)
            delivered = await quarantine.send(key=key, value=value)
            await delivered  # on the broker before the positions move past it
            log.warning(
                "quarantined %s[%d]@%d: %s",
                entry.message.topic,
                entry.message.partition,
                entry.message.offset,
                entry.reason,
            )
        await asyncio.to_thread(projector.commit, decision)
        if decision.applied():
            log.info("applied %d rows from %d events", decision.applied(), len(batch))

    @app.timer(interval=PURGE_EVERY_S)
    async def purge_ungranted() -> None:
        """An agreement that ends (revoked, suspended, expired) takes its rows along within seconds, whether
        or not events are flowing."""

        def purge() -> dict[tuple[str, str], int]:
            before_batch()
            return projector.purge_ungranted()

        async with one_at_a_time:
            purged = await asyncio.to_thread(purge)
        for (consumer, dataset), rows in sorted(purged.items()):
            log.warning(
                "purged %d rows of %s from %s's read model: no active agreement", rows, dataset, consumer
            )

    held: set[TP] = set()

    @app.on_partitions_assigned.connect
    async def resume_from_read_models(sender: Any, assigned: set[TP], **_: Any) -> None:
        ours = {tp for tp in assigned if tp.topic in dataset_topics}
        newly = ours - held
        held.clear()
        held.update(ours)
        # Seek in faust's consumer thread (seek_wait), where the fetcher runs: a seek from this thread
        # races the fetcher. Reading the stored positions changes nothing in the projector.
        offsets = await asyncio.to_thread(
            lambda: {tp: projector.stored_offset((tp.topic, tp.partition)) for tp in ours}
        )
        if offsets:
            await app.consumer.seek_wait(offsets)
        for tp, offset in sorted(offsets.items()):
            log.info("resuming %s[%d] at %d", tp.topic, tp.partition, offset)
        # Partitions new to this worker may have moved on elsewhere: forget what we knew of them, once any
        # batch in flight has committed, so the next batch takes their chain heads from the read models.
        async with one_at_a_time:
            projector.forget([(tp.topic, tp.partition) for tp in newly])

    return app


def run(app: faust.App, *, loglevel: str = "INFO") -> None:
    """Run until SIGINT or SIGTERM."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
