"""The access log (R7): every answered query of a read model (and every key release), written to
``<prefix>-access-log`` before the answer leaves the API, so there is no answer without its record.

One record per query (:mod:`sharehub.access_records` seals it): consumer, dataset, agreement and its version,
the purpose the caller stated, the operation, its filter and ``as_of``, the fields and records returned, the
time. Each API instance signs its records with the operator key and chains them in its own lane (an instance
id, a sequence, the previous record's hash), keyed by the instance so that its whole chain is in one
partition, in order. Records are named by their pseudonyms, as on the dataset topics (a keyed hash under the
dataset's routing key), never by their keys or field values: an erased member's key is in no log. Auditors
read it back with ``sharehub audit access`` and verify it with ``sharehub audit verify``.

Records are group-committed: while one group of records is with the broker, the records of the queries that
arrive meanwhile queue; when the broker has answered for the whole group, the queued ones are sealed (in
order, each signed on its own, so the lane is exactly what it would be one record at a time) and go as the
next group, in one produce request. A query alone goes at once, as before; under load, one round trip to the
broker carries the records of every query that arrived during the previous one. Each query still waits for
the broker's acknowledgement of its own record, and one whose record the broker refuses (or does not take
within ``DELIVERY_TIMEOUT_S``) is refused: no answer leaves without its record.

So that cutting off an instance's last records shows too, the instance states its lane's head in a signed
checkpoint (:func:`sharehub.access_records.seal_lane_checkpoint`) on ``<prefix>-access-log.checkpoints``:
after every ``every`` records, ``seconds`` after its last checkpoint if it wrote records since, and when it
closes (:class:`Checkpointing`). The thread that serves delivery reports writes them, so a query's answer
never waits for one; a checkpoint the broker refuses is logged, and the next one (on close at the latest)
states the head again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sharehub.access_records import open_access, seal_access, seal_lane_checkpoint
from sharehub.chain import GENESIS, ChainHead
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
        #: Group commit: the records queued while a group is in flight, the group's records the broker
        #: has not answered for yet, and the answers it has given (see :meth:`_send_queued`).
        self._queued: list[_Waiting] = []
        self._unanswered = 0
        self._answers: list[tuple[_Waiting, str | None]] = []
        #: Groups handed to the producer so far (each one produce request for the records it holds).
        self.groups_sent = 0
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
        waiting = _Waiting(fields, loop, loop.create_future())
        with self._sealing:
            self._queued.append(waiting)
            if not self._unanswered:  # no group in flight: this one goes now, alone or with others
                self._send_queued()
        try:
            failure = await asyncio.wait_for(waiting.outcome, DELIVERY_TIMEOUT_S)
        except TimeoutError:  # cancels the outcome: a record not sealed yet is left out of the lane
            raise BrokerError(f"{NOT_TAKEN}: not delivered in time") from None
        if failure is not None:
            raise BrokerError(f"{NOT_TAKEN}: {failure}")
        return request_id

    def _send_queued(self) -> None:
        """Seal the queued records, in order, as the lane's next ones and hand them to the producer in one
        batch (one produce request). Holds ``_sealing``. The chain moves on past each record the producer
        holds; a record the broker then refuses is a gap the audit reports."""
        group = [w for w in self._queued if not w.outcome.done()]  # done: its request gave up waiting
        self._queued = []
        group, messages = self._seal(group)
        if not group:
            return
        try:
            self._producer.produce_batch(self.topic, messages)
        except (BufferError, KafkaException) as exc:
            _answer([(w, str(exc)) for w in group])
            return
        self.groups_sent += 1
        refused = [(w, str(m["_error"])) for w, m in zip(group, messages, strict=True) if "_error" in m]
        held = [w for w, m in zip(group, messages, strict=True) if "_error" not in m]
        if held:
            self._head = held[-1].head
        self._unanswered = len(held)
        _answer(refused)

    def _seal(self, group: list[_Waiting]) -> tuple[list[_Waiting], list[dict[str, Any]]]:
        """The records of ``group`` sealed in order after the lane's head, and their messages (each
        ``waiting.head`` is the lane's head after its record). One that cannot be sealed is refused now,
        never left to stop the thread that reports deliveries."""
        sealed, messages, head, key = [], [], self._head, self.instance.encode()
        for waiting in group:
            try:
                value, head = seal_access(
                    waiting.fields, instance=self.instance, head=head, signer=self._signer
                )
            except Exception as exc:
                log.exception("access record of request %s not sealed", waiting.fields["request_id"])
                _answer([(waiting, f"it could not be sealed: {exc}")])
                continue
            waiting.head = head
            sealed.append(waiting)
            messages.append({"value": value, "key": key, "callback": partial(self._delivered, waiting)})
        return sealed, messages

    def _delivered(self, waiting: _Waiting, err: KafkaError | None, _msg: Message) -> None:
        """A delivery report (the reporting thread): once the broker has answered for the whole group, the
        records queued meanwhile go as the next group, and the group's requests get their answers.

        The next group is sealed on the event loop of a query that waits in it, not here: sealing holds the
        GIL for a while, and the loop would wait for it each time it lets go of it (for a read, a write)."""
        with self._sealing:
            self._answers.append((waiting, err.str() if err is not None else None))
            self._unanswered -= 1
            if self._unanswered:
                return
            answers, self._answers = self._answers, []
            if self._queued:
                try:
                    self._queued[0].loop.call_soon_threadsafe(self._send_next)
                except RuntimeError:  # that loop has closed: the reporting thread sends the group itself
                    self._send_queued()
        _answer(answers)

    def _send_next(self) -> None:
        """Send the queued records unless a query has sent a group meanwhile (they then wait for it)."""
        with self._sealing:
            if not self._unanswered:
                self._send_queued()

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


@dataclass(eq=False)
class _Waiting:
    """A request waiting for its access record: the record's fields, then (once sealed) the lane's head
    after it; and the outcome it waits for (None: the broker holds the record; otherwise why not)."""

    fields: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    outcome: asyncio.Future[str | None]
    head: ChainHead = GENESIS


def _answer(answers: Sequence[tuple[_Waiting, str | None]]) -> None:
    """Hand each request its outcome on its own event loop: one wake-up per loop, not one per record."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiting, str | None]]] = {}
    for waiting, failure in answers:
        by_loop.setdefault(waiting.loop, []).append((waiting, failure))
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop that has closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, group)


def _settle(group: list[tuple[_Waiting, str | None]]) -> None:
    for waiting, failure in group:
        if not waiting.outcome.done():  # a request that gave up waiting has cancelled it
            waiting.outcome.set_result(failure)


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
