"""Backfilling one consumer's read model beside the live projection, without stopping it.

A read model that stands behind the stream (its dataset reset to its start: an agreement activated,
resumed, or replaced by wider or narrower terms) is left alone by the live projection. A backfill reads
its partitions again from where the read model stands, with a topic reader of its own, and has the engine
project them into that read model alone (:meth:`projections.engine.LocalEngine.backfill`), one batch at a
time, so that the live batches of every other read model pass between two of its batches.

It hands a partition over to the live stream once a batch it sent reaches the offset the live stream takes
next (checked in the same step as the send, so no live batch can come between): from there on the live
projection applies to the read model again. The live stream goes on meanwhile; the backfill follows it until
every partition is handed over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping

from projections.engine import ProjectionEngine
from projections.generations import described
from projections.projector import LogMessage, parsed
from projections.read_model_tables import TopicPartition
from sharehub.kafka import Record, TopicReader

log = logging.getLogger("sharehub.projection")

#: Events per batch a backfill sends the engine (as many as a live batch).
BATCH_SIZE = 1000


class Backfill:
    """One consumer's backfill, running as a task from ``positions`` (partition → the read model's
    position) until the live stream (``live``: partition → the offset it takes next, kept up to date by
    the worker) has every partition."""

    def __init__(
        self,
        engine: ProjectionEngine,
        bootstrap: str,
        consumer: str,
        positions: Mapping[TopicPartition, int],
        live: Mapping[TopicPartition, int],
    ) -> None:
        self.consumer = consumer
        self._engine = engine
        self._bootstrap = bootstrap
        self._live = live
        #: Partitions not handed over yet → the next offset to read.
        self._left = dict(positions)
        self._stopping = False
        self.events = 0
        self.rows = 0
        self.task: asyncio.Future[None] = asyncio.ensure_future(self._run())

    @property
    def partitions(self) -> set[TopicPartition]:
        return set(self._left)

    def stop(self) -> None:
        """Stop after the batch in the engine (if any): the read model keeps what it has, and stays behind
        the stream until a new backfill takes it from there."""
        self._stopping = True

    async def _run(self) -> None:
        await asyncio.to_thread(self._engine.start_backfill, self.consumer)
        reader = await asyncio.to_thread(TopicReader, self._bootstrap)
        try:
            while self._hand_over() and not self._stopping:
                for topic in sorted({topic for topic, _ in self._left}):
                    await self._read(reader, topic)
        finally:
            await asyncio.to_thread(reader.close)
        if not self._stopping:
            log.info("%s caught up with the stream: %d events read again, %d rows applied",
                     described(self.consumer), self.events, self.rows)  # fmt: skip

    async def _read(self, reader: TopicReader, topic: str) -> None:
        """One pass over ``topic``'s partitions left, up to where the live stream stands now."""
        bounds = await asyncio.to_thread(reader.partitions, topic)
        for tp in [tp for tp in self._left if tp[0] == topic and tp[1] not in bounds]:
            log.warning("%s[%d] is gone from the broker: %s is not backfilled there", *tp,
                        described(self.consumer))  # fmt: skip
            del self._left[tp]
        start = {p: max(at, bounds[p][0]) for (t, p), at in self._left.items() if t == topic and p in bounds}
        end = {p: self._live.get((topic, p), 0) for p in start}
        await self._join_where_retained_away(topic, start, end)
        batches = reader.batches(topic, start=start, end=end, size=BATCH_SIZE)
        # The next batch is read and parsed (in a thread) while the engine projects the one before.
        ahead = asyncio.ensure_future(asyncio.to_thread(_next_parsed, batches))
        try:
            while not self._stopping:
                messages = await ahead
                if messages is None:
                    return
                ahead = asyncio.ensure_future(asyncio.to_thread(_next_parsed, batches))
                await self._send([m for m in messages if m.tp in self._left])
        finally:
            await asyncio.wait([ahead])
            await asyncio.to_thread(batches.close)

    async def _send(self, messages: list[LogMessage]) -> None:
        if not messages:
            return
        answer = asyncio.wrap_future(self._engine.backfill_in_turn(self.consumer, messages))
        for message in messages:
            self._left[message.tp] = max(self._left[message.tp], message.offset + 1)
        self._hand_over()  # in the same step as the send: no live batch can be sent between the two
        self.events += len(messages)
        self.rows += await asyncio.shield(answer)

    async def _join_where_retained_away(self, topic: str, start: dict[int, int], end: dict[int, int]) -> None:
        """Partitions whose log holds nothing below the live stream any more (retained away): the read
        model goes on with the stream there, with nothing to read again."""
        empty = [(topic, p) for p, first in start.items() if first >= end[p] and (topic, p) in self._left]
        if not empty:
            return
        joined = asyncio.wrap_future(self._engine.join_stream_in_turn(self.consumer, empty))
        for tp in empty:  # in the same step as the call: a live batch sent from here on applies to it
            del self._left[tp]
        await asyncio.shield(joined)

    def _hand_over(self) -> bool:
        """Give the live stream every partition the read model has reached it in (or that the worker no
        longer holds); whether any is left."""
        for tp, at in list(self._left.items()):
            live = self._live.get(tp)
            if live is None or at >= live:
                del self._left[tp]
        return bool(self._left)


def _next_parsed(batches: Iterator[list[Record]]) -> list[LogMessage] | None:
    """The reader's next batch as log messages, their envelopes parsed (no key is needed); None at its end."""
    batch = next(batches, None)
    if batch is None:
        return None
    return [LogMessage(r.topic, r.partition, r.offset, r.key, r.value, parsed(r.value)) for r in batch]
