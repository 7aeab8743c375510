"""Publishing: validate each record, seal it with the dataset's codec, and produce it to its dataset's topic.

Delivery is idempotent with acks=all. Every event of one record goes to one lane (partition), keyed by the
record's pseudonym, so its changes stay in order; each lane carries its own hash chain, continued from what
the topic already holds, and a signed checkpoint of each chain goes to the owner's checkpoint topic every
``CHECKPOINT_EVERY`` events and at every flush. The codec (:mod:`sharehub.codec`) seals records a chunk at a
time and signs them in batches of up to 256, one signature over each batch's Merkle root; subjects' keys
are created, durably, before any event that needs them is sealed: those of the next chunk are asked for
(from a key service, on a thread) while this chunk is sealed and sent. Only the dataset's owner publishes.
A line may carry its own event type (an outbox row does): UPSERTED and CORRECTED lines are records of the
schema, an ERASED line only names its subject by the dataset's key field; runs of one type are sealed in
turn, in the lines' order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import groupby, islice
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, Message, Producer

from connectors.chain_head import recover_chain_heads
from connectors.jsonl_source import BadLine, Line
from connectors.record_rules import RecordRules
from connectors.source_positions import Headers, SourcePosition, written_positions
from sharehub import chain
from sharehub.avro import RecordSchema
from sharehub.checkpoints import seal_checkpoint
from sharehub.codec import DatasetCodec, DatasetKeys, Producing, SealedEvent
from sharehub.envelope import Envelope, lane_for
from sharehub.errors import (
    BrokerError,
    ChainViolation,
    EnvelopeError,
    InputError,
    RecordValidationError,
    SubjectErased,
    UnknownSigner,
)
from sharehub.gov.views import GovernanceView
from sharehub.kafka import TopicReader, producer_config
from sharehub.keys import Signer

CHECKPOINT_EVERY = 1000
ERASED = "this data subject was erased; it cannot be published"
#: Records sealed at a time: two signature batches of 256.
CHUNK = 512


@dataclass
class PublishReport:
    published: int = 0
    rejected: list[BadLine] = field(default_factory=list)
    #: Lines whose record its lane already holds (published before, see :mod:`connectors.exactly_once`).
    skipped: int = 0


class _Valid(NamedTuple):
    number: int
    datum: dict[str, Any]
    event_type: str


class _Validated(NamedTuple):
    """A chunk of lines, validated: how many lines it held, the valid ones, and what it refused or skipped."""

    lines: int
    valid: list[_Valid]
    refused: PublishReport


@dataclass(frozen=True)
class Resume:
    """What a source already has on the topic: its id, and lane → the highest position written there."""

    source: str
    written: Mapping[int, int]


class Publisher:
    """Publishes records of one dataset as its owner agency, signing with the agency's key."""

    def __init__(
        self,
        *,
        bootstrap: str,
        governance: GovernanceView,
        keys: DatasetKeys,
        signer: Signer,
        agency: str,
        dataset: str,
    ) -> None:
        ds = governance.dataset(dataset)
        governance.agency(agency)
        if ds.owner != agency:
            raise InputError(f"{agency!r} may not publish {dataset!r}: its owner is {ds.owner!r}")
        _check_signer(governance, agency, signer)
        self._dataset = ds
        self._agency = agency
        self._rules = RecordRules(governance, dataset)
        self._codec = DatasetCodec(ds.id, ds.key_field, governance, keys)
        lanes, heads = recover_chain_heads(bootstrap, ds.topic, agency, self._codec)
        self._codec.producing = Producing(agency, signer, lanes, heads)
        self._checkpoint_topic = governance.checkpoint_topic(agency)
        self._unchecked: dict[int, int] = {}
        self._bootstrap = bootstrap
        self._lane_reader: TopicReader | None = None
        self._producer = Producer(producer_config(bootstrap))
        #: Lane → the offset after the last event of this publisher the broker acknowledged there.
        self.acked_ends: dict[int, int] = {}
        self._failures: list[str] = []
        self._on_close: list[Callable[[], None]] = []

    @property
    def topic(self) -> str:
        return self._dataset.topic

    @property
    def key_field(self) -> str:
        """The field that names a record's subject (its pseudonym, its lane)."""
        return self._dataset.key_field

    @property
    def schema(self) -> RecordSchema:
        """The dataset's current schema, which records are validated against."""
        return self._rules.schema

    # --- publishing ----------------------------------------------------------------------------------

    def publish_records(self, records: Iterable[Any], *, event_type: str = "UPSERTED") -> PublishReport:
        """Publish many JSON records; invalid ones are reported by their position (1-based)."""
        return self.publish_lines((Line(i, r) for i, r in enumerate(records, start=1)), event_type=event_type)

    def publish_lines(
        self,
        lines: Iterable[Line | BadLine],
        *,
        event_type: str = "UPSERTED",
        resume: Resume | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PublishReport:
        """Publish numbered lines; with ``resume``, each event carries its source and line number (Kafka
        headers) and a line whose lane already holds it is skipped. ``progress`` is told how many lines
        each chunk held, once the chunk was handed to the producer."""
        report = PublishReport()
        # One chunk ahead: the next chunk is validated, and its subjects' keys asked for, before this one is
        # sealed and sent (a key service answers meanwhile: its round trip no longer stops the sealing).
        pending: _Validated | None = None
        try:
            for chunk in _chunks(iter(lines), CHUNK):
                validated = self._validated(chunk, resume, event_type)
                if pending is not None:
                    ready, pending = pending, None
                    self._publish_chunk(ready, report, resume, progress)
                pending = validated
        finally:
            # The last chunk; or, when the source failed part-way, the chunk read before it is still sent.
            if pending is not None:
                self._publish_chunk(pending, report, resume, progress)
        self.flush()
        return report

    def _validated(self, chunk: list[Line | BadLine], resume: Resume | None, event_type: str) -> _Validated:
        """A chunk's valid lines (its refusals and skips kept for its turn), its subjects' keys asked for."""
        refused = PublishReport()
        valid = self._valid(chunk, refused, resume, event_type)
        self._codec.ask_ahead([v.datum for v in valid if v.event_type != "ERASED"])
        return _Validated(len(chunk), valid, refused)

    def _publish_chunk(
        self,
        chunk: _Validated,
        report: PublishReport,
        resume: Resume | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        report.rejected += chunk.refused.rejected
        report.skipped += chunk.refused.skipped
        # Sealed and sent run by run in the lines' order: each lane's chain is the order it is sent in.
        for kind, grouped in groupby(chunk.valid, key=lambda v: v.event_type):
            run = list(grouped)
            outcomes = self._seal(kind, [v.datum for v in run])
            for line, outcome in zip(run, outcomes, strict=True):
                if isinstance(outcome, SubjectErased):
                    report.rejected.append(BadLine(line.number, ERASED))
                    continue
                position = None if resume is None else SourcePosition(resume.source, line.number)
                self._send(outcome, position)
                report.published += 1
        self._checkpoint_lanes(CHECKPOINT_EVERY)
        if progress is not None:
            progress(chunk.lines)

    def invalid_records(self, records: Iterable[Any]) -> list[BadLine]:
        """The records (numbered from 1) that do not match the dataset's schema and rules, and why."""
        invalid = []
        for number, record in enumerate(records, start=1):
            try:
                self._rules.validated(record)
            except RecordValidationError as exc:
                invalid.append(BadLine(number, str(exc)))
        return invalid

    # --- envelopes the agency sealed ------------------------------------------------------------------

    def verified_envelopes(self, raws: Iterable[bytes]) -> list[Envelope]:
        """Each raw envelope parsed and verified as this agency's event of this dataset, with public keys
        (the codec's checks: structure, dataset, owner, signature); the first refusal is raised, its message
        naming the envelope (numbered from 1), its ``reason`` the codec's."""
        verified = []
        for number, raw in enumerate(raws, start=1):
            try:
                envelope = self._codec.parse(raw)
                verified.append(self._codec.verify(envelope, envelope.header.lane))
            except EnvelopeError as exc:
                exc.args = (f"envelope {number}: {exc}",)
                raise
        return verified

    @property
    def chain_heads(self) -> tuple[int, dict[int, chain.ChainHead]]:
        """The dataset's lanes, and where this agency's chain stands in each (what an agency's system seals
        its next events after)."""
        producing = self._codec.producing
        assert producing is not None
        return producing.lanes, dict(producing.heads)

    def publish_sealed(
        self,
        lines: Iterable[Line | BadLine],
        *,
        event_type: str = "",
        resume: Resume | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PublishReport:
        """Produce verified envelopes (each a line's record) unchanged, each in its lane; with ``resume``, one
        whose lane already holds its position is skipped. All or nothing: unless every remaining envelope
        continues its lane's chain, in order, ChainViolation names the first that does not and none is sent.
        (``event_type`` is not used: each envelope carries its own.)"""
        report = PublishReport()
        fresh: list[tuple[int, Envelope]] = []
        for line in lines:
            if isinstance(line, BadLine) or not isinstance(line.record, Envelope):
                raise ValueError("publish_sealed takes lines holding verified envelopes")
            lane = line.record.header.lane
            if resume is not None and line.number <= resume.written.get(lane, 0):
                report.skipped += 1
            else:
                fresh.append((line.number, line.record))
        producing = self._codec.producing
        assert producing is not None
        heads = dict(producing.heads)
        for number, envelope in fresh:
            header = envelope.header
            verdict = chain.judge(heads.get(header.lane), envelope)
            if verdict is not None:
                raise ChainViolation(
                    verdict, f"envelope {number}: sequence {header.sequence} in lane {header.lane}"
                )
            heads[header.lane] = chain.head_after(envelope)
        for number, envelope in fresh:
            ref = _message_key(envelope)
            position = None if resume is None else SourcePosition(resume.source, number)
            self._send(SealedEvent(envelope, ref), position)
            report.published += 1
        producing.heads.update(heads)
        self.flush()
        if progress is not None:
            progress(len(fresh) + report.skipped)
        return report

    def written_positions(self, source: str, since: Mapping[int, int]) -> dict[int, int]:
        """Lane → the highest position of ``source`` this agency wrote there at or after ``since[lane]``."""
        return written_positions(self._bootstrap, self.topic, self._agency, self._codec, source, since)

    def lane_ends(self) -> dict[int, int]:
        """Lane → the offset after its last event now (where anything sent from now on will lie), asked with
        one reader kept open while the publisher is (a new client per call cost a TLS and SCRAM login each
        time: most of a gateway request's fixed cost)."""
        if self._lane_reader is None:
            self._lane_reader = TopicReader(self._bootstrap)
            self.on_close(self._close_lane_reader)
        return {lane: high for lane, (_, high) in self._lane_reader.partitions(self.topic).items()}

    def _close_lane_reader(self) -> None:
        if self._lane_reader is not None:
            self._lane_reader.close()
            self._lane_reader = None

    def _valid(
        self, chunk: list[Line | BadLine], report: PublishReport, resume: Resume | None, event_type: str
    ) -> list[_Valid]:
        """The chunk's records that are valid and not yet on the topic, as Avro data with their numbers (an
        erasure's datum holds only its key)."""
        valid: list[_Valid] = []
        lanes = self._codec.producing.lanes if self._codec.producing is not None else 1
        for line in chunk:
            if isinstance(line, BadLine):
                report.rejected.append(line)
                continue
            kind = line.event_type or event_type
            try:
                datum = self._erasure(line.record) if kind == "ERASED" else self._rules.validated(line.record)
            except RecordValidationError as exc:
                report.rejected.append(BadLine(line.number, str(exc)))
                continue
            if resume is not None:
                lane = lane_for(self._codec.pseudonym(str(datum[self._dataset.key_field])), lanes)
                if line.number <= resume.written.get(lane, 0):
                    report.skipped += 1
                    continue
            valid.append(_Valid(line.number, datum, kind))
        return valid

    def _erasure(self, record: Any) -> dict[str, Any]:
        """The key an erasure names its subject by (the dataset's key field), all it needs of its record."""
        key_field = self._dataset.key_field
        key = record.get(key_field) if isinstance(record, dict) else None
        if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
            raise RecordValidationError(f"an erasure names its subject by {key_field!r}, which it lacks")
        return {key_field: key}

    def _seal(self, event_type: str, datums: list[dict[str, Any]]) -> list[SealedEvent | SubjectErased]:
        if event_type == "ERASED":
            return [self._codec.erase(str(d[self._dataset.key_field])) for d in datums]
        return self._codec.seal_many(datums, event_type=event_type)

    def erase(self, record_key: str) -> Envelope:
        """Publish the ERASED event of one data subject (the key destruction is governance's step)."""
        event = self._codec.erase(record_key)
        self._send(event)
        self.flush()
        return event.envelope

    def flush(self, timeout: float = 60.0) -> None:
        """Checkpoint every chain that moved, and wait until the broker acknowledged all handed over."""
        self._checkpoint_lanes(1)
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BrokerError(f"{remaining} events were not acknowledged by Kafka within {timeout:.0f} s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise BrokerError(f"{len(failures)} events were refused by Kafka; first: {failures[0]}")

    def close(self) -> None:
        """Flush (checkpoints included), then let go of what the publisher was given to close."""
        try:
            self.flush()
        finally:
            for close in self._on_close:
                close()
            self._on_close.clear()

    def on_close(self, close: Callable[[], None]) -> None:
        """Have ``close`` called when this publisher closes (a key service client it alone uses)."""
        self._on_close.append(close)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- to the broker -------------------------------------------------------------------------------

    def _send(self, event: SealedEvent, position: SourcePosition | None = None) -> None:
        lane = event.envelope.header.lane
        headers = None if position is None else position.headers()
        self._produce(self._dataset.topic, event.envelope.raw, event.ref, lane, headers)
        self._unchecked[lane] = self._unchecked.get(lane, 0) + 1

    def _checkpoint_lanes(self, at_least: int) -> None:
        """A signed checkpoint of each lane whose chain moved by ``at_least`` events since its last one (after
        the events it vouches for: they were handed to the producer first)."""
        producing = self._codec.producing
        assert producing is not None
        for lane in [lane for lane, n in self._unchecked.items() if n >= at_least]:
            value = seal_checkpoint(
                producing.signer, self._agency, self._dataset.id, lane, producing.head(lane)
            )
            self._produce(self._checkpoint_topic, value, f"{self._dataset.id}:{lane}".encode(), None, None)
            self._unchecked[lane] = 0

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        partition: int | None,
        headers: Headers | None,
    ) -> None:
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                else:
                    self._producer.produce(
                        topic, value=value, key=key, partition=partition, headers=headers,
                        on_delivery=self._delivered,
                    )  # fmt: skip
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))
        elif message.topic() == self._dataset.topic:
            lane, offset = message.partition(), message.offset()
            if lane is not None and offset is not None:
                self.acked_ends[lane] = max(self.acked_ends.get(lane, 0), offset + 1)


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _message_key(envelope: Envelope) -> bytes:
    """The Kafka key of an envelope sealed elsewhere: its subject's pseudonym when the header names one (a
    dataset with personal fields), else its event id. (Routing is by the signed lane, never by this key.)"""
    subject = envelope.header.subject_key_id
    if subject:
        try:
            return bytes.fromhex(subject.rsplit("/", 1)[-1])
        except ValueError:
            pass
    return envelope.header.event_id.encode()


def _check_signer(governance: GovernanceView, agency: str, signer: Signer) -> None:
    """Refuse, before anything is sealed, a key governance would not accept now: not registered for
    ``agency``, revoked, not yet or no longer valid, or registered with another public key."""
    try:
        registered = governance.signing_public_key(agency, signer.key_id, dt.datetime.now(dt.UTC))
    except UnknownSigner as exc:
        raise InputError(
            f"{agency!r} cannot publish with key {signer.key_id!r}: {exc} (register the site's request with "
            "'sharehub gov register-key', or make a new key with 'sharehub agency new-key')"
        ) from None
    if registered.public_bytes_raw() != signer.public_key().public_bytes_raw():
        raise InputError(f"key {signer.key_id!r} of {agency!r} is registered with another public key")
