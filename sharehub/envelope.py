"""The envelope: the one place that seals records into signed, encrypted events and opens them again.

Sealing runs encode → encrypt → sign::

    shared     = single-object Avro of the record's non-personal fields
    personal   = single-object Avro of the record's personal fields (those the schema tags ``personal``)
    header     = C3 01 + envelope fingerprint + Avro of the header fields (producer ... personal_nonce)
    ciphertext = AES-256-GCM(dataset key of the current epoch, nonce, shared, associated data = header)
    personal_ct = AES-256-GCM(the data subject's key, personal_nonce, personal, associated data = header)
    body       = header + Avro(ciphertext) + Avro(personal_ct)
    signature  = Ed25519(producer's key, "sharehub-batch-v1" + batch size + Merkle root of the batch's bodies)
    wire       = body + batch_index + batch_size + batch_path + signature    (the Avro Envelope record)

A chunk's events are sealed by one :class:`EventSealer`, which lays out what they share once (the header's
fixed fields, the data key's cipher) and draws their random ids and nonces together; :func:`seal_unsigned`
is a chunk of one. One signature covers a whole batch of events (:func:`sign_batch`): each event carries
its inclusion path, so any single event still verifies on its own, and a verifier that has checked a
batch's root once skips the signature check for the rest of the batch (:class:`VerifiedRoots`).
:func:`seal` is a batch of one.

Opening runs the exact reverse in three steps, each with its own errors (:mod:`sharehub.errors`):
:func:`parse` (structure, no key), :func:`authenticate` (dataset, signature, owner: public keys only — the
audit stops here) and :func:`decrypt`. Destroying a subject's key (crypto-shredding) makes its personal
fields unreadable for ever while every signature and hash still verifies. Nothing else calls the cipher.

These are the primitives of :class:`sharehub.codec.DatasetCodec`, which runs them in order, a batch at a
time: the rest of the hub seals and opens through the codec (only the envelope's own tests, and the study
that times each step, call them one by one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharehub import merkle
from sharehub.avro import HEADER_SIZE, SINGLE_OBJECT_MARKER, RecordSchema, load_schema, split_single_object
from sharehub.errors import (
    DatasetMismatch,
    DecryptionFailed,
    MalformedEnvelope,
    NotOwner,
    PayloadInvalid,
    SignatureInvalid,
    UnknownSchema,
    UnsupportedEnvelopeVersion,
)
from sharehub.keys import SecretBytes, Signer

SIGNATURE_SIZE = 64
NONCE_SIZE = 12
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
NO_NONCE = bytes(NONCE_SIZE)
#: Larger values are refused before any parsing work is done.
MAX_ENVELOPE_SIZE = 1024 * 1024
EVENT_TYPES = ("UPSERTED", "CORRECTED", "ERASED")

ENVELOPE_SCHEMA = load_schema("envelope")
_HEADER_SCHEMA = RecordSchema.from_json(
    "envelope-header",
    {**ENVELOPE_SCHEMA.raw, "name": "EnvelopeHeader", "fields": ENVELOPE_SCHEMA.raw["fields"][:-6]},
)
_PROOF_SCHEMA = RecordSchema.from_json(
    "envelope-batch-proof",
    {
        "type": "record",
        "name": "BatchProof",
        "fields": [
            {"name": "batch_index", "type": "int"},
            {"name": "batch_size", "type": "int"},
            {
                "name": "batch_path",
                "type": {"type": "array", "items": {"type": "fixed", "name": "Sha256", "size": 32}},
            },
        ],
    },
)
_BATCH_DOMAIN = b"sharehub-batch-v1"
_PREFIX = SINGLE_OBJECT_MARKER + ENVELOPE_SCHEMA.fingerprint


class Header(NamedTuple):
    """Everything about an event that is readable without a decryption key. (Named tuples: immutable, and
    made by the thousand per second in the projection, where a frozen dataclass costs three times more.)"""

    producer: str
    dataset: str
    event_type: str
    event_id: str
    occurred_at: dt.datetime
    lane: int
    sequence: int
    prev_hash: bytes
    schema_fingerprint: bytes
    signer_key_id: str
    data_key_id: str
    subject_key_id: str
    nonce: bytes
    personal_nonce: bytes


@dataclass(frozen=True)
class Sealed:
    """An event sealed but not yet signed: header and ciphertexts, waiting for its batch's signature."""

    header: Header
    body: bytes
    ciphertext: bytes
    personal_ciphertext: bytes
    #: ``body[:header_end]`` is the header, the associated data of both ciphertexts.
    header_end: int

    @property
    def hash(self) -> bytes:
        """SHA-256 of the body: what the next event's ``prev_hash`` in its lane must hold."""
        return hashlib.sha256(self.body).digest()


