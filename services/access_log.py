"""The access log (R7): every answered query of a read model (and every key release), written to
``<prefix>-access-log`` before the answer leaves the API, so there is no answer without its record.

One record per query (:mod:`sharehub.access_records` seals it): consumer, dataset, agreement and its version,
the purpose the caller stated, the operation, its filter and ``as_of``, the fields and records returned, the
time. Each API instance signs its records with the operator key and chains them in its own lane (an instance
id, a sequence, the previous record's hash), keyed by the instance so that its whole chain is in one
partition, in order. Records are named by their pseudonyms, as on the dataset topics (a keyed hash under the
dataset's routing key), never by their keys or field values: an erased member's key is in no log. Auditors
read it back with ``sharehub audit access`` and verify it with ``sharehub audit verify``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sharehub.access_records import open_access, seal_access
from sharehub.chain import GENESIS
from sharehub.errors import BrokerError
from sharehub.kafka import producer_config, read_topic, records
from sharehub.keys import Signer

DELIVERY_TIMEOUT_S = 10.0
NOT_TAKEN = "the access log did not take the record of this query"


class AccessLog:
    """One API instance's writer of the access log: its lane (``instance``), signed with ``signer`` (the
    operator key)."""

    def __init__(self, bootstrap: str, topic: str, signer: Signer) -> None:
        self.topic = topic
        self.instance = f"api-{uuid.uuid4().hex[:12]}"
        self._signer = signer
        self._head = GENESIS
        self._sealing = threading.Lock()  # sequence, seal and produce in one step: the chain's order
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
        agreement_version: int | None = None,
        record_refs: Sequence[str] = (),
        fields_returned: Sequence[str] = (),
        row_filter: str | None = None,
        as_of: dt.datetime | None = None,
    ) -> str:
        """Write one access record and wait (without holding a thread) until the broker holds it; returns
        its request id. BrokerError if the broker does not take it within ``DELIVERY_TIMEOUT_S``."""
        request_id = uuid.uuid4().hex
        fields = {
            "request_id": request_id, "consumer": consumer, "dataset": dataset, "agreement": agreement,
            "agreement_version": agreement_version, "purpose": purpose, "operation": operation,
            "filter": row_filter, "as_of": as_of, "fields_returned": list(fields_returned),
            "record_refs": list(record_refs), "at": dt.datetime.now(dt.UTC),
        }  # fmt: skip
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[KafkaError | None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, outcome, err)

        self._produce(fields, delivered)
        try:
            failure = await asyncio.wait_for(outcome, DELIVERY_TIMEOUT_S)
        except TimeoutError:
            raise BrokerError(f"{NOT_TAKEN}: not delivered in time") from None
        if failure is not None:
            raise BrokerError(f"{NOT_TAKEN}: {failure.str()}")
        return request_id

    def _produce(self, fields: dict[str, Any], delivered: Any) -> None:
        """Seal ``fields`` as the lane's next record and hand it to the producer; the chain moves on only
        once the producer holds it (a record the broker then refuses is a gap the audit reports)."""
        with self._sealing:
            value, head = seal_access(fields, instance=self.instance, head=self._head, signer=self._signer)
            try:
                self._producer.produce(
                    self.topic, value=value, key=self.instance.encode(), on_delivery=delivered
                )
            except (BufferError, KafkaException) as exc:
                raise BrokerError(f"{NOT_TAKEN}: {exc}") from None
            self._head = head

    def close(self) -> None:
        self._closing.set()
        self._poller.join()
        self._producer.flush(DELIVERY_TIMEOUT_S)


def _settle(outcome: asyncio.Future[KafkaError | None], err: KafkaError | None) -> None:
    if not outcome.done():  # a request that gave up waiting has cancelled it
        outcome.set_result(err)


def decode_access(value: bytes) -> dict[str, Any]:
    """An access record's fields (signed or legacy), its signature unchecked; ValueError otherwise.
    A legacy record has no ``instance``; ``signed`` says which it is."""
    try:
        opened = open_access(value)
    except Exception as exc:
        raise ValueError(str(exc)) from None
    return {**opened.fields, "signed": not opened.legacy}


def read_access_log(bootstrap: str, topic: str) -> Iterator[dict[str, Any]]:
    for record in records(read_topic(bootstrap, topic)):
        yield decode_access(record.value)
