"""Act seals: every party signs its own governance act, and the operator countersigns the event.

The operator's signature over a governance event proves that governance took it; it cannot prove that the
owner consented, that the consumer proposed or that an approver approved. So an event whose ``actor`` is
not the operator carries an :class:`ActSeal`: the actor's own Ed25519 signature, by one of its keys valid
at the ``signed_at`` the actor states, over the canonical :func:`statement` of the act:

- a domain-separation line (a seal can be nothing else: not an event, not a key request, not a batch);
- the hub (its topic prefix), so a seal made for one hub is worthless on another;
- the actor, the event type and the payload, as canonical JSON (:func:`payload_json`);
- ``signed_at`` (no later than the event's ``occurred_at``, at most :data:`SEAL_WINDOW` before it);
- for a step of an agreement (consent, approve, suspend, resume, revoke), the hash of the governance event
  that set the agreement's current terms, so a consent given to one set of terms cannot be carried over
  to others.

Signer and verifier build the statement with the same function. The operator's own acts need no seal
(its signature over the event is the act's). An agency in the hub's custody (:mod:`sharehub.gov.custody`)
is sealed by the hub with its custody key, whose id (``<agency>/custody/<n>``) says so.

:func:`check` is called twice, like :func:`sharehub.gov.rules.check`: by the service before it writes an
event, and by the fold for every event it reads. Events written by a release of the schema before seals
existed are taken as the operator attests them (:func:`is_legacy`); one written by such a release after a
sealed release's event on the same log is a downgrade and is not applied.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharehub.errors import NotPermitted
from sharehub.gov import events as ev
from sharehub.gov.custody import sealed_in_custody
from sharehub.gov.events import ActSeal
from sharehub.keys import LocalKeyStore, Signer, SigningKey

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

#: Domain separation: these bytes start every act statement and nothing else sharehub signs.
SIGNED_AS = b"sharehub governance act v1\n"
#: How long before the hub takes an act its party's seal may have been made (``signed_at`` no older than
#: ``occurred_at - SEAL_WINDOW``): a seal is a fresh statement, not a standing permission to be replayed.
SEAL_WINDOW = dt.timedelta(minutes=15)

# Stable reason codes of an act the fold does not apply (and of the service's refusals).
UNSIGNED = "act_unsigned"
WRONG_PARTY = "act_wrong_party"
KEY_NOT_VALID = "act_key_not_valid"
STALE = "act_stale"
SIGNATURE_INVALID = "act_signature_invalid"
DOWNGRADE = "act_downgrade"
REASONS = (UNSIGNED, WRONG_PARTY, KEY_NOT_VALID, STALE, SIGNATURE_INVALID, DOWNGRADE)

#: The steps of an existing agreement: their statement names the event that set its terms.
AGREEMENT_STEPS = (
    ev.AgreementConsented,
    ev.AgreementApproved,
    ev.AgreementSuspended,
    ev.AgreementResumed,
    ev.AgreementRevoked,
)


class ActSealRefused(NotPermitted):
    """A governance act without a valid seal of the party that must sign it; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- the statement ---------------------------------------------------------------------------------------


def payload_json(payload: ev.Payload) -> dict[str, Any]:
    """The payload as canonical JSON values: times in UTC ISO 8601 with microseconds (the log's precision),
    tuples as lists. A later release that adds a payload field must leave it out here while it holds its
    default, or the seals made before it would no longer verify."""

    def value(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).isoformat(timespec="microseconds")
        return list(v) if isinstance(v, tuple) else v

    return {f.name: value(getattr(payload, f.name)) for f in dataclasses.fields(payload)}


def statement(
    hub: str, actor: str, payload: ev.Payload, signed_at: dt.datetime, terms: bytes | None
) -> bytes:
    """The bytes a party signs for one act (and the verifier rebuilds): see the module's docstring."""
    fields = {
        "hub": hub,
        "actor": actor,
        "act": ev.type_name(payload),
        "payload": payload_json(payload),
        "signed_at": signed_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "terms": terms.hex() if terms is not None else None,
    }
    return SIGNED_AS + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def terms_hash(state: GovState, payload: ev.Payload) -> bytes | None:
    """For a step of an agreement, the hash of the event that set its current terms (None otherwise, and
    for an agreement the log does not hold: the rules refuse that step)."""
    if not isinstance(payload, AGREEMENT_STEPS):
        return None
    found = state.agreements_.get(payload.id)
    return found.terms_hash if found is not None else None


