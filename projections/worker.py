"""The projection worker: a faust-streaming app that feeds a projection engine from Kafka.

Positions live in the read models, not in Kafka's consumer-group offsets: on every partition assignment
the worker seeks to the least position any read model stored, and the projector skips what a read model
already holds. That is what makes a SIGKILL at any moment harmless.

The worker takes the next batch from Kafka while the engine (in a process of its own, see
:mod:`projections.engine_process`) projects the one before, and sends it at once, so that it waits in the
engine: faust's work per message and the projection's run on two cores, and the engine never waits for the
worker. Batches are projected one at a time, in the order taken; before partitions are taken away in a
rebalance, every batch already taken is committed. A batch that fails makes the worker start over from the
read models' positions: the stream has moved past events no read model holds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from projections.assignor import GuardedAssignor
from projections.engine import Judged, ProjectionEngine
from projections.projector import LogMessage, parsed
from projections.quarantine import encode_quarantined
from sharehub.collector import collect_for_batches
from sharehub.kafka import SASL_MECHANISM, KafkaAccess

log = logging.getLogger("sharehub.projection")

BATCH_SIZE = 1000
BATCH_WAIT_S = 0.2
#: How often the worker brings read models in line with the agreements (the purge's latency, plus the
#: governance refresh), and checks whether it must start over.
RECONCILE_EVERY_S = 1.0
#: How often the worker has each read model forget the past versions older than the history it keeps.
PRUNE_HISTORY_EVERY_S = 3600.0
#: faust.App attribute that holds why the worker stopped to start over (empty: it did not).
RESTART_REASONS = "sharehub_restart_reasons"


def create_app(
    engine: ProjectionEngine,
    bootstrap: str,
    *,
    group: str,
    quarantine_topic: str,
    datadir: Path,
    history_horizon: Callable[[], dt.datetime | None] = lambda: None,
) -> faust.App:
    """A faust app in consumer group ``group`` projecting every dataset topic the engine knows.

    ``history_horizon`` gives the earliest time reads "as of" may ask for (None: keep every version)."""
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
        PartitionAssignor=GuardedAssignor,  # a member with malformed metadata gets nothing, not a crash
    )
    # acks=False: faust commits no offsets to Kafka. Positions live in the read models alone; a committed
    # offset would have faust seek there (and drop everything below it) when partitions are assigned.
    topics = engine.topics
    datasets = app.topic(*topics, key_type=bytes, value_type=bytes, acks=False)
    quarantine = app.topic(quarantine_topic, key_type=bytes, value_type=bytes)
    dataset_topics = set(topics)
    # Each batch sent to the engine has a task that finishes it (quarantine, then commit if still due),
    # oldest first. The engine takes calls in the order sent, so batches are projected in the order taken.
    in_flight: collections.deque[asyncio.Future[None]] = collections.deque()
    restart_reasons: list[str] = []
    setattr(app, RESTART_REASONS, restart_reasons)

    @app.agent(datasets)
    async def project(stream: faust.StreamT[bytes]) -> None:
        collect_for_batches()  # the app, its consumer and the engine are made by the time agents start
        try:
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_S):
                if restart_reasons:
                    continue  # starting over from the read models' positions: these are read again then
                # Parsed here (no key is needed), so the engine only verifies, decrypts and writes.
                batch = [
                    LogMessage(
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        e.message.key,
                        e.message.value,
                        parsed(e.message.value),
                    )
                    for e in events
                ]
                # Sent at once: it crosses to the engine while the batch before is projected.
                answer = asyncio.wrap_future(engine.project_in_turn(batch))
                in_flight.append(asyncio.ensure_future(_finish(batch, answer)))
                await _while_more_in_flight_than(1)  # one batch waits in the engine, no more
        finally:
            await _while_more_in_flight_than(0)  # a stopping agent does not cancel a batch half way

    async def _while_more_in_flight_than(count: int) -> None:
        while len(in_flight) > count:
            await asyncio.wait([in_flight[0]])
            in_flight.popleft()

    async def _finish(batch: list[LogMessage], answer: asyncio.Future[Judged]) -> None:
        """Send what the engine quarantined, then have it commit; a batch that fails makes the worker
        start over from the read models' positions (the stream has moved past its events)."""
        try:
            decision = await answer
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
            if not decision.committed:
                await asyncio.to_thread(engine.commit, decision)
        except Exception as exc:
            await _start_over("a batch", exc)
            return
        if decision.rows:
            log.info("applied %d rows from %d events", decision.rows, len(batch))

    def _decide_to_start_over(reasons: list[str], level: int) -> bool:
        """Record why the worker starts over (the agent takes no batch from then on); False when it already
        is. The caller then stops it (faust's graceful stop): a fresh worker reads again from where the read
        models stand."""
        if restart_reasons:
            return False
        restart_reasons.extend(reasons)
        log.log(level, "starting over: %s", "; ".join(reasons))
        return True

    async def _start_over(what: str, exc: Exception) -> None:
        """After ``what`` failed in the engine (a batch; or a timer's call, as when the engine died): the
        engine projects no batch from now on, and the worker stops."""
        reason = f"{what} failed ({type(exc).__name__}: {exc})"
        if not _decide_to_start_over([reason], logging.ERROR):
            return
        with contextlib.suppress(Exception):  # a vanished engine projects nothing either
            await asyncio.to_thread(engine.abandon, reason)
        os.kill(os.getpid(), signal.SIGTERM)

    @app.timer(interval=RECONCILE_EVERY_S)
    async def reconcile() -> None:
        """Agreements take effect from the log: one that ends (revoked, suspended, expired) takes its rows
        along within seconds, whether or not events are flowing; one that starts, or replaces another with
        different terms, has its dataset projected again from the start. A dataset or consumer governance
        added, or a read model sent back to a dataset's start, makes the worker start over (positions live
        in the read models, so that is safe at any moment) to read from where every read model needs."""
        if restart_reasons:
            return
        try:
            reconciled = await asyncio.to_thread(engine.reconcile)
        except Exception as exc:  # a timer that raises would crash the worker instead
            await _start_over("reconciling", exc)
            return
        done, reasons = reconciled.done, reconciled.restart_reasons
        for (consumer, dataset), rows in sorted(done.purged.items()):
            log.warning(
                "purged %d rows of %s from %s's read model: no active agreement", rows, dataset, consumer
            )
        for (consumer, dataset), rows in sorted(done.reset.items()):
            log.warning(
                "%s's read model takes %s from its start under new terms (%d rows reset)",
                consumer,
                dataset,
                rows,
            )
        if reasons and _decide_to_start_over(reasons, logging.WARNING):
            os.kill(os.getpid(), signal.SIGTERM)  # faust's own graceful stop

    @app.timer(interval=PRUNE_HISTORY_EVERY_S)
    async def prune_history() -> None:
        """Past versions no allowed read "as of" needs any more are forgotten (SHAREHUB_HISTORY_DAYS)."""
        horizon = history_horizon()
        if horizon is None or restart_reasons:
            return
        try:
            forgotten = await asyncio.to_thread(engine.prune_history, horizon)
        except Exception as exc:
            await _start_over("pruning history", exc)
            return
        for consumer, versions in forgotten.items():
            if versions:
                log.info("%s's read model forgot %d versions from before %s", consumer, versions, horizon)

    held: set[TP] = set()

    @app.on_partitions_revoked.connect
    async def finish_taken_batches(sender: Any, revoked: set[TP], **_: Any) -> None:
        """Partitions may go to another worker: every batch taken from them is finished before they go."""
        if in_flight:
            await asyncio.wait(list(in_flight))

    @app.on_partitions_assigned.connect
    async def resume_from_read_models(sender: Any, assigned: set[TP], **_: Any) -> None:
        ours = {tp for tp in assigned if tp.topic in dataset_topics}
        newly = ours - held
        held.clear()
        held.update(ours)
        # Seek in faust's consumer thread (seek_wait), where the fetcher runs: a seek from this thread
        # races the fetcher. Reading the stored positions changes nothing in the projector.
        offsets = await asyncio.to_thread(
            lambda: {tp: engine.stored_offset((tp.topic, tp.partition)) for tp in ours}
        )
        if offsets:
            await app.consumer.seek_wait(offsets)
        for tp, offset in sorted(offsets.items()):
            log.info("resuming %s[%d] at %d", tp.topic, tp.partition, offset)
        # Partitions new to this worker may have moved on elsewhere: forget what we knew of them (after the
        # batches sent before, as the engine takes calls in order), so the next batch takes their chain
        # heads from the read models.
        await asyncio.to_thread(engine.forget, [(tp.topic, tp.partition) for tp in newly])

    return app


def run(app: faust.App, *, loglevel: str = "INFO") -> list[str]:
    """Run until SIGINT or SIGTERM. Returns why the worker stopped to start over (empty when it was
    stopped from outside): the caller starts a new worker then."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as stopped:
        reasons: list[str] = getattr(app, RESTART_REASONS, [])
        if not reasons:
            raise
        log.info("worker stopped (exit %s) to start over", stopped.code)
        return reasons
    return []
