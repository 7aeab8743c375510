"""Signing keys by event time: rotation and revocation; and the governance chain's own integrity."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from sharehub.errors import (
    ChainViolation,
    DuplicateId,
    InputError,
    LifecycleViolation,
    MalformedEnvelope,
    NotPermitted,
    SignatureInvalid,
    UnknownSigner,
    ValidityExpired,
)
from sharehub.gov import GovernanceService, Trust, fold
from sharehub.gov import events as ev
from sharehub.gov.log import MemoryLog
from tests.gov_support import DAY, T0, Clock, public_hex, seeded, signing_key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(clock: Clock) -> GovernanceService:
    return seeded(clock)


def test_key_valid_in_its_window(svc: GovernanceService) -> None:
    key = signing_key("coc/sign/1")
    svc.add_key("cpo", "coc", "coc/sign/1", public_hex(key), valid_from=T0, valid_until=T0 + 10 * DAY)
    found = svc.state.signing_public_key("coc", "coc/sign/1", T0 + DAY)
    assert found.public_bytes_raw().hex() == public_hex(key)
    with pytest.raises(UnknownSigner, match="was not valid at"):
        svc.state.signing_public_key("coc", "coc/sign/1", T0 - DAY)
    with pytest.raises(UnknownSigner, match="was not valid at"):
        svc.state.signing_public_key("coc", "coc/sign/1", T0 + 10 * DAY)
    with pytest.raises(UnknownSigner, match="has no signing key 'coc/sign/9'"):
        svc.state.signing_public_key("coc", "coc/sign/9", T0)


def test_rotation_ends_the_old_key_where_the_new_one_starts(svc: GovernanceService, clock: Clock) -> None:
    old, new = signing_key("coc/sign/1"), signing_key("coc/sign/2")
    svc.add_key("cpo", "coc", "coc/sign/1", public_hex(old), valid_from=T0)
    clock.advance(5 * DAY)
    event = svc.rotate_key("coc", "coc", "coc/sign/1", "coc/sign/2", public_hex(new))
    assert event.payload == ev.SigningKeyAdded(
        "coc", "coc/sign/2", public_hex(new), T0 + 5 * DAY, None, "coc/sign/1"
    )
    state = svc.state
    assert state.signing_public_key(
        "coc", "coc/sign/1", T0 + 5 * DAY - dt_micro()
    ).public_bytes_raw().hex() == (public_hex(old))
    with pytest.raises(UnknownSigner):
        state.signing_public_key("coc", "coc/sign/1", T0 + 5 * DAY)
    assert state.signing_public_key("coc", "coc/sign/2", T0 + 5 * DAY).public_bytes_raw().hex() == public_hex(
        new
    )
    keys = {k.key_id: k for k in state.agency("coc").keys}
    assert keys["coc/sign/1"].valid_until == T0 + 5 * DAY and keys["coc/sign/2"].valid_until is None


def dt_micro() -> dt.timedelta:
    return dt.timedelta(microseconds=1)


def test_revocation_by_event_time(svc: GovernanceService, clock: Clock) -> None:
    key = signing_key("coc/sign/1")
    svc.add_key("cpo", "coc", "coc/sign/1", public_hex(key), valid_from=T0)
    clock.advance(10 * DAY)
    # Compromise discovered on day 10, dated back to day 7: events signed before day 7 still verify.
    svc.revoke_key("cpo", "coc", "coc/sign/1", "laptop stolen", effective_at=T0 + 7 * DAY)
    assert svc.state.signing_public_key("coc", "coc/sign/1", T0 + 7 * DAY - DAY)
    with pytest.raises(UnknownSigner, match=r"was not valid at .* \(revoked\)"):
        svc.state.signing_public_key("coc", "coc/sign/1", T0 + 7 * DAY)
    with pytest.raises(LifecycleViolation, match="already revoked"):
        svc.revoke_key("cpo", "coc", "coc/sign/1", "again")
    with pytest.raises(LifecycleViolation, match="is revoked; add a new key"):
        svc.rotate_key("cpo", "coc", "coc/sign/1", "coc/sign/2", public_hex(signing_key()))
    assert svc.state.dump()["revocations"] == {
        "coc/coc/sign/1": ["2026-01-08T00:00:00+00:00", "laptop stolen"]
    }


def test_key_refusals(svc: GovernanceService) -> None:
    key = public_hex(signing_key())
    svc.add_key("cpo", "coc", "coc/sign/1", key, valid_from=T0)
    with pytest.raises(DuplicateId, match="'coc/sign/1' is already taken"):
        svc.add_key("cpo", "go", "coc/sign/1", key)
    with pytest.raises(NotPermitted, match="'go' may not add keys of 'coc'"):
        svc.add_key("go", "coc", "coc/sign/2", key)
    with pytest.raises(ValidityExpired):
        svc.add_key("cpo", "coc", "coc/sign/3", key, valid_from=T0 - 9 * DAY, valid_until=T0 - DAY)
    with pytest.raises(InputError, match="32 bytes of hex"):
        svc.add_key("cpo", "coc", "coc/sign/4", "abcd")


# --- the chain and the operator's signature ------------------------------------------------------------


def replay(svc: GovernanceService, raws: list[bytes]) -> None:
    fold(raws, svc.state.trust, svc.state.topic_prefix)


def test_fold_equals_the_service(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    assert fold(raws, svc.state.trust).dump() == svc.state.dump()


def test_tampered_event_is_detected(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    raw = bytearray(raws[3])
    at = raw.find(b"Government Office")
    raw[at : at + 3] = b"Gov"[::-1]
    with pytest.raises(SignatureInvalid, match="governance event 4 .* does not verify"):
        replay(svc, [*raws[:3], bytes(raw), *raws[4:]])


def test_gap_duplicate_and_fork(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    with pytest.raises(ChainViolation, match="chain_gap: governance event 3 .* 2 is missing"):
        replay(svc, [raws[0], raws[2]])
    with pytest.raises(ChainViolation, match="duplicate: governance event 2 .* appears twice"):
        replay(svc, [raws[0], raws[1], raws[1]])
    with pytest.raises(ChainViolation, match="replayed_sequence"):
        replay(svc, [raws[0], raws[1], raws[2], raws[0]])
    # A validly signed event 2 that links to another history: a fork.
    first = ev.parse(raws[0])
    forged = ev.seal(
        svc.signing_key,
        sequence=2,
        prev_hash=bytes(32),
        occurred_at=first.occurred_at,
        actor="cpo",
        payload=ev.AgencyRegistered("x", "X", "party-agency", None, "internal"),
    )
    with pytest.raises(ChainViolation, match="chain_fork: governance event 2"):
        replay(svc, [raws[0], forged.raw])


def test_events_signed_by_another_key_are_refused(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    stranger = signing_key("cpo/sign/1")  # same id, other key
    # The service itself refuses to write what readers pinned on the real key would reject.
    other = GovernanceService(svc.state, stranger, MemoryLog())
    with pytest.raises(SignatureInvalid):
        other.register_agency("cpo", "x", "X", "party-agency", "internal")
    with pytest.raises(UnknownSigner, match="'cpo/sign/1' is not a key of the operator 'cpo'"):
        fold(raws, Trust.of("cpo", signing_key("cpo/sign/7")))
    with pytest.raises(MalformedEnvelope):
        replay(svc, [raws[0], b"\xc3\x01garbage" + bytes(64)])


def test_a_log_that_breaks_a_rule_is_refused_on_replay(svc: GovernanceService) -> None:
    # A faulty operator signs an approval without consent; replay re-checks the rules and refuses it.
    svc.propose("mcst-pc", "a", "mcst-pc", "tasks", ["task_id"], "p", "l", valid_from=T0)
    raws = svc._log.read_all()
    bad = ev.seal(
        svc.signing_key,
        sequence=svc.state.head_sequence + 1,
        prev_hash=svc.state.head_hash,
        occurred_at=T0,
        actor="cpo",
        payload=ev.AgreementApproved("a", "cpo"),
    )
    with pytest.raises(LifecycleViolation, match="approve before consent"):
        replay(svc, [*raws, bad.raw])


def test_operator_key_rotation_on_the_log(clock: Clock) -> None:
    first, second = signing_key("cpo/sign/1"), signing_key("cpo/sign/2")
    svc = GovernanceService.in_memory("cpo", first, clock=clock)
    svc.register_agency("cpo", "cpo", "Central Party Office", "central-office", "top-secret")
    svc.add_key("cpo", "cpo", "cpo/sign/1", public_hex(first), valid_from=T0)
    clock.advance(DAY)
    svc.rotate_key("cpo", "cpo", "cpo/sign/1", "cpo/sign/2", public_hex(second))
    with pytest.raises(UnknownSigner, match="operator key 'cpo/sign/1' was not valid"):
        svc.register_agency("cpo", "coc", "COC", "party-agency", "secret")
    rotated = GovernanceService(svc.state, second, svc._log, clock=clock)
    rotated.register_agency("cpo", "coc", "COC", "party-agency", "secret")
    # A reader pinned on the first key only follows the rotation through the log.
    assert fold(svc._log.read_all(), Trust.of("cpo", first)).dump() == rotated.state.dump()


def test_events_round_trip(svc: GovernanceService) -> None:
    for raw in svc._log.read_all():
        event = ev.parse(raw)
        assert event.raw == raw
        again = dataclasses.replace(event)
        assert again.hash == event.hash


def test_the_hub_services_principal_names_are_no_agency_ids() -> None:
    from services.principals import SERVICE_PRINCIPALS
    from sharehub.gov.rules import RESERVED_AGENCY_IDS

    assert set(SERVICE_PRINCIPALS) == RESERVED_AGENCY_IDS
    svc = seeded()
    for reserved in sorted(RESERVED_AGENCY_IDS):
        with pytest.raises(InputError, match="names one of the hub's own services"):
            svc.register_agency("cpo", reserved, "X", "state-agency", "internal")
