"""The access log (R7): every answered query of a read model (and every key release), written to
``<prefix>-access-log`` before the answer leaves the API, so there is no answer without its record.

One record per query (:mod:`sharehub.access_records` seals it): consumer, dataset, agreement and its version,
the purpose the caller stated, the operation, its filter and ``as_of``, the fields and records returned, the
time. Each API instance signs its records with the operator key and chains them in its own lane (an instance
id, a sequence, the previous record's hash), keyed by the instance so that its whole chain is in one
partition, in order. Records are named by their pseudonyms, as on the dataset topics (a keyed hash under the
dataset's routing key), never by their keys or field values: an erased member's key is in no log. Auditors
read it back with ``sharehub audit access`` and verify it with ``sharehub audit verify``.

So that cutting off an instance's last records shows too, the instance states its lane's head in a signed
checkpoint (:func:`sharehub.access_records.seal_lane_checkpoint`) on ``<prefix>-access-log.checkpoints``:
after every ``every`` records, ``seconds`` after its last checkpoint if it wrote records since, and when it
closes (:class:`Checkpointing`). The thread that serves delivery reports writes them, so a query's answer
never waits for one; a checkpoint the broker refuses is logged, and the next one (on close at the latest)
states the head again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sharehub.access_records import open_access, seal_access, seal_lane_checkpoint
from sharehub.chain import GENESIS
from sharehub.errors import BrokerError
from sharehub.kafka import producer_config, read_topic, records
from sharehub.keys import Signer

DELIVERY_TIMEOUT_S = 10.0
NOT_TAKEN = "the access log did not take the record of this query"
#: How long the delivery-report thread waits for a report before it looks whether a checkpoint is due.
POLL_S = 0.05

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpointing:
    """Where an API instance states its lane's head, as whom, and how often: after ``every`` records, and
    ``seconds`` after its last checkpoint when it wrote records since (0: not by time); always on close."""

    topic: str
    operator: str
    every: int = 100
    seconds: float = 10.0


class AccessLog:
    """One API instance's writer of the access log: its lane (``instance``), signed with ``signer`` (the
    operator key), and its lane's checkpoints."""

    def __init__(self, bootstrap: str, topic: str, signer: Signer, checkpointing: Checkpointing) -> None:
        self.topic = topic
        self.instance = f"api-{uuid.uuid4().hex[:12]}"
        self._signer = signer
        self._plan = checkpointing
        self._head = GENESIS
        #: The head the last checkpoint stated, and when the next one is due by time.
        self._stated = GENESIS
        self._due = time.monotonic() + checkpointing.seconds
        #: Whether the broker refused a checkpoint since: the next one states the head even if unchanged.
        self._restate = False
        self._sealing = threading.Lock()  # sequence, seal and produce in one step: the chain's order
        self._producer = Producer({**producer_config(bootstrap), "linger.ms": 0})
        # One thread serves every delivery report and hands each to the event loop of the request that
        # waits for it, so concurrent queries never queue behind each other's polling.
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="access-log", daemon=True)
        self._poller.start()
        try:  # the topics' metadata now, not inside the first query
            for name in (topic, checkpointing.topic):
                self._producer.list_topics(name, timeout=DELIVERY_TIMEOUT_S)
        except KafkaException as exc:
            raise BrokerError(f"the access log {topic} is unreachable: {exc}") from None

    def _serve_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(POLL_S)
            self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        plan = self._plan
        written = self._head.sequence - self._stated.sequence
        if written >= plan.every or (written and plan.seconds and time.monotonic() >= self._due):
            self.checkpoint()

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

    def checkpoint(self) -> None:
        """State the lane's head now (nothing when it was stated already and the broker took it). One the
        producer or the broker refuses is logged; the next one, at the latest on close, states it again."""
        with self._sealing:
            head = self._head
            if head == self._stated and not self._restate:
                return
            value = seal_lane_checkpoint(self._signer, self._plan.operator, self.instance, head)
            try:
                self._producer.produce(
                    self._plan.topic, value=value, key=self.instance.encode(), on_delivery=self._taken
                )
            except (BufferError, KafkaException) as exc:
                log.warning("the checkpoint of access-log lane %s at %d was not written: %s",
                            self.instance, head.sequence, exc)  # fmt: skip
                return
            self._stated, self._due, self._restate = head, time.monotonic() + self._plan.seconds, False

    def _taken(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._restate = True
            log.warning("a checkpoint of access-log lane %s was refused: %s", self.instance, err.str())

    def close(self) -> None:
        """Stop serving reports, state the lane's head, and wait (``DELIVERY_TIMEOUT_S`` at most) until the
        broker holds everything written."""
        self._closing.set()
        self._poller.join()
        self.checkpoint()
        left = self._producer.flush(DELIVERY_TIMEOUT_S)
        if left:
            log.warning("access-log lane %s closed with %d records undelivered", self.instance, left)


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