def sign(signer: Signer, state: GovState, actor: str, payload: ev.Payload, signed_at: dt.datetime) -> ActSeal:
    """``signer``'s seal of ``actor``'s act ``payload``, made at ``signed_at``, for the hub whose
    governance ``state`` is."""
    at = signed_at.astimezone(dt.UTC)
    data = statement(state.topic_prefix, actor, payload, at, terms_hash(state, payload))
    return ActSeal(signer.key_id, at, signer.sign(data))


# --- who must seal, and is the seal right ---------------------------------------------------------------


def must_seal(state: GovState, actor: str) -> bool:
    """Every act but the operator's own carries its party's seal."""
    return actor != state.operator


def check(state: GovState, event: ev.GovernanceEvent) -> None:
    """ActSealRefused unless ``event`` carries the seal its actor must give (or is a legacy event)."""
    if is_legacy(event):
        if state.sealed_from is not None:
            raise ActSealRefused(
                DOWNGRADE,
                f"{event.describe()} is written by a release of the governance event schema without act "
                f"seals, after event {state.sealed_from} of a release with them",
            )
        return
    seal = event.act_seal
    if seal is None:
        if must_seal(state, event.actor):
            raise ActSealRefused(
                UNSIGNED,
                f"{event.describe()}: {event.actor!r} must sign its own act with one of its signing keys "
                "(its site's key, or the custody key the hub holds for it); it carries no seal",
            )
        return
    public = _party_key(state, event, seal)
    if not event.occurred_at - SEAL_WINDOW <= seal.signed_at <= event.occurred_at:
        raise ActSealRefused(
            STALE,
            f"{event.describe()}: sealed at {seal.signed_at.isoformat()}, not within "
            f"{SEAL_WINDOW.total_seconds() / 60:g} minutes before governance took it "
            f"({event.occurred_at.isoformat()}); sign it again",
        )
    data = statement(
        state.topic_prefix, event.actor, event.payload, seal.signed_at, terms_hash(state, event.payload)
    )
    try:
        public.verify(seal.signature, data)
    except InvalidSignature:
        raise ActSealRefused(
            SIGNATURE_INVALID,
            f"{event.describe()}: the seal by {seal.key_id!r} does not verify over this act (other terms, "
            "another hub, or altered)",
        ) from None


def _party_key(state: GovState, event: ev.GovernanceEvent, seal: ActSeal) -> Ed25519PublicKey:
    """The public key of ``seal``, once it is a key of the actor valid at ``signed_at``. An agency
    registering a key may seal with that very key (proof of possession, as its request carries)."""
    p = event.payload
    if isinstance(p, ev.SigningKeyAdded) and p.agency == event.actor and seal.key_id == p.key_id:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(p.public_key))
    agency = state.agencies_.get(event.actor)
    key = agency.key(seal.key_id) if agency is not None else None
    if key is None:
        holder = next((a.id for a in state.agencies_.values() if a.key(seal.key_id) is not None), None)
        whose = f"a key of {holder!r}" if holder is not None else "no registered key"
        raise ActSealRefused(
            WRONG_PARTY,
            f"{event.describe()}: sealed with {seal.key_id!r}, {whose}; the act is {event.actor!r}'s "
            f"and must be signed by a key of {event.actor!r}",
        )
    if not key.valid_at(seal.signed_at):
        revoked = key.revoked_at is not None and seal.signed_at >= key.revoked_at
        raise ActSealRefused(
            KEY_NOT_VALID,
            f"{event.describe()}: key {seal.key_id!r} of {event.actor!r} was not valid at "
            f"{seal.signed_at.isoformat()}{' (revoked)' if revoked else ''}",
        )
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))


