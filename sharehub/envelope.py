"""The envelope: the one place that seals records into signed, encrypted events and opens them again.

Sealing runs encode → encrypt → sign::

    payload    = single-object Avro of the record under its dataset schema (C3 01 + fingerprint + body)
    header     = C3 01 + envelope fingerprint + Avro of the header fields (producer ... nonce)
    ciphertext = AES-256-GCM(data key, nonce, payload, associated data = header)
    signature  = Ed25519(producer's key, header + Avro(ciphertext))
    wire       = header + Avro(ciphertext) + signature          (= the Avro Envelope record, single-object)

Opening runs the exact reverse, and every step has its own error (see :mod:`sharehub.errors`). The
signature covers every byte before it, so integrity can be checked by anyone holding the producer's
public key, without any decryption key (that is what the audit does). Nothing else calls the cipher.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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
from sharehub.keys import SecretBytes, SigningKey

SIGNATURE_SIZE = 64
NONCE_SIZE = 12
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
#: Larger values are refused before any parsing work is done.
MAX_ENVELOPE_SIZE = 1024 * 1024
EVENT_TYPES = ("UPSERTED", "CORRECTED", "DELETED")

ENVELOPE_SCHEMA = load_schema("envelope")
_HEADER_SCHEMA = RecordSchema.from_json(
    "envelope-header",
    {**ENVELOPE_SCHEMA.raw, "name": "EnvelopeHeader", "fields": ENVELOPE_SCHEMA.raw["fields"][:-2]},
)
_PREFIX = SINGLE_OBJECT_MARKER + ENVELOPE_SCHEMA.fingerprint


@dataclass(frozen=True)
class Header:
    """Everything about an event that is readable without a decryption key."""

    producer: str
    dataset: str
    event_type: str
    event_id: str
    occurred_at: dt.datetime
    sequence: int
    prev_hash: bytes
    schema_fingerprint: bytes
    signer_key_id: str
    data_key_id: str
    nonce: bytes


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: structure checked, signature not yet."""

    header: Header
    ciphertext: bytes
    signature: bytes
    raw: bytes
    #: ``raw[:header_end]`` is the header, the associated data of the encryption.
    header_end: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:-SIGNATURE_SIZE]

    @property
    def hash(self) -> bytes:
        """SHA-256 of the whole envelope: what the next event's ``prev_hash`` must hold."""
        return hashlib.sha256(self.raw).digest()


@dataclass(frozen=True)
class OpenedEvent:
    """A verified, decrypted, decoded event."""

    envelope: Envelope
    schema: RecordSchema
    record: dict[str, Any]

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
    def data_key(self, key_id: str) -> SecretBytes:
        """The data-encryption key with this id; UnknownDataKey if there is none."""


# --- sealing ------------------------------------------------------------------------------------


