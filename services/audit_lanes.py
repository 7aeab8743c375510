"""The audit of the dataset topics, lane by lane, in this process or spread over worker processes.

A lane is one partition of a dataset topic, and every chain lies in one lane (a producer's events in a
dataset's partition). In this process a lane is audited whole, from its first offset to the end it had when
the audit began. Spread over workers, each lane is cut into parts (ranges of offsets, :func:`parts_of`) so
that the work balances whatever the number of lanes: a worker audits a part without knowing the chains'
state at its start, taking each producer's first event there to continue its chain, and returns what the
stitch needs (:mod:`services.audit_stitch`): that first link of each producer, and the head each chain
ends at. The parts of a lane are stitched in order; a lane whose chains do not join cleanly at a cut (a
fork, a replay or an event out of order reaching back across it) is audited again whole, here, so the
findings are always those of the one-process audit.

Each lane's result is compact: its counts, its findings in log order (every record's status only when
every one is asked for), the events sealed in custody, and the hash the log holds at each checkpointed
sequence asked for. The results are taken in lane order (the dataset topics in governance's order,
partitions ascending), so the report is the same with any number of workers.

Worker processes are started with ``spawn`` (nothing of this process's Kafka clients is inherited); each
is given the governance state the audit rebuilt (public keys only) and opens its own reader. Left to choose
(``workers=None``), the audit takes one per CPU it may use, and none below :data:`PARALLEL_FROM` records.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from multiprocessing.reduction import ForkingPickler
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit_status import EventStatus, TimeWindow
from services.audit_stitch import LaneAudit as LaneAudit
from services.audit_stitch import LaneChains, stitch
from sharehub import chain
from sharehub.codec import DatasetCodec, codecs_by_topic
from sharehub.envelope import Envelope
from sharehub.errors import ChainViolation, EnvelopeError, InputError
from sharehub.gov.custody import sealed_in_custody
from sharehub.gov.state import GovState
from sharehub.gov.views import Dataset
from sharehub.kafka import TopicReader

#: Below this many dataset records, starting worker processes costs more than it saves.
PARALLEL_FROM = 20_000
#: Parts per worker when the audit cuts the lanes itself: enough that a worker done early takes another.
PARTS_PER_WORKER = 4
#: The fewest records in a part the audit cuts itself (a part costs a seek and a result to send back).
SMALLEST_PART = 5_000
#: Told a topic's name and its number of records; returns the callback that hears how many more are read.
Progress = Callable[[str, int], Callable[[int], None]]
#: (producer, dataset, lane) → the sequences its owner's checkpoints name, which the log must hold.
Checkpointed = Mapping[tuple[str, str, int], set[int]]


@dataclass(frozen=True)
class Lane:
    """One partition of a dataset topic, and the offsets to audit there: ``[start, end)``."""

    dataset: str
    topic: str
    partition: int
    start: int
    end: int
    #: Whether a retention of its dataset in force now or before could have deleted records (then a start
    #: above 0 is events retained away; :meth:`~sharehub.gov.views.Dataset.retained_away_by`).
    retains: bool = False
    #: When a retention of its dataset could first delete one of its events (None: none ever could).
    retains_from: dt.datetime | None = None

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def retained_away(self) -> bool:
        """Whether the lane's records before ``start`` were retained away (its first chains go on from the
        first event read, whatever its sequence)."""
        return self.retains and self.start > 0


def audit_lanes(
    bootstrap: str,
    state: GovState,
    reader: TopicReader,
    *,
    checkpointed: Checkpointed,
    window: TimeWindow,
    every_event: bool,
    workers: int | None,
    progress: Progress | None = None,
    timeout: float = 60.0,
    part_size: int | None = None,
) -> list[tuple[Lane, LaneAudit]]:
    """Every lane of every dataset topic of ``state``, audited with ``workers`` processes (this one when
    1; None: one per CPU, this one alone for a small log), in lane order. ``part_size``: the records of
    each part of a lane a worker takes (None: enough parts for every worker to stay busy)."""
    if part_size is not None and part_size < 1:
        raise InputError(f"a part of a lane holds at least 1 record, not {part_size}")
    lanes = [lane for dataset in state.datasets() for lane in _lanes(reader, dataset)]
    advance = _progress_bars(lanes, progress)
    asked = {lane: _asked(checkpointed, lane) for lane in lanes}
    busy = [lane for lane in lanes if lane.size]
    if workers is None:
        small = sum(lane.size for lane in busy) < PARALLEL_FROM
        workers = 1 if small else len(os.sched_getaffinity(0))
    codecs = codecs_by_topic(state.datasets(), state, None)  # public keys only
    if workers <= 1 or not busy:
        return [
            (lane, audit_lane(reader, codecs[lane.topic], lane, window, every_event, asked[lane], advance))
            for lane in lanes
        ]
    size = part_size or max(
        SMALLEST_PART, -(-sum(lane.size for lane in busy) // (workers * PARTS_PER_WORKER))
    )
    parts = {lane: parts_of(lane, size) for lane in busy}
    done = _in_workers(bootstrap, state, parts, asked, window, every_event, workers, advance, timeout)
    audited = []
    for lane in lanes:
        found = stitch([done[part] for part in parts.get(lane, [])], every_event, lane.retained_away)
        if found is None:  # its chains do not join at a cut: the lane again, whole, in this process
            found = audit_lane(reader, codecs[lane.topic], lane, window, every_event, asked[lane])
        audited.append((lane, found))
    return audited


def parts_of(lane: Lane, size: int) -> list[Lane]:
    """``lane`` cut into consecutive ranges of ``size`` records (the last one shorter)."""
    return [
        replace(lane, start=start, end=min(start + size, lane.end))
        for start in range(lane.start, lane.end, size)
    ]


def audit_lane(
    reader: TopicReader,
    codec: DatasetCodec,
    lane: Lane,
    window: TimeWindow,
    every_event: bool,
    asked: Mapping[str, set[int]],
    advance: Callable[[str, int], None] | None = None,
    *,
    part: bool = False,
) -> LaneAudit:
    """Read ``lane`` and check every event: parse, signature, owner, lane, each producer's chain in log
    order. ``asked``: producer → checkpointed sequences whose hash in the log the result must give.
    ``part``: ``lane`` is a range that may start inside the lane: each producer's first link is taken to
    continue its chain, and noted (with the heads the chains end at) for :func:`stitch`."""
    found = LaneAudit()
    chains = LaneChains(found, part=part, retained_away=lane.retained_away and not part)
    holds, whole_log = window.holds, window.whole_log
    for batch in reader.batches(
        lane.topic, start={lane.partition: lane.start}, end={lane.partition: lane.end}
    ):
        for record in batch:
            status = EventStatus(lane.topic, record.partition, record.offset)
            envelope = _verified(codec, record.value, record.partition, status)
            in_window = whole_log or holds(record.timestamp_ms)
            if envelope is not None:
                header = envelope.header
                chains.walk(header.producer, chain.link_of(envelope), status, in_window)
                if in_window and sealed_in_custody(header.signer_key_id):
                    found.sealed_in_custody[header.producer] += 1
            if in_window:
                found.count(status, every_event)
        if advance is not None:
            advance(lane.topic, len(batch))
    chains.finish(asked)
    return found


def _verified(codec: DatasetCodec, value: bytes, partition: int, status: EventStatus) -> Envelope | None:
    """The event verified with public keys only, its header noted in ``status``; None (and the finding in
    ``status``) when it is not authentic or not in the lane it was signed for."""
    try:
        envelope = codec.parse(value)
    except EnvelopeError as exc:
        status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
        return None
    header = envelope.header
    status.producer, status.sequence, status.event_id = header.producer, header.sequence, header.event_id
    try:
        codec.verify(envelope, partition)
    except ChainViolation as exc:  # authentic, but misrouted
        status.chain, status.detail = exc.reason, f"signed for lane {header.lane}"
        return None
    except EnvelopeError as exc:
        status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
        return None
    return envelope


def _lanes(reader: TopicReader, dataset: Dataset) -> list[Lane]:
    return lanes_of(dataset, reader.partitions(dataset.topic), dt.datetime.now(dt.UTC))


def lanes_of(dataset: Dataset, bounds: Mapping[int, tuple[int, int]], at: dt.datetime) -> list[Lane]:
    """The dataset's lanes, partition → its first and end offsets as the log holds them ``at``, each
    judged by the retentions of the dataset in force until then (records before a lane's first one may
    have been retained away, or are missing)."""
    retains = dataset.retained_away_by(at)
    return [
        Lane(dataset.id, dataset.topic, p, low, high, retains, dataset.retains_from)
        for p, (low, high) in sorted(bounds.items())
    ]


def _asked(checkpointed: Checkpointed, lane: Lane) -> dict[str, set[int]]:
    return {
        producer: sequences
        for (producer, dataset, number), sequences in checkpointed.items()
        if dataset == lane.dataset and number == lane.partition
    }


def _progress_bars(lanes: list[Lane], progress: Progress | None) -> Callable[[str, int], None] | None:
    """One bar per dataset topic (the records of all its lanes); the callback that advances a topic's."""
    if progress is None:
        return None
    totals: dict[str, int] = {}
    for lane in lanes:
        totals[lane.topic] = totals.get(lane.topic, 0) + lane.size
    bars = {topic: progress(topic, total) for topic, total in totals.items()}
    return lambda topic, n: bars[topic](n)


