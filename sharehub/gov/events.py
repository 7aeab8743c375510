"""Governance events: one signed Avro record for every change to central governance.

Schema: ``schemas/governance-event.avsc``. Every event has the same header (``sequence``, ``prev_hash``,
``occurred_at``, ``actor``, ``signer_key_id``, and since the release with seals the acting party's
``act_seal``, see :mod:`sharehub.gov.acts`) and a ``payload`` that is an Avro union of one record per
event type: the union branch *is* the tag, so a reader cannot mistake an ``AgreementSuspended`` for an
``AgreementRevoked`` even though both carry the same fields (a separate ``type`` enum could disagree with
the payload; a union branch cannot).

Wire form, like :mod:`sharehub.checkpoints`: single-object Avro (``C3 01`` + fingerprint of the release that
wrote it, kept in ``schemas/history/governance-event/``, + body) followed by
a 64-byte Ed25519 signature over every byte before it. This module seals and parses; checking the signature
and the chain needs the state so far and lives in :mod:`sharehub.gov.verify`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import fastavro

from sharehub.avro import SINGLE_OBJECT_MARKER, load_schema, released_schemas, split_single_object
from sharehub.errors import MalformedEnvelope, RequestInvalid
from sharehub.keys import SigningKey

EVENT_SCHEMA = load_schema("governance-event")
#: Every release of the governance event schema by fingerprint (``schemas/history/governance-event/``): the
#: log keeps events each release wrote, and they are read into today's form.
WRITER_SCHEMAS = released_schemas("governance-event")
NAMESPACE = "vn.sharehub.governance.v1"
SIGNATURE_SIZE = 64
HASH_SIZE = 32
#: ``prev_hash`` of the first event of the log.
ZERO_HASH = bytes(HASH_SIZE)
#: Governance events are small; anything larger is refused before parsing.
MAX_EVENT_SIZE = 1024 * 1024
#: The releases whose events carry the acting party's seal (``act_seal``, :mod:`sharehub.gov.acts`); an
#: event of any other release was written before seals existed.
SEALED_RELEASES = frozenset(
    fp for fp, schema in WRITER_SCHEMAS.items() if any(f["name"] == "act_seal" for f in schema.raw["fields"])
)


# --- payloads, one per event type (field names and order as in the Avro schema) ------------------------


@dataclass(frozen=True)
class AgencyRegistered:
    id: str
    name: str
    kind: str
    parent: str | None
    clearance: str


@dataclass(frozen=True)
class SigningKeyAdded:
    agency: str
    key_id: str
    public_key: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    replaces: str | None = None


@dataclass(frozen=True)
class SigningKeyRevoked:
    agency: str
    key_id: str
    reason: str
    effective_at: dt.datetime


@dataclass(frozen=True)
class DatasetDeclared:
    id: str
    owner: str
    description: str
    classification: str
    retention_ms: int
    key_field: str
    partitions: int
    quality_rules: tuple[str, ...] = ()
    #: Ids of the vocabulary's purposes the dataset may be shared for; empty: any.
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchemaRegistered:
    dataset: str
    version: int
    schema: str
    fingerprint: str


@dataclass(frozen=True)
class AgreementProposed:
    id: str
    consumer: str
    dataset: str
    fields: tuple[str, ...]
    row_filter: str | None
    purpose: str
    legal_basis: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    #: Ids of the vocabulary's purposes (then ``legal_basis`` is a legal basis's id); empty: free text.
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgreementConsented:
    id: str
    by: str


@dataclass(frozen=True)
class AgreementApproved:
    id: str
    approver: str


@dataclass(frozen=True)
class AgreementSuspended:
    id: str
    by: str
    reason: str


@dataclass(frozen=True)
class AgreementResumed:
    id: str
    by: str
    reason: str


@dataclass(frozen=True)
class AgreementRevoked:
    id: str
    by: str
    reason: str


@dataclass(frozen=True)
class CredentialIssued:
    consumer: str
    sha256: str
    #: None: no expiry (only credentials issued before lifetimes existed; see sharehub.gov.credentials).
    expires_at: dt.datetime | None = None
    #: Rotation: the id of the credential this one replaces, refused from ``replaced_until`` on.
    replaces: str | None = None
    replaced_until: dt.datetime | None = None


@dataclass(frozen=True)
class CredentialRevoked:
    consumer: str
    credential_id: str
    reason: str
    effective_at: dt.datetime


@dataclass(frozen=True)
class PurposeDefined:
    id: str
    label_vi: str
    label_en: str


@dataclass(frozen=True)
class LegalBasisDefined:
    id: str
    label_vi: str
    label_en: str
    reference: str


@dataclass(frozen=True)
class PurposeRetired:
    id: str
    reason: str


@dataclass(frozen=True)
class LegalBasisRetired:
    id: str
    reason: str


@dataclass(frozen=True)
class DatasetPurposesChanged:
    """The purposes a declared dataset may be shared for, from now on (ids of the vocabulary; empty: any)."""

    dataset: str
    purposes: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class DatasetRetentionChanged:
    """How long a declared dataset's topic keeps each event, from now on (milliseconds; -1: for ever)."""

    dataset: str
    retention_ms: int
    reason: str