def is_legacy(event: ev.GovernanceEvent) -> bool:
    """Whether ``event`` was written by a release of the schema from before act seals (operator-attested)."""
    return event.writer not in ev.SEALED_RELEASES


# --- who can sign here ----------------------------------------------------------------------------------


class ActSigner(Protocol):
    """Where the service gets a party's seal for an act: keys this process holds, or a seal a site sent."""

    def seal_act(self, state: GovState, actor: str, payload: ev.Payload, at: dt.datetime) -> ActSeal | None:
        """The seal of ``actor``'s act, or None if this signer cannot sign for it."""
        ...


class KeyRing:
    """Signing keys this process holds for parties: the custody keys of a hub, the keys of sites on this
    machine (the demo), a test's. Seals with a key of the actor that governance holds valid now."""

    def __init__(self) -> None:
        self._signers: dict[str, list[Signer]] = {}

    def add(self, agency: str, signer: Signer) -> KeyRing:
        self._signers.setdefault(agency, []).append(signer)
        return self

    def agencies(self) -> tuple[str, ...]:
        return tuple(self._signers)

    def seal_act(self, state: GovState, actor: str, payload: ev.Payload, at: dt.datetime) -> ActSeal | None:
        agency = state.agencies_.get(actor)
        for signer in self._signers.get(actor, ()):
            key = agency.key(signer.key_id) if agency is not None else None
            new_key = isinstance(payload, ev.SigningKeyAdded) and payload.key_id == signer.key_id
            if new_key or (key is not None and key.valid_at(at)):
                return sign(signer, state, actor, payload, at)
        return None


class CustodySigner:
    """Seals the acts of an agency in the hub's custody with the custody key (``<agency>/custody/<n>``) the
    hub's key store holds for it; never with any other key."""

    def __init__(self, keys: LocalKeyStore) -> None:
        self._keys = keys

    def key_for(self, state: GovState, actor: str, at: dt.datetime) -> SigningKey | None:
        agency = state.agencies_.get(actor)
        held = [
            k.key_id
            for k in (agency.keys if agency is not None else ())
            if sealed_in_custody(k.key_id) and k.valid_at(at) and self._keys.has(k.key_id, "signing")
        ]
        if not held:
            return None
        current = self._keys.signing_key(actor)
        return current if current.key_id in held else None

    def seal_act(self, state: GovState, actor: str, payload: ev.Payload, at: dt.datetime) -> ActSeal | None:
        key = self.key_for(state, actor, at)
        return sign(key, state, actor, payload, at) if key is not None else None


@dataclass(frozen=True)
class Presented:
    """A seal a party made at its own site and sent with its request (``act_seal``)."""

    seal: ActSeal

    def seal_act(self, state: GovState, actor: str, payload: ev.Payload, at: dt.datetime) -> ActSeal | None:
        return self.seal


class Signers:
    """The signers a service asks in turn: the first seal given wins."""

    def __init__(self, *signers: ActSigner) -> None:
        self._signers = list(signers)

    def add(self, signer: ActSigner) -> None:
        self._signers.append(signer)

    def seal_act(self, state: GovState, actor: str, payload: ev.Payload, at: dt.datetime) -> ActSeal | None:
        for signer in self._signers:
            seal = signer.seal_act(state, actor, payload, at)
            if seal is not None:
                return seal
        return None

    @contextmanager
    def first(self, signer: ActSigner) -> Iterator[None]:
        """``signer`` asked before the others, for the duration (a seal presented with one request)."""
        self._signers.insert(0, signer)
        try:
            yield
        finally:
            self._signers.remove(signer)


def not_signed_here(actor: str, act: str) -> ActSealRefused:
    """The refusal of an act the party must sign and nothing here can sign for it."""
    return ActSealRefused(
        UNSIGNED,
        f"{act} is {actor!r}'s act and must be signed by {actor!r}: sign it at its site "
        f"('sharehub agency sign-act', then send the request with its act_seal), or give its site home "
        f"('--site DIR'); the hub signs only for agencies in its custody",
    )
