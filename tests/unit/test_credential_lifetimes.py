"""Credentials with a lifetime: expiry, rotation with an overlap, revocation by id, who may do which; a
refused change appends nothing, and a log written before lifetimes existed still reads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from sharehub.avro import RecordSchema
from sharehub.errors import (
    DuplicateId,
    InputError,
    LifecycleViolation,
    NotPermitted,
    UnknownReferenceError,
    ValidityExpired,
)
from sharehub.gov import GovernanceService, fold, new_credential
from sharehub.gov import events as ev
from sharehub.gov.credentials import (
    DEFAULT_LIFETIME,
    DEFAULT_OVERLAP,
    MAX_LIFETIME,
    MAX_OVERLAP,
    CredentialRecord,
    credential_id,
)
from sharehub.gov.log import MemoryLog
from tests.gov_support import DAY, Clock, seeded, signing_key
from tests.unit.test_gov_schema_releases import kept_releases, rewritten


def issue(
    svc: GovernanceService, agency: str = "go", expires_at: dt.datetime | None = None
) -> CredentialRecord:
    _, digest = new_credential()
    svc.issue_credential("cpo", agency, digest, expires_at=expires_at)
    record = svc.state.credential(digest)
    assert record is not None
    return record


def refused_without_a_trace(
    svc: GovernanceService, error: type[Exception], match: str, change: Callable[[], object]
) -> None:
    """The change raises ``error`` and the log holds no more events than before."""
    before = len(svc._log.read_all())
    with pytest.raises(error, match=match):
        change()
    assert len(svc._log.read_all()) == before


def test_a_new_credential_expires_after_the_default_lifetime_judged_when_presented() -> None:
    clock = Clock()
    svc = seeded(clock)
    record = issue(svc)
    assert record.expires_at == clock.now + DEFAULT_LIFETIME
    assert record.refusal_at(clock.now + DEFAULT_LIFETIME - dt.timedelta(microseconds=1)) is None
    refusal = record.refusal_at(clock.now + DEFAULT_LIFETIME)
    assert refusal is not None and refusal.reason == "expired_credential"
    assert record.id in refusal.message and "expired on" in refusal.message


def test_the_operator_states_another_lifetime_up_to_the_maximum() -> None:
    clock = Clock()
    svc = seeded(clock)
    assert issue(svc, expires_at=clock.now + 7 * DAY).expires_at == clock.now + 7 * DAY
    assert issue(svc, expires_at=clock.now + MAX_LIFETIME).expires_at == clock.now + MAX_LIFETIME
    _, digest = new_credential()
    too_long = clock.now + MAX_LIFETIME + DAY
    refused_without_a_trace(
        svc,
        InputError,
        "at most 365 days",
        lambda: svc.issue_credential("cpo", "go", digest, expires_at=too_long),
    )
    refused_without_a_trace(
        svc,
        ValidityExpired,
        "not in the future",
        lambda: svc.issue_credential("cpo", "go", digest, expires_at=clock.now - DAY),
    )


def test_only_the_operator_issues_and_a_hash_is_issued_once() -> None:
    svc = seeded()
    _, digest = new_credential()
    refused_without_a_trace(
        svc, NotPermitted, "only the operator", lambda: svc.issue_credential("go", "go", digest)
    )
    svc.issue_credential("cpo", "go", digest)
    refused_without_a_trace(
        svc, DuplicateId, "already issued", lambda: svc.issue_credential("cpo", "ona", digest)
    )


def test_the_id_names_a_credential_without_showing_its_hash() -> None:
    svc = seeded()
    record = issue(svc)
    assert record.id == credential_id(record.sha256)
    assert record.id.startswith("cred-") and record.id[5:] not in record.sha256
    assert record.sha256 not in json.dumps(record.summary())
    assert record.sha256 not in json.dumps(svc.state.dump()["credential_lifetimes"])


def test_the_operator_or_the_agency_itself_revokes_no_other_agency() -> None:
    clock = Clock()
    svc = seeded(clock)
    by_operator, by_itself, by_another = issue(svc), issue(svc), issue(svc)
    refused_without_a_trace(
        svc,
        NotPermitted,
        "only the agency itself or the operator",
        lambda: svc.revoke_credential("ona", by_another.id, "not mine to revoke"),
    )
    svc.revoke_credential("cpo", by_operator.id, "the agency left the pilot")
    svc.revoke_credential("go", by_itself.id, "found in a public repository")
    for record in (by_operator, by_itself):
        now = svc.state.credential_records[record.id]
        assert now.state_at(clock.now) == "revoked"
        refusal = now.refusal_at(clock.now)
        assert refusal is not None and refusal.reason == "revoked_credential"
    assert svc.state.credential_records[by_another.id].state_at(clock.now) == "valid"


def test_revoking_an_unknown_revoked_or_ended_credential_is_refused_without_a_trace() -> None:
    clock = Clock()
    svc = seeded(clock)
    revoked, expiring = issue(svc), issue(svc, expires_at=clock.now + DAY)
    svc.revoke_credential("cpo", revoked.id, "leaked")
    refused_without_a_trace(
        svc, UnknownReferenceError, "no credential 'cred-000000000000'",
        lambda: svc.revoke_credential("cpo", "cred-000000000000", "typo"),
    )  # fmt: skip
    refused_without_a_trace(
        svc, LifecycleViolation, "already revoked", lambda: svc.revoke_credential("cpo", revoked.id, "again")
    )
    refused_without_a_trace(
        svc, InputError, "a reason is required", lambda: svc.revoke_credential("cpo", expiring.id, " ")
    )
    clock.advance(2 * DAY)
    refused_without_a_trace(
        svc, LifecycleViolation, "is expired", lambda: svc.revoke_credential("cpo", expiring.id, "too late")
    )


def test_a_revocation_may_take_effect_later() -> None:
    clock = Clock()
    svc = seeded(clock)
    record = issue(svc)
    svc.revoke_credential("cpo", record.id, "the office moves on Friday", effective_at=clock.now + 3 * DAY)
    now = svc.state.credential_records[record.id]
    assert now.state_at(clock.now + 2 * DAY) == "valid"
    assert now.state_at(clock.now + 3 * DAY) == "revoked"


def test_a_rotated_credential_works_beside_its_successor_until_the_overlap_ends() -> None:
    clock = Clock()
    svc = seeded(clock)
    old = issue(svc)
    _, digest = new_credential()
    svc.rotate_credential("cpo", old.id, digest)
    new = svc.state.credential(digest)
    assert new is not None and new.consumer == "go" and new.replaces == old.id
    old_now = svc.state.credential_records[old.id]
    assert old_now.replaced_by == new.id and old_now.replaced_until == clock.now + DEFAULT_OVERLAP
    assert old_now.state_at(clock.now + DEFAULT_OVERLAP / 2) == "valid"
    refusal = old_now.refusal_at(clock.now + DEFAULT_OVERLAP)
    assert refusal is not None and refusal.reason == "replaced_credential" and new.id in refusal.message
    assert new.refusal_at(clock.now + DEFAULT_OVERLAP) is None


def test_a_rotation_is_refused_for_an_ended_or_rotated_credential_or_a_long_overlap() -> None:
    clock = Clock()
    svc = seeded(clock)
    old, revoked = issue(svc), issue(svc)
    svc.revoke_credential("cpo", revoked.id, "leaked")
    _, digest = new_credential()
    refused_without_a_trace(
        svc, LifecycleViolation, "is revoked", lambda: svc.rotate_credential("cpo", revoked.id, digest)
    )
    refused_without_a_trace(
        svc, InputError, "at most 30 days",
        lambda: svc.rotate_credential("cpo", old.id, digest, overlap_until=clock.now + MAX_OVERLAP + DAY),
    )  # fmt: skip
    refused_without_a_trace(
        svc, NotPermitted, "only the operator", lambda: svc.rotate_credential("go", old.id, digest)
    )
    refused_without_a_trace(
        svc,
        UnknownReferenceError,
        "no credential 'cred-nope'",
        lambda: svc.rotate_credential("cpo", "cred-nope", digest),
    )
    svc.rotate_credential("cpo", old.id, digest)
    _, again = new_credential()
    refused_without_a_trace(
        svc, LifecycleViolation, "already rotated", lambda: svc.rotate_credential("cpo", old.id, again)
    )


def test_the_log_folds_into_the_same_credentials() -> None:
    clock = Clock()
    svc = seeded(clock)
    old = issue(svc)
    _, digest = new_credential()
    svc.rotate_credential("cpo", old.id, digest)
    svc.revoke_credential("go", credential_id(digest), "rotated too early")
    rebuilt = fold(svc._log.read_all(), svc.state.trust, svc.state.topic_prefix)
    assert rebuilt.dump() == svc.state.dump()
    assert rebuilt.credential_records == svc.state.credential_records


def previous_release() -> RecordSchema:
    """The release before credentials had lifetimes."""
    (release,) = [
        s
        for s in kept_releases().values()
        if "quality_rules" in json.dumps(s.raw) and "CredentialRevoked" not in json.dumps(s.raw)
    ]
    return release


def test_a_credential_issued_before_lifetimes_reads_without_expiry_and_can_be_revoked() -> None:
    key = signing_key()
    clock = Clock()
    svc = seeded(clock, key)
    token, digest = new_credential()
    svc.issue_credential("cpo", "go", digest)
    old = rewritten(svc._log.read_all(), previous_release(), key)
    (issued,) = [e.payload for e in map(ev.parse, old) if isinstance(e.payload, ev.CredentialIssued)]
    assert issued == ev.CredentialIssued("go", digest)  # the fields it lacked, defaulted: no expiry

    state = fold(old, svc.state.trust, svc.state.topic_prefix)
    then = GovernanceService(state, key, MemoryLog(old), clock=clock)
    record = then.state.credential(digest)
    assert record is not None and record.expires_at is None and record.id == credential_id(digest)
    assert record.refusal_at(clock.now + 10 * MAX_LIFETIME) is None
    assert then.state.consumer_for_token(token) == "go"
    then.revoke_credential("cpo", record.id, "issued before lifetimes: replaced by one that expires")
    assert then.state.credential_records[record.id].state_at(clock.now) == "revoked"