# --- worker processes ------------------------------------------------------------------------------------


def _public_key_reduced(key: Ed25519PublicKey) -> tuple[Callable[[bytes], Ed25519PublicKey], tuple[bytes]]:
    return Ed25519PublicKey.from_public_bytes, (key.public_bytes_raw(),)


# Governance state holds public keys, which do not pickle by themselves: a worker is given their raw bytes.
ForkingPickler.register(type(Ed25519PublicKey.from_public_bytes(bytes(32))), _public_key_reduced)


def _in_workers(
    bootstrap: str,
    state: GovState,
    parts: Mapping[Lane, list[Lane]],
    asked: Mapping[Lane, Mapping[str, set[int]]],
    window: TimeWindow,
    every_event: bool,
    workers: int,
    advance: Callable[[str, int], None] | None,
    timeout: float,
) -> dict[Lane, LaneAudit]:
    """The ``parts`` of each lane audited by worker processes, the largest first (each worker takes the
    next part when it is done with one); a worker's failure is raised here."""
    context = multiprocessing.get_context("spawn")
    read_counts: Any = context.Queue() if advance is not None else None
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, sum(len(cut) for cut in parts.values())),
        mp_context=context,
        initializer=_start_worker,
        initargs=(bootstrap, timeout, state, window, every_event, read_counts),
    ) as pool:
        largest_first = sorted(
            ((part, lane) for lane, cut in parts.items() for part in cut),
            key=lambda p: p[0].size,
            reverse=True,
        )
        futures = {pool.submit(_audit_in_worker, part, asked[lane]): part for part, lane in largest_first}
        pending: Iterable[concurrent.futures.Future[LaneAudit]] = futures
        while pending:
            _, pending = concurrent.futures.wait(pending, timeout=0.2, return_when="FIRST_EXCEPTION")
            if advance is not None:
                _drain(read_counts, advance)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                pool.shutdown(wait=False, cancel_futures=True)
                failed.result()  # raises the worker's error
        done = {part: future.result() for future, part in futures.items()}
    if advance is not None:  # what the workers counted last, flushed as they stopped
        _drain(read_counts, advance)
    return done