class Envelope(NamedTuple):
    """A parsed envelope: structure checked, signature not yet."""

    header: Header
    ciphertext: bytes
    personal_ciphertext: bytes
    batch_index: int
    batch_size: int
    batch_path: list[bytes]
    signature: bytes
    raw: bytes
    #: ``raw[:header_end]`` is the header, the associated data of both ciphertexts.
    header_end: int
    #: ``raw[:body_end]`` is the body: header and ciphertexts, a leaf of the batch's Merkle tree.
    body_end: int

    @property
    def body(self) -> bytes:
        return self.raw[: self.body_end]

    @property
    def hash(self) -> bytes:
        """SHA-256 of the body: what the next event's ``prev_hash`` in its lane must hold."""
        return hashlib.sha256(self.body).digest()


class VerifiedRoots:
    """Batch roots whose signature was already checked, so the rest of a batch costs a hash, not a verify;
    and the Merkle steps taken to reach them (:class:`~sharehub.merkle.SubtreeMemo`), so the next event of
    a batch hashes up to where the one before it went, not to the root."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._seen: dict[tuple[str, str, bytes, bytes], None] = {}
        self.subtrees = merkle.SubtreeMemo()

    def __contains__(self, key: tuple[str, str, bytes, bytes]) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: tuple[str, str, bytes, bytes]) -> None:
        if len(self._seen) >= self._capacity:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = None


class OpenedEvent(NamedTuple):
    """A verified, decrypted, decoded event. ``record`` is None for an ERASED event."""

    envelope: Envelope
    schema: RecordSchema
    record: dict[str, Any] | None

    @property
    def header(self) -> Header:
        return self.envelope.header


class SignerDirectory(Protocol):
    """Who may sign what: the part of governance the envelope needs."""

    def signing_public_key(self, agency: str, key_id: str, at: dt.datetime) -> Ed25519PublicKey:
        """The agency's public key ``key_id`` if it was valid at ``at``; UnknownSigner otherwise."""

    def dataset_owner(self, dataset: str) -> str:
        """The owner agency of ``dataset``; UnknownReferenceError if there is no such dataset."""

    def dataset_schemas(self, dataset: str) -> Mapping[bytes, RecordSchema]:
        """Every schema version of ``dataset`` by fingerprint."""


class DataKeys(Protocol):
    """The keys :func:`decrypt` needs (the narrowest part of :class:`sharehub.codec.DatasetKeys`)."""

    def data_key(self, key_id: str) -> SecretBytes:
        """The data-encryption key with this id; UnknownDataKey if there is none."""

    def subject_key(self, key_id: str) -> SecretBytes:
        """A data subject's key; SubjectErased once destroyed."""


# --- sealing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainPosition:
    """Where an event goes in its producer's chain: lane (partition), sequence, and the previous hash."""

    lane: int
    sequence: int
    prev_hash: bytes


def seal(*, signing_key: Signer, **fields: Any) -> Envelope:
    """Seal and sign one event (a batch of one). See :func:`seal_unsigned` for the fields."""
    return sign_batch([seal_unsigned(signing_key_id=signing_key.key_id, **fields)], signing_key)[0]


