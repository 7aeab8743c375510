"""What the projection worker asks of the projection: one small interface, served in this process
(:class:`LocalEngine`) or by a process of its own (:mod:`projections.engine_process`).

The worker moves messages: it takes batches from Kafka, parses each envelope's structure (no key is
needed for that), sends what the engine quarantines to the quarantine topic, and seeks where the engine
says. Everything that needs keys, governance or the read models happens in the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from projections.projector import Decision, LogMessage, Projector, Quarantined, Reconciled
from projections.read_model import ReadModelStore
from projections.read_model_tables import TopicPartition
from sharehub.errors import EarlierBatchFailed

T = TypeVar("T")


@dataclass(frozen=True)
class Judged:
    """A decided batch, waiting to be committed: what it quarantines and how many rows it applies."""

    quarantined: list[Quarantined]
    rows: int
    #: Which decision of the engine this is (the engine keeps the decision itself).
    ticket: int = 0
    #: Committed already (:meth:`ProjectionEngine.project` of a batch with nothing to quarantine).
    committed: bool = False


@dataclass
class Reconciliation:
    """What one round of bringing the read models in line with governance did, and why the worker must
    start over (empty: it need not)."""

    done: Reconciled = field(default_factory=Reconciled)
    restart_reasons: list[str] = field(default_factory=list)


class ProjectionEngine(Protocol):
    @property
    def topics(self) -> list[str]: ...
    def stored_offset(self, tp: TopicPartition) -> int: ...
    def resume_in_turn(self, tps: Sequence[TopicPartition]) -> Future[None]: ...
    def lagging(self, live: Mapping[TopicPartition, int]) -> dict[str, dict[TopicPartition, int]]: ...
    def start_backfill(self, consumer: str) -> None: ...
    def join_stream_in_turn(self, consumer: str, tps: Sequence[TopicPartition]) -> Future[None]: ...
    def backfill_in_turn(self, consumer: str, batch: Sequence[LogMessage]) -> Future[int]:
        """:meth:`LocalEngine.backfill` the batch once every call made before is answered."""
        ...

    def project(self, batch: Sequence[LogMessage]) -> Judged: ...
    def project_in_turn(self, batch: Sequence[LogMessage]) -> Future[Judged]:
        """:meth:`project` the batch once every call made before is answered; the answer comes later."""
        ...

    def commit(self, judged: Judged) -> None: ...
    def abandon(self, reason: str) -> None: ...
    def reconcile(self) -> Reconciliation: ...
    def prune_history(self, horizons: Mapping[str, dt.datetime]) -> dict[str, int]: ...
    def close(self) -> None: ...


class LocalEngine:
    """A :class:`Projector` in this process. ``before_batch`` runs before every decision and
    reconciliation (the hub brings governance up to date there, so an agreement suspended on the log stops
    granting from the next batch on); ``on_close`` releases what the projector used. With ``store_of``
    (a consumer's read model, made if new), an agency's first agreement gives the projector its read model
    at the next reconciliation, to be backfilled beside the live stream; without, the worker starts over."""

    def __init__(
        self,
        projector: Projector,
        *,
        before_batch: Callable[[], object] = lambda: None,
        on_close: Callable[[], object] = lambda: None,
        store_of: Callable[[str], ReadModelStore] | None = None,
    ) -> None:
        self._projector = projector
        self._store_of = store_of
        self._before_batch = before_batch
        self._on_close = on_close
        #: The decided batch that waits for the quarantine topic before it is committed, by its ticket.
        self._pending: tuple[int, Decision] | None = None
        self._tickets = 0
        #: Why a batch failed: no later one is projected (it would skip the failed batch's events).
        self._failed: str | None = None
        #: The projector backfilling each consumer's read model beside the live one, by consumer.
        self._backfills: dict[str, Projector] = {}

    @property
    def awaits_commit(self) -> bool:
        """A decided batch waits for :meth:`commit`: nothing else may change the read models meanwhile."""
        return self._pending is not None

    @property
    def topics(self) -> list[str]:
        return self._projector.topics

    def stored_offset(self, tp: TopicPartition) -> int:
        return self._projector.stored_offset(tp)

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        self._projector.resume(tps)

    def resume_in_turn(self, tps: Sequence[TopicPartition]) -> Future[None]:
        """The live stream of ``tps`` goes on from the read models' least position (:meth:`Projector.resume`),
        once every call made before is answered."""
        return _answered(lambda: self.resume(tps))

    def lagging(self, live: Mapping[TopicPartition, int]) -> dict[str, dict[TopicPartition, int]]:
        return self._projector.lagging(live)

    def start_backfill(self, consumer: str) -> None:
        """Backfill ``consumer``'s read model from its stored positions, judging afresh from there."""
        self._backfills[consumer] = self._projector.for_one(consumer)

    def join_stream_in_turn(self, consumer: str, tps: Sequence[TopicPartition]) -> Future[None]:
        """``consumer``'s read model goes on with the live stream in ``tps``, where the log holds nothing
        below it any more (:meth:`Projector.join_stream`); answered now."""
        return _answered(lambda: self.join_stream(consumer, tps))

    def join_stream(self, consumer: str, tps: Sequence[TopicPartition]) -> None:
        self._refuse_after_failure()
        with self._failing_stops_batches():
            self._projector.join_stream(consumer, tps)

    def backfill(self, consumer: str, batch: Sequence[LogMessage]) -> int:
        """Project ``batch`` (read again from the log) into ``consumer``'s read model alone, committed at
        once; returns the rows applied. What it would quarantine is left out: every event below the live
        stream's position was judged there first, and quarantined then if refused. A failure stops every
        later batch, live or backfill, as :meth:`project`'s does."""
        projector = self._backfills.get(consumer)
        if projector is None:
            raise ValueError(f"no backfill of {consumer!r}'s read model was started")
        decision = self._decided(projector, batch)
        with self._failing_stops_batches():
            projector.commit(decision)
        return decision.applied()

    def backfill_in_turn(self, consumer: str, batch: Sequence[LogMessage]) -> Future[int]:
        """In this process every call is answered before the next: backfilled now."""
        return _answered(lambda: self.backfill(consumer, batch))

    def project(self, batch: Sequence[LogMessage]) -> Judged:
        """Decide, and commit at once unless something must first go to the quarantine topic (the
        positions may not move past a quarantined event before it is there): one call for most batches.
        A batch returned uncommitted waits for :meth:`commit` (or :meth:`abandon`) before any other is
        decided. Once a batch failed, every later one is refused (:class:`EarlierBatchFailed`)."""
        decision = self._decided(self._projector, batch)
        self._tickets += 1
        judged = Judged(decision.quarantined, decision.applied(), self._tickets)
        if judged.quarantined:
            self._pending = (self._tickets, decision)
            return judged
        self._pending = None
        with self._failing_stops_batches():
            self._projector.commit(decision)
        return dataclasses.replace(judged, committed=True)

    def _decided(self, projector: Projector, batch: Sequence[LogMessage]) -> Decision:
        """``projector``'s decision on ``batch``, governance brought up to date first; refused while a
        decided batch waits for its commit, or once one failed."""
        if self._pending is not None:
            raise ValueError(f"decided batch {self._pending[0]} still waits to be committed")
        self._refuse_after_failure()
        with self._failing_stops_batches():
            self._before_batch()
            return projector.decide(batch)

    def project_in_turn(self, batch: Sequence[LogMessage]) -> Future[Judged]:
        """In this process every call is answered before the next: projected now."""
        return _answered(lambda: self.project(batch))

    def commit(self, judged: Judged) -> None:
        """Commit the batch :meth:`project` returned uncommitted, once its quarantined events are out."""
        if self._pending is None or self._pending[0] != judged.ticket:
            raise ValueError(f"no decided batch {judged.ticket} waits to be committed")
        decision = self._pending[1]
        self._pending = None
        self._refuse_after_failure()
        with self._failing_stops_batches():
            self._projector.commit(decision)

    def abandon(self, reason: str) -> None:
        """The worker gives up (its quarantined events could not be sent, or it stops): the batch waiting
        for its commit stays unapplied, and no later batch is projected."""
        self._pending = None
        if self._failed is None:
            self._failed = reason

    def reconcile(self) -> Reconciliation:
        self._before_batch()
        if self._store_of is not None:
            for consumer in self._projector.new_consumers():
                self._projector.adopt(consumer, self._store_of(consumer))
        return Reconciliation(self._projector.reconcile(), self._projector.outgrown())

    def prune_history(self, horizons: Mapping[str, dt.datetime]) -> dict[str, int]:
        return self._projector.prune_history(horizons)

    def close(self) -> None:
        self._on_close()

    def _refuse_after_failure(self) -> None:
        if self._failed is not None:
            raise EarlierBatchFailed(f"not projected: an earlier batch failed ({self._failed})")

    @contextlib.contextmanager
    def _failing_stops_batches(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self._failed = f"{type(exc).__name__}: {exc}"
            raise


def _answered(call: Callable[[], T]) -> Future[T]:
    """``call``'s answer (or its error) as a future already settled."""
    answer: Future[T] = Future()
    try:
        answer.set_result(call())
    except Exception as exc:
        answer.set_exception(exc)
    return answer