def _drain(read_counts: Any, advance: Callable[[str, int], None]) -> None:
    while True:
        try:
            topic, n = read_counts.get_nowait()
        except queue.Empty:
            return
        advance(topic, n)


@dataclass
class _Worker:
    """What a worker process keeps between the lanes it audits."""

    reader: TopicReader
    codecs: Mapping[str, DatasetCodec]
    window: TimeWindow
    every_event: bool
    read_counts: Any


_worker: _Worker | None = None


def _start_worker(
    bootstrap: str, timeout: float, state: GovState, window: TimeWindow, every_event: bool, read_counts: Any
) -> None:
    global _worker
    codecs = codecs_by_topic(state.datasets(), state, None)  # public keys only
    _worker = _Worker(TopicReader(bootstrap, timeout=timeout), codecs, window, every_event, read_counts)


def _audit_in_worker(part: Lane, asked: Mapping[str, set[int]]) -> LaneAudit:
    assert _worker is not None, "a worker process audits parts of lanes after _start_worker"
    worker = _worker
    counted = None if worker.read_counts is None else lambda topic, n: worker.read_counts.put((topic, n))
    codec = worker.codecs[part.topic]
    return audit_lane(
        worker.reader, codec, part, worker.window, worker.every_event, asked, counted, part=True
    )