def seal(
    *,
    schema: RecordSchema,
    record: dict[str, Any],
    producer: str,
    dataset: str,
    event_type: str,
    sequence: int,
    prev_hash: bytes,
    signing_key: SigningKey,
    data_key_id: str,
    data_key: SecretBytes,
    event_id: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> Envelope:
    """Encode, encrypt and sign one record. ``record`` must already be a valid Avro datum for ``schema``."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type {event_type!r} is not one of {EVENT_TYPES}")
    if len(prev_hash) != HASH_SIZE:
        raise ValueError("prev_hash must be a 32-byte SHA-256")
    header = Header(
        producer=producer,
        dataset=dataset,
        event_type=event_type,
        event_id=event_id or str(uuid.uuid4()),
        occurred_at=occurred_at or dt.datetime.now(dt.UTC),
        sequence=sequence,
        prev_hash=prev_hash,
        schema_fingerprint=schema.fingerprint,
        signer_key_id=signing_key.key_id,
        data_key_id=data_key_id,
        nonce=secrets.token_bytes(NONCE_SIZE),
    )
    header_bytes = _PREFIX + _HEADER_SCHEMA.encode(header.__dict__)
    payload = schema.encode_single_object(record)
    ciphertext = AESGCM(data_key.reveal()).encrypt(header.nonce, payload, header_bytes)
    unsigned = header_bytes + _avro_bytes(ciphertext)
    signature = signing_key.sign(unsigned)
    raw = unsigned + signature
    if len(raw) > MAX_ENVELOPE_SIZE:
        raise PayloadInvalid(f"sealed event is {len(raw)} bytes; the limit is {MAX_ENVELOPE_SIZE}")
    return Envelope(header, ciphertext, signature, raw, len(header_bytes))


def routing_key(key: SecretBytes, record_key: str) -> bytes:
    """Kafka message key for a record: keyed-hash pseudonym, stable per record, revealing nothing."""
    return hmac.new(key.reveal(), record_key.encode(), hashlib.sha256).digest()[:16]


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
    signature: bytes = fields.pop("signature")
    header_end = len(raw) - SIGNATURE_SIZE - len(_avro_bytes(ciphertext))
    if header_end <= HEADER_SIZE:
        raise MalformedEnvelope("envelope header is empty")
    occurred_at = fields["occurred_at"]
    if occurred_at.tzinfo is None:  # fastavro gives aware UTC datetimes; guard against a future change
        fields["occurred_at"] = occurred_at.replace(tzinfo=dt.UTC)
    return Envelope(Header(**fields), ciphertext, signature, raw, header_end)


def verify(envelope: Envelope, signers: SignerDirectory) -> None:
    """Check the producer's signature over the exact bytes received (UnknownSigner, SignatureInvalid)."""
    header = envelope.header
    public = signers.signing_public_key(header.producer, header.signer_key_id, header.occurred_at)
    try:
        public.verify(envelope.signature, envelope.signed_bytes)
    except InvalidSignature:
        raise SignatureInvalid(
            f"signature of {header.producer!r} (key {header.signer_key_id!r}) does not verify"
        ) from None


def open_envelope(raw: bytes, *, topic_dataset: str, signers: SignerDirectory, keys: DataKeys) -> OpenedEvent:
    """parse → check dataset and owner → verify → decrypt → decode, each failure with its own error."""
    envelope = parse(raw)
    header = envelope.header
    if header.dataset != topic_dataset:
        raise DatasetMismatch(
            f"event names dataset {header.dataset!r} but arrived on {topic_dataset!r}'s topic"
        )
    verify(envelope, signers)
    owner = signers.dataset_owner(header.dataset)
    if header.producer != owner:
        raise NotOwner(f"{header.producer!r} signed an event of {header.dataset!r}, which {owner!r} owns")
    schema = signers.dataset_schemas(header.dataset).get(header.schema_fingerprint)
    if schema is None:
        raise UnknownSchema(
            f"schema fingerprint {header.schema_fingerprint.hex()} names no schema of {header.dataset!r}"
        )
    key = keys.data_key(header.data_key_id)
    try:
        payload = AESGCM(key.reveal()).decrypt(header.nonce, envelope.ciphertext, raw[: envelope.header_end])
    except InvalidTag:
        raise DecryptionFailed(f"payload does not decrypt under key {header.data_key_id!r}") from None
    try:
        fp, body = split_single_object(payload)
    except ValueError as exc:
        raise PayloadInvalid(str(exc)) from None
    if fp != header.schema_fingerprint:
        raise PayloadInvalid("payload fingerprint differs from the header's")
    try:
        record = schema.decode(body)
    except Exception as exc:  # as in parse(): any decoding failure is one kind of error
        raise PayloadInvalid(f"payload does not decode as {schema.name}: {type(exc).__name__}") from None
    return OpenedEvent(envelope, schema, record)


def _avro_bytes(value: bytes) -> bytes:
    """Avro binary encoding of a ``bytes`` value: zig-zag varint length, then the bytes."""
    n = len(value) << 1  # zig-zag of a non-negative length
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + value
