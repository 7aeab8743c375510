"""The projection worker's intake: faust's consumer, handing on the broker's records a batch at a time.

faust delivers each message on its own: its fetcher hands it to the conductor, which decodes it into an
event and queues it for a stream, which hands it to an agent. On this kind of machine that path cost the
worker about 90-100 µs of CPU per message, against 4-5 µs to take the same records in the batches its
consumer fetches them in (200,000 records of 420 bytes, the same app and broker, one after the other). So
the worker keeps faust's app, consumer, fetcher service, flow control and rebalancing, and replaces only the
fetcher's drain loop: each batch of records the consumer returns goes to the worker (a :class:`Taker`), whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from faust.transport.drivers.aiokafka import Consumer
from faust.types import ServiceT


class Taker(Protocol):
    """What takes the batches: the worker."""

    #: Counts the assignments the taker has placed itself at (each seeks every partition it holds).
    assignments: int

    async def take_batch(self, records: list[Any], fetched_in: int) -> None:
        """Take the broker's records (aiokafka's ``ConsumerRecord``: topic, partition, offset, key, value),
        partition by partition, each partition's in the order of its offsets. ``fetched_in`` is the
        assignment the fetch started in: one placed meanwhile may have sought where the records came from."""


#: How long one fetch waits for records before it asks again (and sees whether it must stop).
FETCH_WAIT_S = 1.0


class BatchConsumer(Consumer):
    """faust's aiokafka consumer whose fetcher hands every batch it fetches to a :class:`Taker` instead of
    handing each message to the conductor."""

    def __init__(self, *args: Any, taker: Taker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taker = taker

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set  # type: ignore[attr-defined]
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                fetched_in = self._taker.assignments
                records, _ = await self._wait_next_records(FETCH_WAIT_S)
                if records and not self.should_stop:
                    batch = [record for partition in records.values() for record in partition]
                    await self._taker.take_batch(batch, fetched_in)
                await asyncio.sleep(0)  # others' turn, even when every fetch finds records waiting
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("consumer stopped by the broker while the app stops")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise  # (a rebalance: faust's fetcher starts the drain again)


def batch_consumers(taker: Taker) -> Callable[..., BatchConsumer]:
    """What faust's transport makes its consumer with (its ``Consumer`` class, called with the transport
    and faust's own arguments): a :class:`BatchConsumer` handing its batches to ``taker``."""

    def consumer(*args: Any, **kwargs: Any) -> BatchConsumer:
        return BatchConsumer(*args, taker=taker, **kwargs)

    return consumer
