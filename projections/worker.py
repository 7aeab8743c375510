"""The projection worker: a faust-streaming app that feeds the :class:`Projector` from Kafka.

Positions live in the read models, not in Kafka's consumer-group offsets: on every partition assignment
the worker seeks to the least position any read model stored, and the projector skips what a read model
already holds. That is what makes a SIGKILL at any moment harmless.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from projections.projector import LogMessage, Projector
from projections.quarantine import encode_quarantined

log = logging.getLogger("sharehub.projection")

BATCH_SIZE = 500
BATCH_WAIT_S = 0.2


def create_app(
    projector: Projector, bootstrap: str, *, group: str, quarantine_topic: str, datadir: Path
) -> faust.App:
    """A faust app in consumer group ``group`` projecting every dataset topic the projector knows."""
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
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

    @app.agent(datasets)
    async def project(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_S):
            batch = [
                LogMessage(
                    e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value
                )
                for e in events
            ]
            decision = await asyncio.to_thread(projector.decide, batch)
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

    @app.on_partitions_assigned.connect
    async def resume_from_read_models(sender: Any, assigned: set[TP], **_: Any) -> None:
        for tp in assigned:
            if tp.topic in dataset_topics:
                offset = await asyncio.to_thread(projector.resume_offset, (tp.topic, tp.partition))
                await app.consumer.seek(tp, offset)
                log.info("resuming %s[%d] at %d", tp.topic, tp.partition, offset)

    return app


def run(app: faust.App, *, loglevel: str = "INFO") -> None:
    """Run until SIGINT or SIGTERM."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
