"""Access records: the one place that seals the access log's records and opens them again.

A record (``schemas/access-record.avsc``, single-object encoding) is followed by the Ed25519 signature of
the operator key over its bytes, like a checkpoint. Each API instance writes its records as one hash chain,
its *lane*: ``instance``, ``sequence`` (1, 2, 3…) and ``prev_hash`` (SHA-256 of the instance's previous
record, body and signature; zeros for the first), judged as the dataset chains are (:mod:`sharehub.chain`).
So whoever holds the governance log's public keys (the auditor) can tell a deleted, altered, reordered or
duplicated record from an honest log.

A chain alone cannot show that its last records were cut off. So each instance also states its lane's head
(sequence and hash) now and then, signed with the same operator key, in the form of the dataset lanes'
checkpoints (:mod:`sharehub.checkpoints`): ``producer`` the operator, ``dataset`` ``access-log/<instance>``
(a ``/`` is in no dataset id, so no dataset lane's checkpoint reads as one), ``lane`` 0. They go to a topic of
their own (:attr:`sharehub.gov.state.GovState.access_checkpoint_topic`).

Records written before they were signed (``schemas/access-event.avsc``) still open: as *legacy* records,
unsigned and in no chain, which the audit counts apart and never reports as tampering.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharehub.avro import load_schema, split_single_object
from sharehub.chain import ChainHead, Link
from sharehub.checkpoints import Checkpoint, open_checkpoint_under, seal_checkpoint
from sharehub.envelope import SIGNATURE_SIZE
from sharehub.errors import MalformedEnvelope, SignatureInvalid
from sharehub.keys import Signer

ACCESS_SCHEMA = load_schema("access-record")
#: The unsigned records of before (read, never written).
LEGACY_SCHEMA = load_schema("access-event")

#: The public key of ``key_id`` of the operator, if it was valid at a time (UnknownSigner otherwise).
OperatorKeys = Callable[[str, dt.datetime], Ed25519PublicKey]
#: What a checkpoint's ``dataset`` starts with when it states an access-log lane; the instance follows.
ACCESS_LANE = "access-log/"


class OpenedAccess(NamedTuple):
    """An access record's fields, and its link in its instance's chain (None for a legacy record)."""

    fields: dict[str, Any]
    link: Link | None

    @property
    def legacy(self) -> bool:
        return self.link is None


def seal_access(
    fields: Mapping[str, Any], *, instance: str, head: ChainHead, signer: Signer
) -> tuple[bytes, ChainHead]:
    """The record of ``fields`` as the next of ``instance``'s chain (whose head is ``head``), signed; and
    the chain's new head."""
    body = ACCESS_SCHEMA.encode_single_object(
        {
            **fields,
            "instance": instance,
            "sequence": head.sequence + 1,
            "prev_hash": head.hash,
            "signer_key_id": signer.key_id,
        }
    )
    raw = body + signer.sign(body)
    return raw, ChainHead(head.sequence + 1, record_hash(raw))


def record_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def open_access(raw: bytes, operator_keys: OperatorKeys | None = None) -> OpenedAccess:
    """The record's fields and link; with ``operator_keys``, its signature verified too. MalformedEnvelope
    for anything that is not an access record; UnknownSigner or SignatureInvalid for one the operator did
    not sign."""
    try:
        fp, avro = split_single_object(raw)
        if fp == LEGACY_SCHEMA.fingerprint:
            return OpenedAccess(LEGACY_SCHEMA.decode(avro), None)
        if fp != ACCESS_SCHEMA.fingerprint or len(raw) <= SIGNATURE_SIZE:
            raise ValueError("not a sharehub access record")
        body, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
        fields = ACCESS_SCHEMA.decode(split_single_object(body)[1])
    except Exception as exc:  # garbage of any kind is one finding
        raise MalformedEnvelope(f"not a sharehub access record: {exc}") from None
    if operator_keys is not None:
        key = operator_keys(fields["signer_key_id"], fields["at"])
        try:
            key.verify(signature, body)
        except InvalidSignature:
            raise SignatureInvalid(
                f"access record {fields['request_id']} does not verify under {fields['signer_key_id']!r}"
            ) from None
    return OpenedAccess(fields, Link(fields["sequence"], fields["prev_hash"], record_hash(raw)))


def seal_lane_checkpoint(signer: Signer, operator: str, instance: str, head: ChainHead) -> bytes:
    """The signed statement that ``instance``'s lane of the access log stands at ``head``."""
    return seal_checkpoint(signer, operator, ACCESS_LANE + instance, 0, head)


def open_lane_checkpoint(raw: bytes, operator_keys: OperatorKeys) -> tuple[str, Checkpoint]:
    """The instance an access-log lane's checkpoint is of, and the checkpoint, verified under an operator
    key valid when it was signed. MalformedEnvelope for anything else (a dataset lane's checkpoint too);
    UnknownSigner or SignatureInvalid for one the operator did not sign."""
    checkpoint = open_checkpoint_under(raw, lambda c: operator_keys(c.signer_key_id, c.signed_at))
    instance = checkpoint.dataset.removeprefix(ACCESS_LANE)
    if instance == checkpoint.dataset or not instance or checkpoint.lane != 0:
        raise MalformedEnvelope(
            f"not an access-log lane's checkpoint: of {checkpoint.dataset!r} lane {checkpoint.lane}"
        )
    return instance, checkpoint
