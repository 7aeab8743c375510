"""Exactly once from any source, across a kill -9 at any moment: the core every connector publishes through.

A source gives records with a stable position: a source id that names the same content on every run (a
file's SHA-256, an outbox table, a gateway idempotency key) and an increasing position in it (a line number,
a commit-ordered row id, an item index). A checkpoint written after the broker's acks alone would be
at-least-once: what was acknowledged but not yet checkpointed when the process died would go again. So the
truth is the topic itself:

1. Before the first event of a source is sent, the journal (:mod:`connectors.journal`, fsynced, atomic
   rename) records the source with a *mark* per lane: the lane's end offset then. Every event of the source
   lies at or after its lane's mark.
2. Each event carries its source id and position in Kafka message headers
   (:mod:`connectors.source_positions`). Headers, not signed envelope fields: they say where a record came
   from at this site, which the hub and consumers need not know, and the envelope's wire format stays as
   it is. A header is believed only beside an envelope that verifies as the agency's own, on a topic only
   the agency may write.
3. A record goes to one lane, fixed by its pseudonym, and the idempotent producer (acks=all) keeps each lane
   in order; so in a lane, the source's newest event holds its highest position there. On start the core
   reads each lane backwards from its end down to the mark and takes that position; a record is skipped
   when its lane already holds its position (``position <= written[lane]``). Nothing is lost (a record
   whose lane does not hold it is sent) and nothing is sent twice.
4. Every ``checkpoint_every`` records the publisher flushes (all acknowledged), and the journal moves on:
   ``acked`` (every position up to it is on the topic or was rejected: skipped without a look at the
   topic) and new marks (the acknowledged ends of the lanes), so a restart reads only what followed the
   last checkpoint. The journal is an optimisation and a record of progress; never the proof of delivery.
5. A source finished is marked done: the same content offered again publishes nothing.

An outbox connector (:mod:`connectors.outbox`) is the same with ``source = "outbox:<table>"`` and
positions the rows' commit-ordered ids: one endless source, opened once (:meth:`ExactlyOnce.open`) and fed
batch after batch, its marks moving with every checkpoint and its lag counted at the table; an HTTP
gateway uses one source per idempotency key, positions the items of the request, and a done source answers
a retried request.
One connector per dataset and site at a time (the journal's lock). What is left: a producer killed with
requests still in flight on the network could, in principle, have one land after the restart read the
lane's end; Kafka transactions (a ``transactional.id`` per site and dataset) would fence it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from connectors.dataset_publishing import DatasetPublishing
from connectors.journal import Journal, SourceState
from connectors.jsonl_source import BadLine, Line
from connectors.validated_chunks import PublishReport, Resume

#: Records between two checkpoints of the journal (each one waits for the broker's acks).
CHECKPOINT_EVERY = 10_000


@dataclass
class SourceReport:
    """What one run did with one source."""

    published: int = 0
    #: Records already on the topic (an earlier run sent them), not sent again.
    skipped: int = 0
    rejected: list[BadLine] = field(default_factory=list)
    #: The whole source was published before: nothing was read.
    already_done: bool = False


class Send(Protocol):
    """How a batch of a source goes out: :meth:`Publisher.publish_lines` (records, sealed here) or
    :meth:`Publisher.publish_sealed` (envelopes the agency sealed)."""

    def __call__(
        self,
        lines: list[Line | BadLine],
        *,
        event_type: str,
        resume: Resume,
        progress: Callable[[int], None] | None,
    ) -> PublishReport: ...


class ExactlyOnce:
    """Publishes sources through ``publisher`` exactly once, remembering them in ``journal``."""

    def __init__(
        self, publisher: DatasetPublishing, journal: Journal, *, checkpoint_every: int = CHECKPOINT_EVERY
    ) -> None:
        self.publisher = publisher
        self.journal = journal
        self.checkpoint_every = checkpoint_every

    def publish(
        self,
        source: str,
        lines: Iterable[Line | BadLine],
        *,
        name: str,
        total: int | None = None,
        event_type: str = "UPSERTED",
        progress: Callable[[int], None] | None = None,
        on_rejected: Callable[[list[BadLine]], None] | None = None,
        send: Send | None = None,
        digest: str | None = None,
        outcome: Callable[[SourceReport], dict[str, Any]] | None = None,
    ) -> SourceReport:
        """Publish what of ``source`` is not yet on the topic, then mark it done; ``on_rejected`` hears of
        bad lines before the journal moves past them. ``digest`` is kept with a new source; ``outcome``
        makes what is kept with it once done (both for a gateway, which answers a retried request from
        them)."""
        stream = self.open(source, name=name, total=total, digest=digest)
        if stream is None:
            return SourceReport(already_done=True)
        report = stream.publish(
            lines, event_type=event_type, progress=progress, on_rejected=on_rejected, send=send
        )
        stream.finish(None if outcome is None else outcome(report))
        return report

    def open(
        self,
        source: str,
        *,
        name: str,
        total: int | None = None,
        endless: bool = False,
        digest: str | None = None,
    ) -> OpenSource | None:
        """``source`` ready to be fed, what the topic holds of it read once; None when it is done."""
        state = self.journal.get(source)
        if state is not None and state.done:
            return None
        if state is None:
            state = SourceState(
                name=name, total=total, endless=endless, marks=self.publisher.lane_ends(), digest=digest
            )
            self.journal.put(source, state)  # the marks are durable before the first event is sent
            written: dict[int, int] = {}  # nothing of it was sent before its marks were written
        else:
            written = self.publisher.written_positions(source, state.marks)
        return OpenSource(self, source, state, written)

    def failed(self, source: str, name: str, error: str) -> None:
        """Record the error that stopped ``source`` (shown by ``sharehub connect status``)."""
        state = self.journal.get(source) or SourceState(name=name)
        state.error = error
        self.journal.put(source, state)


class OpenSource:
    """One source being published: its journal state, and lane → the highest position the topic held of it
    when it was opened. A file is fed once and finished; an endless source (an outbox) is fed batch after
    batch, each with positions above the last, so what the topic held stays all there is to skip."""

    def __init__(self, core: ExactlyOnce, source: str, state: SourceState, written: dict[int, int]) -> None:
        self._core = core
        self.source = source
        self.state = state
        self._written = written

    @property
    def acked(self) -> int:
        """Every position up to this one is on the topic, or was rejected."""
        return self.state.acked

    def publish(
        self,
        lines: Iterable[Line | BadLine],
        *,
        event_type: str = "UPSERTED",
        progress: Callable[[int], None] | None = None,
        on_rejected: Callable[[list[BadLine]], None] | None = None,
        send: Send | None = None,
    ) -> SourceReport:
        """Publish the lines not yet on the topic, checkpointing every ``checkpoint_every`` of them and after
        the last (the lines come in increasing positions); ``send`` says how a batch goes out (records
        sealed here, by default)."""
        core, state = self._core, self.state
        send = send or core.publisher.publish_lines
        report = SourceReport()
        for batch in _batches(iter(lines), core.checkpoint_every):
            fresh = [line for line in batch if line.number > state.acked]
            report.skipped += len(batch) - len(fresh)
            if progress is not None and len(fresh) < len(batch):
                progress(len(batch) - len(fresh))
            if not fresh:
                continue
            done = send(
                fresh, event_type=event_type, resume=Resume(self.source, self._written), progress=progress
            )
            if on_rejected is not None and done.rejected:
                on_rejected(done.rejected)
            report.published += done.published
            report.skipped += done.skipped
            report.rejected += done.rejected
            self._checkpoint(fresh[-1].number, done.published, done.skipped, len(done.rejected))
        return report

    def measured(self, pending: int) -> None:
        """Record the lag an endless source counted at its end (rows beyond ``acked``), when it changed."""
        if self.state.pending != pending:
            self.state.pending = pending
            self._core.journal.put(self.source, self.state)

    def failed(self, error: str | None) -> None:
        """Record the error that holds the source up; None: it went away (the source answers again)."""
        if self.state.error != error:
            self.state.error = error
            self._core.journal.put(self.source, self.state)

    def finish(self, outcome: dict[str, Any] | None = None) -> None:
        """Mark the source done, with what the connector answered for it (``outcome``)."""
        self.state.done, self.state.error, self.state.outcome = True, None, outcome
        self._core.journal.put(self.source, self.state)

    def _checkpoint(self, acked: int, published: int, skipped: int, rejected: int) -> None:
        state = self.state
        state.acked = acked
        state.marks = state.marks | self._core.publisher.acked_ends
        state.published += published
        state.skipped += skipped
        state.rejected += rejected
        state.error = None
        self._core.journal.put(self.source, state)


def _batches(lines: Iterator[Line | BadLine], size: int) -> Iterator[list[Line | BadLine]]:
    while batch := list(islice(lines, size)):
        yield batch
