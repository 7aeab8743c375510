"""Is a governance event authentic, and does it continue the log?

Authenticity: every event is signed by a key of the hub operator. The reader pins the operator's first key
(or keys) out of band as :class:`Trust` anchors, because the very first events, which register the operator
and its key, cannot vouch for themselves. Once the log holds a key of the operator agency, that key's window
on the log decides (so an operator key can be rotated, or revoked, by a signed event like any other key);
an anchor counts only for key ids the log does not know.

Continuity: the log is one hash chain. Each event's sequence is the previous one's plus one and its
``prev_hash`` the SHA-256 of the previous event's signed bytes. A gap, a replayed or duplicated event and a
broken link (fork) are each named by a :class:`~sharehub.errors.ChainViolation` reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharehub.errors import ChainViolation, SignatureInvalid, UnknownSigner
from sharehub.gov.events import GovernanceEvent
from sharehub.keys import SigningKey

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

# Stable reason codes, the same as the data lanes' (sharehub.chain), without importing the envelope.
GAP = "chain_gap"
REPLAYED = "replayed_sequence"
DUPLICATE = "duplicate"
FORK = "chain_fork"


@dataclass(frozen=True)
class Trust:
    """Who may sign governance events: the operator agency, and its pinned public keys by key id."""

    operator: str
    anchors: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @classmethod
    def of(cls, operator: str, key: SigningKey) -> Trust:
        """Trust pinned on the public half of ``key`` (what a service that holds the key knows)."""
        return cls(operator, {key.key_id: key.private.public_key()})


def verify(state: GovState, event: GovernanceEvent, trust: Trust) -> None:
    """Raise UnknownSigner, SignatureInvalid or ChainViolation unless ``event`` may follow ``state``."""
    key = operator_key(state, trust, event.signer_key_id, event.occurred_at)
    try:
        key.verify(event.signature, event.body)
    except InvalidSignature:
        raise SignatureInvalid(f"{event.describe()}: the operator's signature does not verify") from None
    _continues(state, event)


def operator_key(state: GovState, trust: Trust, key_id: str, at: dt.datetime) -> Ed25519PublicKey:
    operator = state.agencies_.get(trust.operator)
    known = operator.key(key_id) if operator is not None else None
    if known is not None:
        if not known.valid_at(at):
            raise UnknownSigner(f"operator key {key_id!r} was not valid at {at.isoformat()}")
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(known.public_key))
    anchor = trust.anchors.get(key_id)
    if anchor is None:
        raise UnknownSigner(f"{key_id!r} is not a key of the operator {trust.operator!r}")
    return anchor


def _continues(state: GovState, event: GovernanceEvent) -> None:
    expected = state.head_sequence + 1
    if event.sequence == expected:
        if event.prev_hash != state.head_hash:
            raise ChainViolation(FORK, f"{event.describe()} does not link to event {state.head_sequence}")
        return
    if event.sequence > expected:
        raise ChainViolation(
            GAP, f"{event.describe()} follows event {state.head_sequence}; {expected} is missing"
        )
    if event.sequence == state.head_sequence and event.hash == state.head_hash:
        raise ChainViolation(DUPLICATE, f"{event.describe()} appears twice")
    raise ChainViolation(REPLAYED, f"{event.describe()} comes again after event {state.head_sequence}")
