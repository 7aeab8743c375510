"""The dataset codec: the one object that seals a dataset's records into events and opens them again.

Bound once to a dataset, the governance it is judged under and the dataset keys (and, to seal, the
producing agency with its signer and where its chains stand), it runs the whole path both ways, a batch at
a time, so that no caller spells out the steps of :mod:`sharehub.envelope`:

- :meth:`DatasetCodec.seal_many`: pseudonym → lane → chain position → encode → encrypt → one signature per
  batch of up to :data:`SIGN_BATCH` events (subjects' keys made first, durably);
- :meth:`DatasetCodec.open_many`: parse → authenticate (dataset, owner, signature) → lane → chain verdict →
  decrypt → decode, each event with its own verdict (an :class:`Opened` or the error that refuses it);
- :meth:`DatasetCodec.verify`: parse → authenticate → lane, with public keys only (the audit, an agency
  recovering its chain heads).

The publisher, the projection, the audit, the quarantine review and the benchmarks all go through it. The
keys come through one seam, :class:`DatasetKeys` (the hub's key store, or keys released to an agency), and
the signature through a :class:`~sharehub.keys.Signer` the producer holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from sharehub import chain
from sharehub.avro import RecordSchema
from sharehub.envelope import (
    ChainPosition,
    Envelope,
    EventSealer,
    Sealed,
    SignerDirectory,
    VerifiedRoots,
    authenticate,
    decrypt,
    lane_for,
    parse,
    pseudonym,
    sign_batch,
)
from sharehub.errors import ChainViolation, EnvelopeError, SubjectErased
from sharehub.keys import SecretBytes, Signer, subject_key_id

#: Events per signature: one Ed25519 signature over the Merkle root of up to this many events.
SIGN_BATCH = 256


class DatasetKeys(Protocol):
    """The keys of datasets, as a key service hands them out: all the codec needs besides a signer."""

    def current_data_key_id(self, dataset: str) -> str:
        """The id of the key new events of ``dataset`` are encrypted with (the current epoch)."""

    def data_key(self, key_id: str) -> SecretBytes:
        """The data-encryption key with this id; UnknownDataKey if there is none."""

    def routing_key(self, dataset: str) -> SecretBytes:
        """The key that turns record keys into pseudonyms (Kafka message keys, subject refs)."""

    def ensure_subject_keys(self, dataset: str, subject_refs: Iterable[bytes]) -> None:
        """Create (durably, before any event uses them) the keys of subjects that have none yet."""

    def subject_key(self, key_id: str) -> SecretBytes:
        """A data subject's key; SubjectErased once destroyed, UnknownDataKey if it never existed."""

    def prefetch_subject_keys(self, key_ids: Iterable[str]) -> None:
        """Load many subject keys at once (a batch of events asks for many)."""

    def forget_cached(self, key_id: str) -> None:
        """Drop a subject key from any cache (it was destroyed, perhaps by another process)."""


@runtime_checkable
class KeysAskedAhead(Protocol):
    """Keys that come from a service answering while this process seals (the hub's key service, over
    HTTP): subjects' keys can be asked for before the events that need them are sealed."""

    def ensure_subject_keys_ahead(self, dataset: str, subject_refs: Iterable[bytes]) -> None:
        """Start making (durably) and fetching these subjects' keys; ensure_subject_keys waits for it."""


class CodecGovernance(SignerDirectory, Protocol):
    """The part of governance a codec needs: who may sign, who owns, which schemas."""

    def current_schema(self, dataset: str) -> RecordSchema: ...


@dataclass
class Producing:
    """Who seals: the producing agency, the key it signs with, and where its chain stands in each lane."""

    agency: str
    signer: Signer
    lanes: int
    heads: dict[int, chain.ChainHead] = field(default_factory=dict)
    #: Events per signature (one Ed25519 signature over the Merkle root of the batch).
    batch: int = SIGN_BATCH
    #: The only lanes this producer seals into, when it is one of several (None: every lane).
    owned: frozenset[int] | None = None

    def head(self, lane: int) -> chain.ChainHead:
        return self.heads.get(lane, chain.GENESIS)


class SealedEvent(NamedTuple):
    """A sealed, signed event and its record's pseudonym (its Kafka message key)."""

    envelope: Envelope
    ref: bytes


class Opened(NamedTuple):
    """An event that passed every check. ``record`` is None when it erases its subject: an ERASED event,
    or any event whose subject's key was destroyed."""

    envelope: Envelope
    schema: RecordSchema | None
    record: dict[str, Any] | None
    #: The record's key (None for an erasure), and the pseudonym (hex) that names its subject everywhere.
    record_key: str | None
    subject_ref: str

    @property
    def erased(self) -> bool:
        return self.record is None


#: Where each producer's chain stands in each lane, as a reader has judged it: (lane, producer) → head.
ChainHeads = MutableMapping[tuple[int, str], chain.ChainHead]