Payload: TypeAlias = (
    AgencyRegistered
    | SigningKeyAdded
    | SigningKeyRevoked
    | DatasetDeclared
    | SchemaRegistered
    | AgreementProposed
    | AgreementConsented
    | AgreementApproved
    | AgreementSuspended
    | AgreementResumed
    | AgreementRevoked
    | CredentialIssued
    | CredentialRevoked
    | PurposeDefined
    | LegalBasisDefined
    | PurposeRetired
    | LegalBasisRetired
    | DatasetPurposesChanged
    | DatasetRetentionChanged
)
#: The events of the purpose and legal-basis vocabulary (:mod:`sharehub.gov.vocabulary`).
VocabularyChange: TypeAlias = PurposeDefined | LegalBasisDefined | PurposeRetired | LegalBasisRetired
AgreementChange: TypeAlias = (
    AgreementProposed
    | AgreementConsented
    | AgreementApproved
    | AgreementSuspended
    | AgreementResumed
    | AgreementRevoked
)
PAYLOAD_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        AgencyRegistered,
        SigningKeyAdded,
        SigningKeyRevoked,
        DatasetDeclared,
        SchemaRegistered,
        AgreementProposed,
        AgreementConsented,
        AgreementApproved,
        AgreementSuspended,
        AgreementResumed,
        AgreementRevoked,
        CredentialIssued,
        CredentialRevoked,
        PurposeDefined,
        LegalBasisDefined,
        PurposeRetired,
        LegalBasisRetired,
        DatasetPurposesChanged,
        DatasetRetentionChanged,
    )
}


def type_name(payload: Payload) -> str:
    """The event type, e.g. ``AgreementApproved``."""
    return type(payload).__name__


