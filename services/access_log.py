"""The access log (R7): every answered query of a read model, written to ``<prefix>-access-log`` before the
answer leaves the API, so there is no answer without its record.

One Avro record per query (``schemas/access-event.avsc``, single-object encoding): consumer, dataset,
agreement, the purpose the caller stated, the operation, the records returned, and the time. Records are
named by their pseudonyms, as on the dataset topics (a keyed hash under the dataset's routing key), never by
their keys or field values: an erased member's key is in no log. Auditors read it back with ``sharehub
audit access``, which turns a record key they ask about into its pseudonym with the hub's routing key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sharehub.avro import load_schema, split_single_object
from sharehub.errors import BrokerError
from sharehub.kafka import producer_config, read_topic, records

ACCESS_SCHEMA = load_schema("access-event")
DELIVERY_TIMEOUT_S = 10.0
NOT_TAKEN = "the access log did not take the record of this query"


class AccessLog:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer({**producer_config(bootstrap), "linger.ms": 0})
        # One thread serves every delivery report and hands each to the event loop of the request that
        # waits for it, so concurrent queries never queue behind each other's polling.
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="access-log", daemon=True)
        self._poller.start()
        try:  # the topic's metadata now, not inside the first query
            self._producer.list_topics(topic, timeout=DELIVERY_TIMEOUT_S)
        except KafkaException as exc:
            raise BrokerError(f"the access log {topic} is unreachable: {exc}") from None

    def _serve_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    async def record(
        self,
        *,
        consumer: str,
        purpose: str,
        operation: str,
        dataset: str | None = None,
        agreement: str | None = None,
        record_refs: Sequence[str] = (),
    ) -> str:
        """Write one access event and wait (without holding a thread) until the broker holds it; returns
        its request id. BrokerError if the broker does not take it within ``DELIVERY_TIMEOUT_S``."""
        request_id = uuid.uuid4().hex
        value = ACCESS_SCHEMA.encode_single_object(
            {
                "request_id": request_id,
                "consumer": consumer,
                "dataset": dataset,
                "agreement": agreement,
                "purpose": purpose,
                "operation": operation,
                "record_refs": list(record_refs),
                "at": dt.datetime.now(dt.UTC),
            }
        )
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[KafkaError | None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, outcome, err)

        try:
            self._producer.produce(self.topic, value=value, key=consumer.encode(), on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            raise BrokerError(f"{NOT_TAKEN}: {exc}") from None
        try:
            failure = await asyncio.wait_for(outcome, DELIVERY_TIMEOUT_S)
        except TimeoutError:
            raise BrokerError(f"{NOT_TAKEN}: not delivered in time") from None
        if failure is not None:
            raise BrokerError(f"{NOT_TAKEN}: {failure.str()}")
        return request_id

    def close(self) -> None:
        self._closing.set()
        self._poller.join()
        self._producer.flush(DELIVERY_TIMEOUT_S)


def _settle(outcome: asyncio.Future[KafkaError | None], err: KafkaError | None) -> None:
    if not outcome.done():  # a request that gave up waiting has cancelled it
        outcome.set_result(err)


def decode_access(value: bytes) -> dict[str, Any]:
    fp, body = split_single_object(value)
    if fp != ACCESS_SCHEMA.fingerprint:
        raise ValueError("not a sharehub access event")
    return ACCESS_SCHEMA.decode(body)


def read_access_log(bootstrap: str, topic: str) -> Iterator[dict[str, Any]]:
    for record in records(read_topic(bootstrap, topic)):
        yield decode_access(record.value)