class DatasetCodec:
    """Seals and opens the events of one dataset."""

    def __init__(
        self,
        dataset: str,
        key_field: str,
        governance: CodecGovernance,
        keys: DatasetKeys | None,
        *,
        producing: Producing | None = None,
        roots: VerifiedRoots | None = None,
    ) -> None:
        self.dataset = dataset
        self.key_field = key_field
        self._governance = governance
        self._keys = keys
        self.producing = producing
        #: Batch roots already verified: the rest of a batch costs a hash, not a signature check.
        self._roots = roots or VerifiedRoots()
        self._routing: SecretBytes | None = None

    # --- sealing --------------------------------------------------------------------------------------

    def seal_many(
        self,
        datums: Sequence[dict[str, Any]],
        *,
        event_type: str = "UPSERTED",
        occurred_at: dt.datetime | None = None,
    ) -> list[SealedEvent | SubjectErased]:
        """Seal valid Avro records of the dataset's current schema as the producer's next events, each in
        its record's lane, signed a batch at a time; their subjects' keys are made first. One outcome per
        record, in order: its envelope, or SubjectErased for a subject that was erased (nothing is sealed
        for it, and the chain does not move)."""
        producing, keys = self._producer(), self._with_keys()
        schema = self._governance.current_schema(self.dataset)
        refs = [self.pseudonym(str(d[self.key_field])) for d in datums]
        subjects = [subject_key_id(self.dataset, ref) for ref in refs] if schema.personal_fields else []
        if subjects:
            keys.ensure_subject_keys(self.dataset, refs)
            keys.prefetch_subject_keys(subjects)  # one look-up for the chunk, not one per event
        sealer = self._sealer(producing, keys, schema, event_type, len(datums))
        outcomes: list[tuple[Sealed, bytes] | SubjectErased] = []
        for index, (datum, ref) in enumerate(zip(datums, refs, strict=True)):
            subject = subjects[index] if subjects else ""
            try:
                subject_key = keys.subject_key(subject) if subject else None
            except SubjectErased as erased:
                outcomes.append(erased)
                continue
            event = self._next(producing, sealer, datum, ref, subject, subject_key, occurred_at)
            outcomes.append((event, ref))
        sealed = [o for o in outcomes if not isinstance(o, SubjectErased)]
        signed = iter(self._signed([event for event, _ in sealed], producing))
        return [o if isinstance(o, SubjectErased) else SealedEvent(next(signed), o[1]) for o in outcomes]

    def ask_ahead(self, datums: Sequence[dict[str, Any]]) -> None:
        """Have the subjects' keys of records to be sealed next asked for now, when the keys come from a
        service that answers meanwhile (:class:`KeysAskedAhead`); otherwise this does nothing."""
        keys = self._with_keys()
        if not datums or not isinstance(keys, KeysAskedAhead):
            return
        if self._governance.current_schema(self.dataset).personal_fields:
            refs = [self.pseudonym(str(d[self.key_field])) for d in datums]
            keys.ensure_subject_keys_ahead(self.dataset, refs)

    def erase(self, record_key: str) -> SealedEvent:
        """The producer's ERASED event for one record's subject (destroying its key is governance's step)."""
        producing, keys = self._producer(), self._with_keys()
        schema = self._governance.current_schema(self.dataset)
        ref = self.pseudonym(record_key)
        sealer = self._sealer(producing, keys, schema, "ERASED", 1)
        event = self._next(producing, sealer, None, ref, subject_key_id(self.dataset, ref), None, None)
        return SealedEvent(self._signed([event], producing)[0], ref)

    def pseudonym(self, record_key: str) -> bytes:
        """The record's pseudonym: its Kafka message key and the name of its subject (keyed hash)."""
        if self._routing is None:
            self._routing = self._with_keys().routing_key(self.dataset)
        return pseudonym(self._routing, record_key)

    def _sealer(
        self, producing: Producing, keys: DatasetKeys, schema: RecordSchema, event_type: str, expected: int
    ) -> EventSealer:
        """What seals a chunk of ``expected`` events of one type: bound once to all they share."""
        data_key_id = keys.current_data_key_id(self.dataset)
        return EventSealer(
            schema=schema, producer=producing.agency, dataset=self.dataset, event_type=event_type,
            signing_key_id=producing.signer.key_id, data_key_id=data_key_id,
            data_key=keys.data_key(data_key_id), expected=expected,
        )  # fmt: skip

    def _next(
        self,
        producing: Producing,
        sealer: EventSealer,
        datum: dict[str, Any] | None,
        ref: bytes,
        subject: str,
        subject_key: SecretBytes | None,
        occurred_at: dt.datetime | None,
    ) -> Sealed:
        lane = lane_for(ref, producing.lanes)
        if producing.owned is not None and lane not in producing.owned:
            raise ChainViolation(
                "misrouted", f"lane {lane} is sealed by another of the agency's publishing processes"
            )
        head = producing.head(lane)
        position = ChainPosition(lane, head.sequence + 1, head.hash)
        event = sealer.seal(datum, position, subject, subject_key, None, occurred_at)
        producing.heads[lane] = chain.head_after(event)
        return event

    @staticmethod
    def _signed(sealed: list[Sealed], producing: Producing) -> list[Envelope]:
        out: list[Envelope] = []
        for start in range(0, len(sealed), producing.batch):
            out += sign_batch(sealed[start : start + producing.batch], producing.signer)
        return out

    # --- opening --------------------------------------------------------------------------------------

    @staticmethod
    def parse(raw: bytes) -> Envelope:
        """The event's structure and header, no key needed (MalformedEnvelope and its kin otherwise)."""
        return parse(raw)

    def verify(self, raw: bytes | Envelope | EnvelopeError, partition: int) -> Envelope:
        """The event is this dataset's, signed by a valid key of its owner, in the lane it was signed for.
        Public keys only; the error that refuses it otherwise."""
        if isinstance(raw, EnvelopeError):
            raise raw
        envelope = raw if isinstance(raw, Envelope) else parse(raw)
        authenticate(envelope, topic_dataset=self.dataset, signers=self._governance, roots=self._roots)
        if envelope.header.lane != partition:
            raise ChainViolation(
                "misrouted", f"signed for lane {envelope.header.lane}, found in partition {partition}"
            )
        return envelope

    def open_many(
        self,
        items: Sequence[tuple[int, bytes | Envelope | EnvelopeError]],
        heads: ChainHeads | None = None,
    ) -> list[Opened | EnvelopeError]:
        """Each (partition, event) verified, judged against its producer's chain in ``heads`` (which it
        moves on; None: chains are not judged) and decrypted: an :class:`Opened`, or the error that refuses
        it. A gap is refused and the chain goes on from the event after it; a replay, a duplicate or a fork
        leaves the chain where it was."""
        keys = self._with_keys()
        verified: list[Envelope | EnvelopeError] = []
        for partition, item in items:
            try:
                verified.append(self._judged(self.verify(item, partition), heads))
            except EnvelopeError as exc:
                verified.append(exc)
        keys.prefetch_subject_keys(
            e.header.subject_key_id for e in verified if isinstance(e, Envelope) and e.header.subject_key_id
        )
        return [self._decrypted(e, keys) if isinstance(e, Envelope) else e for e in verified]

    @staticmethod
    def _judged(envelope: Envelope, heads: ChainHeads | None) -> Envelope:
        if heads is None:
            return envelope
        header = envelope.header
        key = (header.lane, header.producer)
        verdict = chain.judge(heads.get(key), envelope)
        if verdict in (None, chain.GAP):
            heads[key] = chain.head_after(envelope)  # a gap is reported, then the chain goes on
        if verdict is not None:
            raise ChainViolation(
                verdict, f"sequence {header.sequence} in lane {header.lane} of {header.producer!r}"
            )
        return envelope

    def _decrypted(self, envelope: Envelope, keys: DatasetKeys) -> Opened | EnvelopeError:
        header = envelope.header
        try:
            event = decrypt(envelope, signers=self._governance, keys=keys)
        except SubjectErased:
            return Opened(envelope, None, None, None, _subject_ref(header.subject_key_id))
        except EnvelopeError as exc:
            return exc
        if event.record is None:  # ERASED
            keys.forget_cached(header.subject_key_id)
            return Opened(envelope, event.schema, None, None, _subject_ref(header.subject_key_id))
        record_key = str(event.record[self.key_field])
        return Opened(envelope, event.schema, event.record, record_key, self.pseudonym(record_key).hex())

    # --- what it is bound to ----------------------------------------------------------------------------

    def _producer(self) -> Producing:
        if self.producing is None:
            raise ValueError(
                f"this codec of {self.dataset!r} opens events; it was given no producer to seal as"
            )
        return self.producing

    def _with_keys(self) -> DatasetKeys:
        if self._keys is None:
            raise ValueError(f"this codec of {self.dataset!r} verifies only; it was given no dataset keys")
        return self._keys


def codecs_by_topic(
    datasets: Iterable[Any], governance: CodecGovernance, keys: DatasetKeys | None
) -> Mapping[str, DatasetCodec]:
    """A reading codec per dataset topic (``datasets``: governance's dataset views); they share the batch
    roots verified."""
    roots = VerifiedRoots()
    return {d.topic: DatasetCodec(d.id, d.key_field, governance, keys, roots=roots) for d in datasets}


def _subject_ref(subject_key_id: str) -> str:
    return subject_key_id.rsplit("/", 1)[-1]