@dataclass(frozen=True)
class ActSeal:
    """A party's signature of one act: by which of its keys, when it says it signed, and the signature."""

    key_id: str
    signed_at: dt.datetime
    signature: bytes

    def json(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "signed_at": self.signed_at.isoformat(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, value: Any) -> ActSeal:
        """A seal from its JSON form (``act_seal`` of a request); RequestInvalid naming what is wrong."""
        if not isinstance(value, dict) or set(value) != {"key_id", "signed_at", "signature"}:
            raise RequestInvalid("act_seal: an object with exactly key_id, signed_at and signature")
        try:
            signed_at = dt.datetime.fromisoformat(str(value["signed_at"]))
            signature = bytes.fromhex(str(value["signature"]))
        except ValueError:
            raise RequestInvalid("act_seal: signed_at must be ISO 8601, signature hex") from None
        if signed_at.tzinfo is None:
            raise RequestInvalid("act_seal: signed_at needs its time zone")
        if len(signature) != SIGNATURE_SIZE or not isinstance(value["key_id"], str):
            raise RequestInvalid("act_seal: key_id a string, signature 64 bytes of hex (Ed25519)")
        return cls(value["key_id"], signed_at.astimezone(dt.UTC), signature)

    def datum(self) -> dict[str, Any]:
        """The Avro form of the event's ``act_seal`` field."""
        return {"key_id": self.key_id, "signed_at": self.signed_at, "signature": self.signature}


# --- the signed event ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GovernanceEvent:
    """One event as read from (or written to) the log: its decoded fields and its exact bytes."""

    sequence: int
    prev_hash: bytes
    occurred_at: dt.datetime
    actor: str
    signer_key_id: str
    payload: Payload
    body: bytes
    signature: bytes
    #: The acting party's own seal of the act; None for the operator's acts and on legacy events.
    act_seal: ActSeal | None = None

    @property
    def type(self) -> str:
        return type_name(self.payload)

    @property
    def hash(self) -> bytes:
        """SHA-256 of the signed bytes: what the next event's ``prev_hash`` must hold."""
        return hashlib.sha256(self.body).digest()

    @property
    def writer(self) -> bytes:
        """The fingerprint of the schema release that wrote the event."""
        return split_single_object(self.body)[0]

    @property
    def raw(self) -> bytes:
        """The wire form: body + signature."""
        return self.body + self.signature

    def describe(self) -> str:
        return f"governance event {self.sequence} ({self.type})"


def seal(
    key: SigningKey,
    *,
    sequence: int,
    prev_hash: bytes,
    occurred_at: dt.datetime,
    actor: str,
    payload: Payload,
    act_seal: ActSeal | None = None,
) -> GovernanceEvent:
    """Encode and sign an event (the operator's countersignature of ``act_seal``, the party's own, if
    any). The result is re-parsed from its own bytes, so the event a service applies is exactly the one a
    reader of the log will see (same microsecond timestamps, same tuples)."""
    datum = {
        "sequence": sequence,
        "prev_hash": prev_hash,
        "occurred_at": occurred_at,
        "actor": actor,
        "signer_key_id": key.key_id,
        "payload": (f"{NAMESPACE}.{type_name(payload)}", _payload_datum(payload)),
        "act_seal": act_seal.datum() if act_seal is not None else None,
    }
    out = io.BytesIO()
    fastavro.schemaless_writer(out, EVENT_SCHEMA.parsed, datum)
    body = SINGLE_OBJECT_MARKER + EVENT_SCHEMA.fingerprint + out.getvalue()
    return parse(body + key.sign(body))


def parse(raw: bytes) -> GovernanceEvent:
    """Decode the wire form without checking the signature; MalformedEnvelope for anything else."""
    if len(raw) > MAX_EVENT_SIZE:
        raise MalformedEnvelope(f"a governance event of {len(raw):,} bytes is larger than {MAX_EVENT_SIZE:,}")
    body, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    try:
        fp, avro = split_single_object(body)
        writer = WRITER_SCHEMAS.get(fp)
        if writer is None:
            raise ValueError(f"schema fingerprint {fp.hex()} is not one of the governance event's releases")
        reader = None if writer is EVENT_SCHEMA else EVENT_SCHEMA.parsed
        buf = io.BytesIO(avro)
        datum = cast(
            dict[str, Any],
            fastavro.schemaless_reader(buf, writer.parsed, reader, return_record_name=True),
        )
        if buf.tell() != len(avro):
            raise ValueError(f"{len(avro) - buf.tell()} trailing bytes")
        name, fields = datum["payload"]
        payload = _payload_from_datum(name.rsplit(".", 1)[-1], fields)
        act_seal = _seal_from_datum(datum.get("act_seal"))
    except Exception as exc:  # garbage of any kind is one finding
        raise MalformedEnvelope(f"not a sharehub governance event: {exc}") from None
    return GovernanceEvent(
        sequence=datum["sequence"],
        prev_hash=datum["prev_hash"],
        occurred_at=datum["occurred_at"],
        actor=datum["actor"],
        signer_key_id=datum["signer_key_id"],
        payload=payload,
        body=body,
        signature=signature,
        act_seal=act_seal,
    )


def _seal_from_datum(datum: Any) -> ActSeal | None:
    if datum is None:
        return None
    _, fields = datum  # a union's record comes with its name
    return ActSeal(fields["key_id"], fields["signed_at"], fields["signature"])


def _payload_datum(payload: Payload) -> dict[str, Any]:
    # Avro arrays are tuples in the (frozen) payloads, lists on the wire.
    values = {f.name: getattr(payload, f.name) for f in dataclasses.fields(payload)}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


def _payload_from_datum(name: str, fields: dict[str, Any]) -> Payload:
    cls = PAYLOAD_TYPES[name]
    return cast(Payload, cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}))
