"""Signed checkpoints: a producer's statement of its chain head (sequence, hash) in one lane, at a time.

They go to a topic of their own. An auditor who finds a checkpoint for sequence N but no event N in the
lane knows events were cut off; one whose hash differs knows the lane was rewritten. The query API states the
heads of its access-log lanes in the same form (:mod:`sharehub.access_records`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharehub.avro import load_schema, split_single_object
from sharehub.chain import ChainHead
from sharehub.envelope import SIGNATURE_SIZE, SignerDirectory
from sharehub.errors import MalformedEnvelope, SignatureInvalid
from sharehub.keys import Signer

CHECKPOINT_SCHEMA = load_schema("checkpoint")


@dataclass(frozen=True)
class Checkpoint:
    producer: str
    dataset: str
    lane: int
    sequence: int
    head_hash: bytes
    signed_at: dt.datetime
    signer_key_id: str


def seal_checkpoint(signing_key: Signer, producer: str, dataset: str, lane: int, head: ChainHead) -> bytes:
    body = CHECKPOINT_SCHEMA.encode_single_object(
        {
            "producer": producer,
            "dataset": dataset,
            "lane": lane,
            "sequence": head.sequence,
            "head_hash": head.hash,
            "signed_at": dt.datetime.now(dt.UTC),
            "signer_key_id": signing_key.key_id,
        }
    )
    return body + signing_key.sign(body)


#: The public key that must verify a checkpoint, told what the checkpoint claims (UnknownSigner if none).
CheckpointKey = Callable[[Checkpoint], Ed25519PublicKey]


def open_checkpoint(raw: bytes, signers: SignerDirectory) -> Checkpoint:
    """Parse and verify a checkpoint under a key of its producer; MalformedEnvelope, UnknownSigner or
    SignatureInvalid otherwise."""
    return open_checkpoint_under(
        raw, lambda c: signers.signing_public_key(c.producer, c.signer_key_id, c.signed_at)
    )


def open_checkpoint_under(raw: bytes, key_of: CheckpointKey) -> Checkpoint:
    """Parse a checkpoint and verify it under the key ``key_of`` names for it; MalformedEnvelope,
    UnknownSigner or SignatureInvalid otherwise."""
    body, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    try:
        fp, avro = split_single_object(body)
        if fp != CHECKPOINT_SCHEMA.fingerprint:
            raise ValueError("not a checkpoint")
        fields = CHECKPOINT_SCHEMA.decode(avro)
    except Exception as exc:  # garbage of any kind is one finding
        raise MalformedEnvelope(f"not a sharehub checkpoint: {exc}") from None
    checkpoint = Checkpoint(**fields)
    key = key_of(checkpoint)
    try:
        key.verify(signature, body)
    except InvalidSignature:
        raise SignatureInvalid(f"checkpoint of {checkpoint.producer!r} does not verify") from None
    return checkpoint