def seal_unsigned(
    *,
    schema: RecordSchema,
    record: dict[str, Any] | None,
    producer: str,
    dataset: str,
    event_type: str,
    position: ChainPosition,
    signing_key_id: str,
    data_key_id: str,
    data_key: SecretBytes,
    subject_key_id: str = "",
    subject_key: SecretBytes | None = None,
    event_id: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> Sealed:
    """Encode and encrypt one record (a valid Avro datum for ``schema``; None for ERASED)."""
    sealer = EventSealer(
        schema=schema, producer=producer, dataset=dataset, event_type=event_type,
        signing_key_id=signing_key_id, data_key_id=data_key_id, data_key=data_key, expected=1,
    )  # fmt: skip
    return sealer.seal(record, position, subject_key_id, subject_key, event_id, occurred_at)


class EventSealer:
    """Seals the events of a chunk: one schema, producer, dataset, event type, signing key and data key.
    What every event shares is made once (the header's fixed fields in Avro, the data key's cipher), and
    the random event ids and nonces are drawn for many events at a time: the per-event work is encoding
    the record, encrypting it, and laying out the header's own fields."""

    def __init__(
        self,
        *,
        schema: RecordSchema,
        producer: str,
        dataset: str,
        event_type: str,
        signing_key_id: str,
        data_key_id: str,
        data_key: SecretBytes,
        expected: int = 256,
    ) -> None:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"event type {event_type!r} is not one of {EVENT_TYPES}")
        self._schema = schema
        self._personal = bool(schema.personal_fields)
        self._fixed = (producer, dataset, event_type, schema.fingerprint, signing_key_id, data_key_id)
        # The header in Avro is these runs of fixed fields, each event's own fields between them.
        self._before_id = _PREFIX + _avro_string(producer) + _avro_string(dataset)
        self._before_id += _varint(EVENT_TYPES.index(event_type))
        self._before_subject = schema.fingerprint + _avro_string(signing_key_id) + _avro_string(data_key_id)
        self._data_cipher = AESGCM(data_key.reveal())
        #: Random bytes for this many events are drawn at once (an event id and up to two nonces each).
        self._draw = max(1, expected) * (UUID_SIZE + 2 * NONCE_SIZE)
        self._random, self._taken = b"", 0

    def seal(
        self,
        record: dict[str, Any] | None,
        position: ChainPosition,
        subject_key_id: str = "",
        subject_key: SecretBytes | None = None,
        event_id: str | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> Sealed:
        """Encode and encrypt one record (a valid Avro datum for the schema; None for ERASED)."""
        event_type = self._fixed[2]
        if len(position.prev_hash) != HASH_SIZE:
            raise ValueError("prev_hash must be a 32-byte SHA-256")
        if (record is None) != (event_type == "ERASED"):
            raise ValueError("an ERASED event carries no record, every other event one")
        if self._personal and not subject_key_id:
            raise ValueError(f"{self._schema.name} has personal fields: a subject key is required")
        header = self._header(record, position, subject_key_id, event_id, occurred_at)
        header_bytes = self._header_bytes(header)
        shared, personal = b"", b""
        if record is not None:
            # fastavro writes a record's own fields and no others: the datum needs no copy per part.
            shared = self._schema.shared_part.encode_single_object(record)
            if self._personal:
                personal = self._schema.personal_part.encode_single_object(record)
        ciphertext = self._data_cipher.encrypt(header.nonce, shared, header_bytes)
        personal_ciphertext = b""
        if personal:
            if subject_key is None:
                raise ValueError("a record with personal fields needs its subject's key")
            personal_ciphertext = AESGCM(subject_key.reveal()).encrypt(
                header.personal_nonce, personal, header_bytes
            )
        body = header_bytes + _avro_bytes(ciphertext) + _avro_bytes(personal_ciphertext)
        if len(body) > MAX_ENVELOPE_SIZE // 2:
            raise PayloadInvalid(f"sealed event is {len(body)} bytes; the limit is {MAX_ENVELOPE_SIZE // 2}")
        return Sealed(header, body, ciphertext, personal_ciphertext, len(header_bytes))

    def _header(
        self,
        record: dict[str, Any] | None,
        position: ChainPosition,
        subject_key_id: str,
        event_id: str | None,
        occurred_at: dt.datetime | None,
    ) -> Header:
        producer, dataset, event_type, fingerprint, signing_key_id, data_key_id = self._fixed
        random_id = self._take(UUID_SIZE)
        return Header(
            producer=producer,
            dataset=dataset,
            event_type=event_type,
            event_id=event_id or uuid4_text(random_id),
            occurred_at=_in_utc(occurred_at) if occurred_at is not None else dt.datetime.now(dt.UTC),
            lane=position.lane,
            sequence=position.sequence,
            prev_hash=position.prev_hash,
            schema_fingerprint=fingerprint,
            signer_key_id=signing_key_id,
            data_key_id=data_key_id,
            subject_key_id=subject_key_id,
            nonce=self._take(NONCE_SIZE),
            personal_nonce=self._take(NONCE_SIZE) if self._personal and record is not None else NO_NONCE,
        )

    def _header_bytes(self, header: Header) -> bytes:
        """The header in Avro as the envelope schema lays it out (what fastavro writes, field by field)."""
        return b"".join(
            (
                self._before_id,
                _avro_string(header.event_id),
                _varint(_micros(header.occurred_at)),
                _varint(header.lane),
                _varint(header.sequence),
                header.prev_hash,
                self._before_subject,
                _avro_string(header.subject_key_id),
                header.nonce,
                header.personal_nonce,
            )
        )

    def _take(self, size: int) -> bytes:
        if self._taken + size > len(self._random):
            self._random, self._taken = secrets.token_bytes(self._draw), 0
        taken = self._random[self._taken : self._taken + size]
        self._taken += size
        return taken


UUID_SIZE = 16
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def uuid4_text(random16: bytes) -> str:
    """A random (version 4) UUID made of 16 random bytes, as ``str(uuid.uuid4())`` writes it."""
    raw = bytearray(random16)
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _micros(moment: dt.datetime) -> int:
    """An aware datetime as Avro's timestamp-micros (exact integer arithmetic, as fastavro does it)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _avro_string(text: str) -> bytes:
    return _avro_bytes(text.encode())


def _in_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as the envelope carries it (timestamp-micros, read back as aware UTC; naive is UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def sign_batch(events: list[Sealed], signing_key: Signer) -> list[Envelope]:
    """Sign a batch of sealed events with one signature over their Merkle root; returns the wire envelopes."""
    if not events:
        return []
    if any(e.header.signer_key_id != signing_key.key_id for e in events):
        raise ValueError("every event of a batch must name the key that signs it")
    root, paths = merkle.tree([merkle.leaf_hash(e.body) for e in events])
    signature = signing_key.sign(_batch_message(len(events), root))
    # Each envelope is made from the parts it was sealed from, as parse() would read them from its bytes
    # (parsing them again took a fifth of sealing's time).
    size = len(events)
    envelopes = []
    for index, event in enumerate(events):
        raw = event.body + _encode_proof(index, size, paths[index]) + signature
        envelopes.append(
            Envelope(
                event.header,
                event.ciphertext,
                event.personal_ciphertext,
                index,
                size,
                paths[index],
                signature,
                raw,
                event.header_end,
                len(event.body),
            )  # fmt: skip
        )
    return envelopes


def _batch_message(size: int, root: bytes) -> bytes:
    return _BATCH_DOMAIN + size.to_bytes(4, "big") + root


def pseudonym(routing_key: SecretBytes, record_key: str) -> bytes:
    """A record's pseudonym: keyed hash, stable per record, revealing nothing. Kafka key and subject ref."""
    return hmac.digest(routing_key.reveal(), record_key.encode(), "sha256")[:16]  # one-shot: no HMAC object


def lane_for(record_pseudonym: bytes, lanes: int) -> int:
    """The partition every event of one record goes to, so its changes stay in order."""
    return int.from_bytes(record_pseudonym[:8], "big") % lanes


# --- opening ------------------------------------------------------------------------------------


def parse(raw: bytes) -> Envelope:
    """Check the structure of ``raw`` and read its header. No key is needed."""
    if not isinstance(raw, bytes | bytearray):
        raise MalformedEnvelope("an envelope must be bytes")
    raw = bytes(raw)
    if len(raw) > MAX_ENVELOPE_SIZE:
        raise MalformedEnvelope(f"envelope is {len(raw)} bytes; the limit is {MAX_ENVELOPE_SIZE}")
    try:
        fp, body = split_single_object(raw)
    except ValueError as exc:
        raise MalformedEnvelope(str(exc)) from None
    if fp != ENVELOPE_SCHEMA.fingerprint:
        raise UnsupportedEnvelopeVersion(f"envelope schema fingerprint {fp.hex()} is not one this hub reads")
    try:
        fields = ENVELOPE_SCHEMA.decode(body)
    except Exception as exc:  # fastavro raises many types on garbage; all mean the same here
        raise MalformedEnvelope(f"envelope does not decode: {type(exc).__name__}") from None
    ciphertext: bytes = fields.pop("ciphertext")
    personal_ciphertext: bytes = fields.pop("personal_ciphertext")
    signature: bytes = fields.pop("signature")
    proof = {name: fields.pop(name) for name in ("batch_index", "batch_size", "batch_path")}
    if not 0 <= proof["batch_index"] < proof["batch_size"]:
        raise MalformedEnvelope("the batch proof names no place in its batch")
    proof_bytes = _encode_proof(proof["batch_index"], proof["batch_size"], proof["batch_path"])
    body_end = len(raw) - SIGNATURE_SIZE - len(proof_bytes)
    if raw[body_end : len(raw) - SIGNATURE_SIZE] != proof_bytes:
        raise MalformedEnvelope("the batch proof is not in canonical Avro encoding")
    header_end = body_end - _avro_bytes_size(personal_ciphertext) - _avro_bytes_size(ciphertext)
    if header_end <= HEADER_SIZE:
        raise MalformedEnvelope("envelope header is empty")
    if fields["occurred_at"].tzinfo is None:  # fastavro gives aware UTC datetimes; guard against a change
        fields["occurred_at"] = fields["occurred_at"].replace(tzinfo=dt.UTC)
    return Envelope(
        Header(**fields),
        ciphertext,
        personal_ciphertext,
        proof["batch_index"],
        proof["batch_size"],
        proof["batch_path"],
        signature,
        raw,
        header_end,
        body_end,
    )


def verify(envelope: Envelope, signers: SignerDirectory, roots: VerifiedRoots | None = None) -> None:
    """Check that the producer signed this exact body, through its batch's Merkle root (UnknownSigner,
    SignatureInvalid). With ``roots``, a batch root already verified is not verified again."""
    header = envelope.header
    public = signers.signing_public_key(header.producer, header.signer_key_id, header.occurred_at)
    root = merkle.root_from_path(
        merkle.leaf_hash(envelope.body),
        envelope.batch_index,
        envelope.batch_size,
        envelope.batch_path,
        None if roots is None else roots.subtrees,
    )
    if root is None:
        raise SignatureInvalid(f"the batch proof of {header.producer!r}'s event does not fit its batch")
    message = _batch_message(envelope.batch_size, root)
    key = (header.producer, header.signer_key_id, message, envelope.signature)
    if roots is not None and key in roots:
        return
    try:
        public.verify(envelope.signature, message)
    except InvalidSignature:
        raise SignatureInvalid(
            f"signature of {header.producer!r} (key {header.signer_key_id!r}) does not verify"
        ) from None
    if roots is not None:
        roots.add(key)


def authenticate(
    envelope: Envelope, *, topic_dataset: str, signers: SignerDirectory, roots: VerifiedRoots | None = None
) -> None:
    """The event is its dataset's, signed by a valid key of the dataset's owner. Public keys only."""
    header = envelope.header
    if header.dataset != topic_dataset:
        raise DatasetMismatch(
            f"event names dataset {header.dataset!r} but arrived on {topic_dataset!r}'s topic"
        )
    verify(envelope, signers, roots)
    owner = signers.dataset_owner(header.dataset)
    if header.producer != owner:
        raise NotOwner(f"{header.producer!r} signed an event of {header.dataset!r}, which {owner!r} owns")


def decrypt(envelope: Envelope, *, signers: SignerDirectory, keys: DataKeys) -> OpenedEvent:
    """Decrypt and decode an authenticated envelope. SubjectErased when the subject's key was destroyed."""
    header = envelope.header
    schema = signers.dataset_schemas(header.dataset).get(header.schema_fingerprint)
    if schema is None:
        raise UnknownSchema(
            f"schema fingerprint {header.schema_fingerprint.hex()} names no schema of {header.dataset!r}"
        )
    aad = envelope.raw[: envelope.header_end]
    shared = _decrypt(
        keys.data_key(header.data_key_id), header.nonce, envelope.ciphertext, aad, header.data_key_id
    )
    if header.event_type == "ERASED":
        if shared:
            raise PayloadInvalid("an ERASED event carries no record")
        return OpenedEvent(envelope, schema, None)
    record = _decode(schema.shared_part, shared)
    if schema.personal_fields:
        if not header.subject_key_id:
            raise PayloadInvalid(f"{schema.name} has personal fields but the event names no subject key")
        subject_key = keys.subject_key(header.subject_key_id)
        personal = _decrypt(
            subject_key, header.personal_nonce, envelope.personal_ciphertext, aad, header.subject_key_id
        )
        record.update(_decode(schema.personal_part, personal))
    return OpenedEvent(envelope, schema, {name: record[name] for name in schema.fields})


def open_envelope(
    raw: bytes,
    *,
    topic_dataset: str,
    signers: SignerDirectory,
    keys: DataKeys,
    roots: VerifiedRoots | None = None,
) -> OpenedEvent:
    """parse → authenticate → decrypt, each failure with its own error."""
    envelope = parse(raw)
    authenticate(envelope, topic_dataset=topic_dataset, signers=signers, roots=roots)
    return decrypt(envelope, signers=signers, keys=keys)


def _decrypt(key: SecretBytes, nonce: bytes, ciphertext: bytes, aad: bytes, key_id: str) -> bytes:
    try:
        return AESGCM(key.reveal()).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionFailed(f"payload does not decrypt under key {key_id!r}") from None


def _decode(part: RecordSchema, payload: bytes) -> dict[str, Any]:
    try:
        fp, body = split_single_object(payload)
    except ValueError as exc:
        raise PayloadInvalid(str(exc)) from None
    if fp != part.fingerprint:
        raise PayloadInvalid(f"payload was not written with {part.name}")
    try:
        record = part.decode(body)
    except Exception as exc:  # as in parse(): any decoding failure is one kind of error
        raise PayloadInvalid(f"payload does not decode as {part.name}: {type(exc).__name__}") from None
    non_finite = part.non_finite_field(record)
    if non_finite is not None:
        raise PayloadInvalid(f"field {non_finite!r} holds a NaN or an infinity, which no read model can hold")
    return record


def _encode_proof(index: int, size: int, path: list[bytes]) -> bytes:
    """Avro binary of (batch_index, batch_size, batch_path) as the envelope schema lays them out: two ints,
    then an array of 32-byte fixed values in one block (count, items, end marker)."""
    items = b"".join(path)
    return _varint(index) + _varint(size) + ((_varint(len(path)) + items + b"\x00") if path else b"\x00")


def _varint(n: int) -> bytes:
    """Avro's zig-zag varint of an int (long range)."""
    if 0 <= n < _SMALL:
        return _SMALL_VARINTS[n]  # every batch place, batch size, path length and ciphertext length
    return _encode_varint(n)


def _encode_varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = 4096
_SMALL_VARINTS = tuple(_encode_varint(n) for n in range(_SMALL))


def _avro_bytes(value: bytes) -> bytes:
    """Avro binary encoding of a ``bytes`` value: zig-zag varint length, then the bytes."""
    return _varint(len(value)) + value


def _avro_bytes_size(value: bytes) -> int:
    """How many bytes :func:`_avro_bytes` of ``value`` takes."""
    return len(_varint(len(value))) + len(value)
