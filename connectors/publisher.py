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
from collections.abc import Callable, Iterable
from itertools import groupby
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connectors.chain_head import recover_chain_heads
from connectors.dataset_publishing import DatasetPublishing
from connectors.jsonl_source import BadLine, Line
from connectors.source_positions import Headers, SourcePosition
from connectors.validated_chunks import ChunkValidator, PublishReport, Resume, ValidatedChunk, chunks
from sharehub import chain
from sharehub.checkpoints import seal_checkpoint
from sharehub.codec import DatasetKeys, Producing, SealedEvent
from sharehub.envelope import Envelope
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
from sharehub.kafka import producer_config
from sharehub.keys import Signer

CHECKPOINT_EVERY = 1000
ERASED = "this data subject was erased; it cannot be published"
#: Records sealed at a time: two signature batches of 256.
CHUNK = 512


class Publisher(DatasetPublishing):
    """Publishes records of one dataset as its owner agency, signing with the agency's key; with
    ``lanes``, only into those lanes (one of several processes: :mod:`connectors.lane_split`), whose
    chains alone it recovers."""

    def __init__(
        self,
        *,
        bootstrap: str,
        governance: GovernanceView,
        keys: DatasetKeys,
        signer: Signer,
        agency: str,
        dataset: str,
        lanes: frozenset[int] | None = None,
    ) -> None:
        super().__init__(
            bootstrap=bootstrap, governance=governance, keys=keys, agency=agency, dataset=dataset
        )
        _check_signer(governance, agency, signer)
        count, heads = recover_chain_heads(bootstrap, self.topic, agency, self._codec, only=lanes)
        self._codec.producing = Producing(agency, signer, count, heads, owned=lanes)
        self._validator = ChunkValidator(self._rules, self._codec, count, name_lanes=False)
        self._checkpoint_topic = governance.checkpoint_topic(agency)
        self._unchecked: dict[int, int] = {}
        self._producer = Producer(producer_config(bootstrap))
        self._failures: list[str] = []

    # --- publishing ----------------------------------------------------------------------------------

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
        validated = (
            self._validator.validated(chunk, resume, event_type) for chunk in chunks(iter(lines), CHUNK)
        )
        return self.publish_validated(validated, resume, progress)

    def publish_validated(
        self,
        validated: Iterable[ValidatedChunk],
        resume: Resume | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PublishReport:
        """Publish chunks already validated, in order, then flush. One chunk ahead: the next chunk's
        subjects' keys are asked for before this one is sealed and sent (a key service answers meanwhile:
        its round trip no longer stops the sealing)."""
        report = PublishReport()
        pending: ValidatedChunk | None = None
        try:
            for chunk in validated:
                self._codec.ask_ahead([v.datum for v in chunk.valid if v.event_type != "ERASED"])
                if pending is not None:
                    ready, pending = pending, None
                    self._publish_chunk(ready, report, resume, progress)
                pending = chunk
        finally:
            # The last chunk; or, when the source failed part-way, the chunk read before it is still sent.
            if pending is not None:
                self._publish_chunk(pending, report, resume, progress)
        self.flush()
        return report

    def _publish_chunk(
        self,
        chunk: ValidatedChunk,
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
            super().close()

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
