"""Bearer credentials with a lifetime: issued with an expiry, rotated with an overlap, revoked by name.

A credential is recorded on the governance log by its SHA-256 (``CredentialIssued``); the secret itself
never reaches the log. Each has a short, non-secret id (:func:`credential_id`, derived from the hash, so a
credential issued before ids existed has one too) by which it is listed, rotated and revoked: the id tells
nothing of the secret, and naming it reveals neither the secret nor its hash.

- **Expiry.** A new credential expires ``DEFAULT_LIFETIME`` after it is issued unless the operator states
  another end, at most ``MAX_LIFETIME`` away. Credentials issued before lifetimes existed carry no expiry
  (the field's default) and stay valid until revoked or rotated. Expiry is judged when the credential is
  presented: no event is needed.
- **Rotation.** A ``CredentialIssued`` with ``replaces`` names a valid credential of the same agency; that
  one is refused from ``replaced_until`` on (at most ``MAX_OVERLAP`` away), so the agency's systems can
  change over without a moment when neither works. A credential is replaced once.
- **Revocation.** ``CredentialRevoked`` ends a credential from ``effective_at`` (default: now). The operator
  may revoke any credential and an agency its own (least privilege: an agency that suspects a leak cuts its
  credential off at once, and touches no other agency's). An unknown credential, or one revoked or ended
  already, is refused and nothing is appended.

Only the operator issues and rotates: a credential is governance's statement of who an agency is. The
checks (:func:`check_issued`, :func:`check_revoked`) run before signing and again on replay, like every rule
of :mod:`sharehub.gov.rules`; :func:`apply_issued` and :func:`apply_revoked` are their part of the reducer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sharehub.errors import (
    DuplicateId,
    InputError,
    LifecycleViolation,
    NotPermitted,
    UnknownReferenceError,
    ValidityExpired,
)
from sharehub.gov import events as ev

if TYPE_CHECKING:
    from sharehub.gov.state import GovState

#: A new credential's lifetime unless the operator states another end.
DEFAULT_LIFETIME = dt.timedelta(days=90)
#: No credential is issued for longer than this.
MAX_LIFETIME = dt.timedelta(days=365)
#: How long a rotated credential stays valid beside its successor unless stated otherwise, and at most.
DEFAULT_OVERLAP = dt.timedelta(days=1)
MAX_OVERLAP = dt.timedelta(days=30)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ID_LABEL = b"sharehub credential id\x00"

State = Literal["valid", "expired", "replaced", "revoked"]


def credential_id(sha256_hex: str) -> str:
    """The credential's public name: ``cred-`` and 12 hex digits of a hash of its hash (a prefix of the
    hash itself would hand out part of what the log records)."""
    return "cred-" + hashlib.sha256(_ID_LABEL + sha256_hex.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Refusal:
    """Why a known credential is refused now: a stable reason code and a message for the caller."""

    reason: Literal["expired_credential", "replaced_credential", "revoked_credential"]
    message: str


@dataclass(frozen=True)
class CredentialRecord:
    id: str
    consumer: str
    sha256: str
    issued_at: dt.datetime
    expires_at: dt.datetime | None = None
    #: Rotation: the credential this one replaced, and the one that replaced this (and until when).
    replaces: str | None = None
    replaced_by: str | None = None
    replaced_until: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None

    def state_at(self, at: dt.datetime) -> State:
        """What the credential is at ``at``; the earliest of its ends decides which ended it."""
        ends: tuple[tuple[dt.datetime | None, State], ...] = (
            (self.revoked_at, "revoked"),
            (self.replaced_until, "replaced"),
            (self.expires_at, "expired"),
        )
        ended = [(t, s) for t, s in ends if t is not None and t <= at]
        return min(ended, key=lambda e: e[0])[1] if ended else "valid"

    @property
    def ends_at(self) -> dt.datetime | None:
        """When it stops being accepted, as governance stands now (None: never, unless changed)."""
        ends = [t for t in (self.revoked_at, self.replaced_until, self.expires_at) if t is not None]
        return min(ends) if ends else None

    def refusal_at(self, at: dt.datetime) -> Refusal | None:
        """Why the credential is refused at ``at``, or None while it is valid."""
        state = self.state_at(at)
        if state == "valid":
            return None
        when = self.ends_at.isoformat() if self.ends_at is not None else "?"
        if state == "revoked":
            return Refusal("revoked_credential", f"credential {self.id} was revoked (from {when})")
        if state == "replaced":
            return Refusal(
                "replaced_credential",
                f"credential {self.id} was replaced by {self.replaced_by} (its overlap ended {when})",
            )
        return Refusal("expired_credential", f"credential {self.id} expired on {when}")

    def summary(self, at: dt.datetime | None = None) -> dict[str, Any]:
        """JSON-ready, without the secret or its hash: what the state's dump and listings show (with its
        state at ``at``, when given)."""
        shown: dict[str, Any] = {
            "id": self.id,
            "consumer": self.consumer,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "replaced_until": _iso(self.replaced_until),
            "revoked_at": _iso(self.revoked_at),
            "revoke_reason": self.revoke_reason,
        }
        if at is not None:
            shown["state"] = self.state_at(at)
        return shown


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


# --- rules ---------------------------------------------------------------------------------------------


def check_issued(state: GovState, p: ev.CredentialIssued, actor: str, at: dt.datetime) -> None:
    if actor != state.operator:
        raise NotPermitted(f"only the operator {state.operator!r} may issue credentials; {actor!r} asked")
    old = _record(state, p.replaces) if p.replaces is not None else None  # named first: it names the agency
    if p.consumer not in state.agencies_:
        raise UnknownReferenceError(f"unknown agency {p.consumer!r} (consumer)")
    if not _HEX64.fullmatch(p.sha256):
        raise InputError("a credential is recorded as its SHA-256: 64 lower-case hex characters")
    if p.sha256 in state.token_owners or credential_id(p.sha256) in state.credential_records:
        raise DuplicateId("this credential was already issued")
    # None is what events written before lifetimes carry: no expiry. The service always states one.
    if p.expires_at is not None:
        if p.expires_at <= at:
            raise ValidityExpired(f"a credential's expiry {p.expires_at.isoformat()} is not in the future")
        if p.expires_at > at + MAX_LIFETIME:
            raise InputError(
                f"a credential lives at most {MAX_LIFETIME.days} days; "
                f"{p.expires_at.isoformat()} is later than that"
            )
    if old is None:
        if p.replaced_until is not None:
            raise InputError("replaced_until belongs to a rotation: name the credential it replaces")
        return
    if old.consumer != p.consumer:
        raise InputError(f"credential {old.id} is {old.consumer!r}'s; a rotation stays with its agency")
    _still_valid(old, at, "rotate")
    if old.replaced_by is not None:
        raise LifecycleViolation(f"credential {old.id} was already rotated (to {old.replaced_by})")
    if p.replaced_until is None:  # (a time already past ends the replaced credential at once)
        raise InputError("a rotation states when the replaced credential stops working")
    if p.replaced_until > at + MAX_OVERLAP:
        raise InputError(f"a rotation's overlap lasts at most {MAX_OVERLAP.days} days")


def check_revoked(state: GovState, p: ev.CredentialRevoked, actor: str, at: dt.datetime) -> None:
    record = _record(state, p.credential_id)
    if record.consumer != p.consumer:
        raise InputError(f"credential {record.id} is {record.consumer!r}'s, not {p.consumer!r}'s")
    if actor not in (state.operator, record.consumer):
        raise NotPermitted(
            f"{actor!r} may not revoke credentials of {record.consumer!r}; "
            "only the agency itself or the operator may"
        )
    if record.revoked_at is not None:
        raise LifecycleViolation(f"credential {record.id} was already revoked")
    _still_valid(record, at, "revoke")
    if not p.reason.strip():
        raise InputError(f"revoking credential {record.id}: a reason is required (it stays on the log)")


def _record(state: GovState, cid: str) -> CredentialRecord:
    found = state.credential_records.get(cid)
    if found is None:
        raise UnknownReferenceError(f"no credential {cid!r}")
    return found


def _still_valid(record: CredentialRecord, at: dt.datetime, verb: str) -> None:
    ended = record.state_at(at)
    if ended != "valid":
        since = record.ends_at.isoformat() if record.ends_at is not None else "?"
        raise LifecycleViolation(f"credential {record.id} is {ended} (since {since}); nothing to {verb}")


# --- the reducer's part --------------------------------------------------------------------------------


def apply_issued(state: GovState, p: ev.CredentialIssued, at: dt.datetime) -> None:
    record = CredentialRecord(
        id=credential_id(p.sha256),
        consumer=p.consumer,
        sha256=p.sha256,
        issued_at=at,
        expires_at=p.expires_at,
        replaces=p.replaces,
    )
    if p.replaces is not None:
        old = state.credential_records[p.replaces]
        state.credential_records[old.id] = dataclasses.replace(
            old, replaced_by=record.id, replaced_until=p.replaced_until
        )
    state.credential_records[record.id] = record
    state.credentials.setdefault(p.consumer, []).append(p.sha256)
    state.token_owners[p.sha256] = p.consumer


def apply_revoked(state: GovState, p: ev.CredentialRevoked) -> None:
    record = state.credential_records[p.credential_id]
    state.credential_records[record.id] = dataclasses.replace(
        record, revoked_at=p.effective_at, revoke_reason=p.reason
    )
