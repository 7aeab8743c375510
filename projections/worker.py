"""The projection worker: a faust-streaming app that feeds a projection engine from Kafka.

Positions live in the read models, not in Kafka's consumer-group offsets: on every partition assignment
the worker seeks to the least position any read model stored, and the projector skips what a read model
already holds. That is what makes a SIGKILL at any moment harmless.

The worker takes the next batch from Kafka (whole, as faust's consumer fetched it:
:mod:`projections.intake`) while the engine (in a process of its own, see :mod:`projections.engine_process`)
projects the one before, and sends it at once, so that it waits in the engine: taking and parsing, and the
projection, run on two cores, and the engine never waits for the worker. Batches are projected one at a
time, in the order taken; before partitions are taken away in a rebalance, every batch already taken is
committed. A batch that fails makes the worker start over from the read models' positions: the stream has
moved past events no read model holds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.errors import IllegalStateError
from faust.types import TP
from faust.types.auth import CredentialsT

from projections.assignor import GuardedAssignor
from projections.backfill import Backfill
from projections.engine import Judged, ProjectionEngine
from projections.generations import described, target_of
from projections.intake import batch_consumers
from projections.projector import LogMessage, parsed
from projections.quarantine import encode_quarantined
from projections.read_model_tables import TopicPartition
from sharehub.collector import collect_for_batches
from sharehub.kafka import SASL_MECHANISM, KafkaAccess

log = logging.getLogger("sharehub.projection")

#: The most records one batch to the engine holds (faust's consumer returns at most this many per fetch).
BATCH_SIZE = 1000
#: How often the worker brings read models in line with the agreements (the purge's latency, plus the
#: governance refresh), and checks whether it must start over.
RECONCILE_EVERY_S = 1.0
#: How often the worker has each read model forget the past versions older than the history it keeps.
PRUNE_HISTORY_EVERY_S = 3600.0


class ProjectionWorker:
    """A faust app in consumer group ``group`` projecting every dataset topic the engine knows; it owns the
    batches in flight and the reasons it stops to start over.

    ``history_horizons`` gives, per dataset, the earliest time reads "as of" may ask for (the hub's history
    days or the dataset's retention, :mod:`sharehub.history`); a dataset absent keeps every version.
    ``session_timeout_s`` is how long the broker waits for a worker that stopped heartbeating (killed) before
    its partitions go to the others in the group."""

    def __init__(
        self,
        engine: ProjectionEngine,
        bootstrap: str,
        *,
        group: str,
        quarantine_topic: str,
        datadir: Path,
        history_horizons: Callable[[], Mapping[str, dt.datetime]] = dict,
        session_timeout_s: float = 60.0,
    ) -> None:
        self.engine = engine
        self._history_horizons = history_horizons
        #: One task per batch sent to the engine (quarantine, then commit if still due), oldest first. The
        #: engine takes calls in the order sent, so batches are projected in the order taken.
        self.in_flight: collections.deque[asyncio.Future[None]] = collections.deque()
        #: Why the worker stops to start over; empty while it runs on (a state, set once).
        self.restart_reasons: list[str] = []
        #: When (``time.monotonic()``) reconciling last succeeded (every read model answered), and when the
        #: consumer group last assigned partitions (None while they are being taken away): its readiness.
        self.reconciled_at: float | None = None
        self.assigned_at: float | None = None
        self._held: set[TP] = set()
        #: How many assignments the worker has placed itself at (each seeks every partition it holds), and
        #: whether it stands at the last one (not while partitions are being taken away or given).
        self.assignments = 0
        self._placed = asyncio.Event()
        #: Per partition held, the offset the live stream takes next; and the backfills running beside it,
        #: by consumer (:mod:`projections.backfill`).
        self.live: dict[TopicPartition, int] = {}
        self.backfills: dict[str, Backfill] = {}
        self._bootstrap = bootstrap
        self._worker: faust.Worker | None = None
        #: Set once the app stops: no batch is sent to the engine from then on.
        self._stopping = False
        self._collecting_for_batches = False
        self.app = _faust_app(bootstrap, group, datadir, session_timeout_s)
        # faust's consumer subscribes to the topics its conductor holds, and hands each batch it fetches to
        # take_batch (no agent: faust's path per message was most of the worker's CPU).
        self.app.transport.Consumer = batch_consumers(self)  # type: ignore[assignment,misc]
        # acks=False: faust commits no offsets to Kafka. Positions live in the read models alone; a committed
        # offset would have faust seek there (and drop everything below it) when partitions are assigned.
        self._topics = set(engine.topics)
        self.app.topics.add(self.app.topic(*engine.topics, key_type=bytes, value_type=bytes, acks=False))
        self._quarantine = self.app.topic(quarantine_topic, key_type=bytes, value_type=bytes)
        self.app.on_before_shutdown.connect(cast(Any, self._finish_before_shutdown))
        self.app.timer(interval=RECONCILE_EVERY_S, name="reconcile")(self._reconcile)
        self.app.timer(interval=PRUNE_HISTORY_EVERY_S, name="prune-history")(self._prune_history)
        # (mode types its handlers as plain functions; a bound coroutine method is what it calls all the same)
        self.app.on_partitions_revoked.connect(cast(Any, self._finish_taken_batches))
        self.app.on_partitions_assigned.connect(cast(Any, self._resume_from_read_models))

    def run(self, *, loglevel: str = "INFO") -> list[str]:
        """Run until SIGINT or SIGTERM, or until it decides to start over. Returns why it stopped to start
        over (empty when it was stopped from outside): the caller starts a new worker then."""
        self._worker = faust.Worker(self.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
        try:
            self._worker.execute_from_commandline()
        except SystemExit as stopped:
            if not self.restart_reasons:
                raise
            log.info("worker stopped (exit %s) to start over", stopped.code)
        return self.restart_reasons

    # --- the stream -----------------------------------------------------------------------------------

    async def take_batch(self, records: list[Any], fetched_in: int) -> None:
        """Send a batch of records to the engine, and wait while one batch before it is still there.

        Each partition's records follow on from where the stream stands, unless the worker was placed at
        an assignment while they were fetched: they may come from before its seek or after, so the stream
        goes back to where it stands, and they are read again from there. While partitions are being taken
        away or given, the batch waits for the worker to stand at the new assignment."""
        await self._placed.wait()
        if self.restart_reasons or self._stopping:
            return  # starting over, or stopping: these are read again from the read models' positions
        if fetched_in != self.assignments:
            try:
                await self._seek(self.live)
            except IllegalStateError:  # a partition was taken away meanwhile: the next assignment seeks all
                log.info("partitions moved while the stream went back; the next assignment places it")
            return
        if not self._collecting_for_batches:
            collect_for_batches()  # the app, its consumer and the engine are made by the first batch
            self._collecting_for_batches = True
        # Parsed here (no key is needed), so the engine only verifies, decrypts and writes.
        batch = [
            LogMessage(r.topic, r.partition, r.offset, r.key, r.value or b"", parsed(r.value or b""))
            for r in records
        ]
        # Sent at once: it crosses to the engine while the batch before is projected. Where the stream
        # stands moves in the same step, so a backfill's hand-over is ordered with it.
        answer = asyncio.wrap_future(self.engine.project_in_turn(batch))
        for message in batch:
            self.live[message.tp] = max(self.live.get(message.tp, 0), message.offset + 1)
        self.in_flight.append(asyncio.ensure_future(self._finish(batch, answer)))
        await self._while_more_in_flight_than(1)  # one batch waits in the engine, no more

    async def _finish_before_shutdown(self, sender: Any, **_: Any) -> None:
        """The app stops (its fetcher has stopped): no batch is sent from now on, the backfills stop after
        the batch each has in the engine, and the batches in flight finish (none is cancelled half way)."""
        self._stopping = True
        await self._stop_backfills()
        await self._while_more_in_flight_than(0)

    async def _while_more_in_flight_than(self, count: int) -> None:
        while len(self.in_flight) > count:
            await asyncio.wait([self.in_flight[0]])
            self.in_flight.popleft()

    async def _finish(self, batch: list[LogMessage], answer: asyncio.Future[Judged]) -> None:
        """Send what the engine quarantined, then have it commit; a batch that fails makes the worker
        start over from the read models' positions (the stream has moved past its events)."""
        try:
            decision = await answer
            for entry in decision.quarantined:
                key, value = encode_quarantined(entry)
                delivered = await self._quarantine.send(key=key, value=value)
                await delivered  # on the broker before the positions move past it
                m = entry.message
                log.warning("quarantined %s[%d]@%d: %s", m.topic, m.partition, m.offset, entry.reason)
            if not decision.committed:
                await asyncio.to_thread(self.engine.commit, decision)
        except Exception as exc:
            await self._failed("a batch", exc)
            return
        if decision.rows:
            log.info("applied %d rows from %d events", decision.rows, len(batch))

    # --- starting over --------------------------------------------------------------------------------

    def _start_over(self, reasons: list[str], level: int) -> None:
        """Take no batch from now on, and stop (faust's graceful stop: batches in flight finish); a fresh
        worker reads again from where the read models stand. Only the first call counts."""
        if self.restart_reasons:
            return
        self.restart_reasons.extend(reasons)
        log.log(level, "starting over: %s", "; ".join(reasons))
        if self._worker is not None:
            asyncio.ensure_future(self._worker.stop())

    async def _failed(self, what: str, exc: Exception) -> None:
        """``what`` failed in the engine (a batch; or a timer's call, as when the engine died): the engine
        projects no batch from now on, and the worker starts over."""
        reason = f"{what} failed ({type(exc).__name__}: {exc})"
        if self.restart_reasons:
            return
        with contextlib.suppress(Exception):  # a vanished engine projects nothing either
            await asyncio.to_thread(self.engine.abandon, reason)
        self._start_over([reason], logging.ERROR)

    # --- timers ---------------------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Agreements take effect from the log: one that ends (revoked, suspended, expired) takes its rows
        along within seconds, whether or not events are flowing; one that starts, or replaces another with
        different terms, has its dataset projected again from the start. A dataset or consumer governance
        added, or a read model sent back to a dataset's start, makes the worker start over (positions live
        in the read models, so that is safe at any moment) to read from where every read model needs."""
        if self.restart_reasons:
            return
        try:
            reconciled = await asyncio.to_thread(self.engine.reconcile)
        except Exception as exc:  # a timer that raises would crash the worker instead
            await self._failed("reconciling", exc)
            return
        self.reconciled_at = time.monotonic()
        for (consumer, dataset), rows in sorted(reconciled.done.purged.items()):
            log.warning(
                "purged %d rows of %s from %s's read model: no active agreement", rows, dataset, consumer
            )
        done = reconciled.done
        for (consumer, dataset), rows in sorted(done.reset.items()):
            log.warning("%s's read model takes %s from its start under new terms (%d rows reset)", consumer,
                        dataset, rows)  # fmt: skip
        for (consumer, dataset), rows in sorted(done.building.items()):
            log.warning("%s's read model builds %s under wider terms beside the %d rows it serves", consumer,
                        dataset, rows)  # fmt: skip
        for (consumer, dataset), rows in sorted(done.swapped.items()):
            log.info("%s's read model serves its new generation of %s (%d rows)", consumer, dataset, rows)
        for consumer, rows in sorted(done.retired.items()):
            log.info("%s's read model deleted %d rows of a generation swapped out", consumer, rows)
        # A backfill of rows the terms no longer stand behind stops (a fresh one follows where one is due).
        started_over = [(c, target_of(c, d)) for c, d in {*done.reset, *done.purged}]
        for target in [t for pair in started_over for t in pair] + [target_of(*k) for k in done.swapped]:
            if target in self.backfills:
                self.backfills[target].stop()
        if reconciled.restart_reasons:
            self._start_over(reconciled.restart_reasons, logging.WARNING)
            return
        await self._backfill_lagging()

    async def _backfill_lagging(self) -> None:
        """Start a backfill for every read model behind the live stream (none runs for it yet); one that
        failed makes the worker start over (from the read models' positions, which is always safe)."""
        for consumer, running in list(self.backfills.items()):
            if not running.task.done():
                continue
            del self.backfills[consumer]
            failure = None if running.task.cancelled() else running.task.exception()
            if failure is not None:
                await self._failed(f"backfilling {consumer}'s read model", cast(Exception, failure))
                return
        try:
            lagging = await asyncio.to_thread(self.engine.lagging, dict(self.live))
        except Exception as exc:
            await self._failed("finding read models behind the stream", exc)
            return
        for consumer, positions in sorted(lagging.items()):
            if consumer not in self.backfills and not (self.restart_reasons or self._stopping):
                where = ", ".join(f"{t}[{p}] from {o}" for (t, p), o in sorted(positions.items()))
                log.info("backfilling %s beside the live stream: %s", described(consumer), where)
                self.backfills[consumer] = Backfill(
                    self.engine, self._bootstrap, consumer, positions, self.live
                )

    async def _stop_backfills(self) -> None:
        """Stop every backfill after the batch it has in the engine; they start again from the read models'
        positions at the next round (partitions may have moved meanwhile)."""
        running = list(self.backfills.values())
        for backfill in running:
            backfill.stop()
        if running:
            await asyncio.wait([b.task for b in running])

    async def _prune_history(self) -> None:
        """Past versions no allowed read "as of" needs any more are forgotten, in each dataset by its own
        horizon (SHAREHUB_HISTORY_DAYS, the dataset's retention). Horizons that cannot be known now (the
        governance log does not answer) wait for the next round: the read models are as they were."""
        if self.restart_reasons:
            return
        try:
            horizons = await asyncio.to_thread(self._history_horizons)
        except Exception as exc:
            log.warning("history not pruned this round: %s: %s", type(exc).__name__, exc)
            return
        if not horizons:
            return
        try:
            forgotten = await asyncio.to_thread(self.engine.prune_history, horizons)
        except Exception as exc:
            await self._failed("pruning history", exc)
            return
        for consumer, versions in forgotten.items():
            if versions:
                log.info("%s's read model forgot %d versions from before their datasets' horizons (%s)",
                         consumer, versions, _listed(horizons))  # fmt: skip

    # --- rebalances -----------------------------------------------------------------------------------

    async def _finish_taken_batches(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        """Partitions may go to another worker: every batch taken from them, live or backfill, is finished
        before they go."""
        self.assigned_at = None
        self._placed.clear()
        await self._stop_backfills()
        if self.in_flight:
            await asyncio.wait(list(self.in_flight))

    async def _resume_from_read_models(self, sender: Any, assigned: set[TP], **_: Any) -> None:
        ours = {tp for tp in assigned if tp.topic in self._topics}
        newly = ours - self._held
        self._held = ours
        # A partition held before goes on where its stream stood (a read model behind it is backfilled); one
        # new to this worker may have moved on elsewhere: it starts from the least position a read model
        # stored, with the chain heads of one that stands there. Reading positions changes nothing.
        held = {(tp.topic, tp.partition): self.live[(tp.topic, tp.partition)] for tp in ours - newly}
        new = await asyncio.to_thread(
            lambda: {
                (tp.topic, tp.partition): self.engine.stored_offset((tp.topic, tp.partition)) for tp in newly
            }
        )
        # The stream goes there; then, in one step, it stands there and the engine takes the new partitions
        # from the read models' positions (a batch read meanwhile has moved them, or is skipped).
        placed = {**held, **new}
        await self._seek(placed)
        self.live.clear()  # (the same mapping: backfills started later read it)
        self.live.update(placed)
        resumed = self.engine.resume_in_turn(sorted(new))  # before any batch taken from here on
        self.assignments += 1
        self._placed.set()
        await asyncio.wrap_future(resumed)
        for (topic, partition), offset in sorted(placed.items()):
            log.info("resuming %s[%d] at %d", topic, partition, offset)
        self.assigned_at = time.monotonic()

    async def _seek(self, positions: Mapping[TopicPartition, int]) -> None:
        """Have the consumer read each partition of ``positions`` from its offset next. The seek runs in
        faust's consumer thread (seek_wait), where the fetcher runs: a seek from this thread races it."""
        if positions:
            await self.app.consumer.seek_wait({TP(t, p): offset for (t, p), offset in positions.items()})


def _listed(horizons: Mapping[str, dt.datetime]) -> str:
    return ", ".join(
        f"{dataset} {at.isoformat(timespec='seconds')}" for dataset, at in sorted(horizons.items())
    )


def _faust_app(bootstrap: str, group: str, datadir: Path, session_timeout_s: float) -> faust.App:
    credentials: CredentialsT | None = None
    if isinstance(bootstrap, KafkaAccess):
        context = bootstrap.tls.context() if bootstrap.tls is not None else None
        if bootstrap.login:
            assert bootstrap.username is not None and bootstrap.password is not None
            credentials = faust.SASLCredentials(
                username=bootstrap.username,
                password=bootstrap.password.reveal().decode(),
                mechanism=SASL_MECHANISM,
                ssl_context=context,
            )
        elif context is not None:
            credentials = faust.SSLCredentials(context)
    return faust.App(
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
        broker_max_poll_records=BATCH_SIZE,
        broker_session_timeout=session_timeout_s,
        producer_acks=-1,
        PartitionAssignor=GuardedAssignor,  # a member with malformed metadata gets nothing, not a crash
    )
