"""Every party signs its own governance act: who must seal, what a seal must be, and what happens to an
act without a valid one, at the service (refused, nothing written) and in the fold (skipped, named)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Callable
from typing import cast

import fastavro
import pytest

from sharehub.avro import SINGLE_OBJECT_MARKER
from sharehub.gov import acts, fold, fold_log
from sharehub.gov import events as ev
from sharehub.gov.acts import ActSealRefused, KeyRing, Presented
from sharehub.gov.log import Logged, MemoryLog
from sharehub.gov.service import GovernanceService
from sharehub.gov.state import GovState
from sharehub.keys import SigningKey
from tests.gov_support import (
    DAY,
    T0,
    Clock,
    party_key_id,
    propose_members,
    propose_tasks,
    public_hex,
    seeded,
    signing_key,
)
from tests.unit.test_gov_schema_releases import first_release, rewritten

AGREEMENT = "mcst.tasks.1"


@pytest.fixture
def svc() -> GovernanceService:
    """The seeded hub, each party with a key the test holds; its clock starts at T0."""
    return seeded(Clock())


@pytest.fixture
def clock(svc: GovernanceService) -> Clock:
    """The service's clock, moved by the test."""
    return cast(Clock, svc.clock)


def events(svc: GovernanceService) -> list[ev.GovernanceEvent]:
    return [ev.parse(raw) for raw in svc._log.read_all()]


def seal_by(
    svc: GovernanceService, key: SigningKey, actor: str, payload: ev.Payload, at: dt.datetime | None = None
) -> ev.ActSeal:
    """What ``key`` would seal for ``actor``'s act, against the service's state."""
    return acts.sign(key, svc.state, actor, payload, at or svc.clock())


def refused_with(svc: GovernanceService, reason: str, act: Callable[[], object], seal: ev.ActSeal) -> str:
    """``act``, presented with ``seal``, is refused for ``reason``; the log and the state stay as they
    were. Returns the message."""
    before, head = len(svc._log.read_all()), svc.state.state_hash()
    with svc.signers.first(Presented(seal)), pytest.raises(ActSealRefused) as refused:
        act()
    assert refused.value.reason == reason
    assert len(svc._log.read_all()) == before and svc.state.state_hash() == head, "a refusal changes nothing"
    return str(refused.value)


# --- who seals what ----------------------------------------------------------------------------------


def test_each_party_seals_its_own_act_and_the_operator_countersigns(svc: GovernanceService) -> None:
    propose_tasks(svc)
    svc.consent("go", AGREEMENT)
    svc.approve("op", AGREEMENT)
    svc.suspend("go", AGREEMENT, "audit")
    svc.resume("cpo", AGREEMENT, "audit closed")
    svc.revoke("op", AGREEMENT, "no longer needed")
    extra = signing_key("mcst-pc/sign/extra")
    svc.add_key("mcst-pc", "mcst-pc", extra.key_id, public_hex(extra))
    svc.revoke_key("mcst-pc", "mcst-pc", extra.key_id, "no longer used")
    svc.set_dataset_retention("go", "tasks", 86_400_000, "a day is enough")
    svc.register_agency("cpo", "thainguyen-ppc", "Thai Nguyen PPC", "provincial-party-committee", "internal")
    sealed = {(e.type, e.actor): e.act_seal for e in events(svc)}
    for (kind, actor), seal in sealed.items():
        if actor == "cpo":
            assert seal is None, f"the operator's own {kind} needs no seal"
        else:
            assert seal is not None and seal.key_id == party_key_id(actor), f"{kind} by {actor}"
    for act in [
        ("AgreementProposed", "mcst-pc"),
        ("SchemaRegistered", "go"),
        ("SigningKeyRevoked", "mcst-pc"),
    ]:
        assert act in sealed
    assert fold(svc._log.read_all(), svc.state.trust).state_hash() == svc.state.state_hash()


def test_two_approvers_each_seal_their_own_approval(svc: GovernanceService) -> None:
    propose_members(svc)
    svc.consent("coc", "dongthap.members.1")
    svc.approve("op", "dongthap.members.1")
    svc.approve("go", "dongthap.members.1")
    approvals = [e for e in events(svc) if e.type == "AgreementApproved"]
    assert [e.act_seal.key_id for e in approvals if e.act_seal] == ["op/sign/party", "go/sign/party"]
    assert svc.state.agreement("dongthap.members.1").stage == "approved"


def test_an_act_nobody_here_can_sign_is_refused_naming_who_must(svc: GovernanceService) -> None:
    alone = GovernanceService(svc.state, svc.signing_key, svc._log, clock=svc.clock)  # holds no party key
    before = len(svc._log.read_all())
    with pytest.raises(ActSealRefused, match="must be signed by 'mcst-pc'") as refused:
        propose_tasks(alone)
    assert refused.value.reason == acts.UNSIGNED and "sign-act" in str(refused.value)
    assert len(svc._log.read_all()) == before


def test_a_custodial_agency_is_sealed_by_the_hub_with_its_custody_key(svc: GovernanceService) -> None:
    custody = signing_key("mcst-pc/custody/1")
    svc.add_key("cpo", "mcst-pc", custody.key_id, public_hex(custody))
    hub = GovernanceService(
        svc.state, svc.signing_key, svc._log, clock=svc.clock, signers=KeyRing().add("mcst-pc", custody)
    )
    propose_tasks(hub)
    (proposal,) = [e for e in events(hub) if e.type == "AgreementProposed"]
    assert proposal.act_seal is not None and proposal.act_seal.key_id == "mcst-pc/custody/1"


# --- what a seal must be -----------------------------------------------------------------------------


def test_a_seal_by_another_agency_is_refused(svc: GovernanceService) -> None:
    propose_tasks(svc)
    coc = signing_key(party_key_id("coc"))  # not coc's registered key either: a stranger's
    svc.add_key("cpo", "coc", "coc/sign/other", public_hex(coc))
    consent = ev.AgreementConsented(AGREEMENT, "go")
    wrong = dataclasses.replace(seal_by(svc, coc, "go", consent), key_id="coc/sign/other")
    message = refused_with(svc, acts.WRONG_PARTY, lambda: svc.consent("go", AGREEMENT), wrong)
    assert "'coc/sign/other', a key of 'coc'" in message and "must be signed by a key of 'go'" in message


def test_a_seal_by_an_unknown_key_is_refused(svc: GovernanceService) -> None:
    propose_tasks(svc)
    stranger = signing_key("go/sign/stolen")
    seal = seal_by(svc, stranger, "go", ev.AgreementConsented(AGREEMENT, "go"))
    message = refused_with(svc, acts.WRONG_PARTY, lambda: svc.consent("go", AGREEMENT), seal)
    assert "no registered key" in message


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_a_seal_by_a_key_no_longer_valid_is_refused(svc: GovernanceService, clock: Clock, ended: str) -> None:
    propose_tasks(svc)
    key = signing_key(f"go/sign/{ended}")
    if ended == "revoked":
        svc.add_key("cpo", "go", key.key_id, public_hex(key))
        clock.advance(dt.timedelta(minutes=1))
        svc.revoke_key("cpo", "go", key.key_id, "lost")
    else:
        svc.add_key("cpo", "go", key.key_id, public_hex(key), valid_until=T0 + DAY)
        clock.advance(2 * DAY)
    seal = seal_by(svc, key, "go", ev.AgreementConsented(AGREEMENT, "go"))
    message = refused_with(svc, acts.KEY_NOT_VALID, lambda: svc.consent("go", AGREEMENT), seal)
    assert ("(revoked)" in message) == (ended == "revoked")


def test_a_seal_older_than_the_window_or_from_the_future_is_refused(
    svc: GovernanceService, clock: Clock
) -> None:
    propose_tasks(svc)
    clock.advance(DAY)
    key = signing_key("go/sign/late")
    svc.add_key("cpo", "go", key.key_id, public_hex(key), valid_from=T0)
    consent = ev.AgreementConsented(AGREEMENT, "go")
    old = seal_by(svc, key, "go", consent, clock.now - acts.SEAL_WINDOW - dt.timedelta(seconds=1))
    assert "15 minutes" in refused_with(svc, acts.STALE, lambda: svc.consent("go", AGREEMENT), old)
    ahead = seal_by(svc, key, "go", consent, clock.now + dt.timedelta(seconds=1))
    refused_with(svc, acts.STALE, lambda: svc.consent("go", AGREEMENT), ahead)
    fresh = seal_by(svc, key, "go", consent, clock.now - acts.SEAL_WINDOW + dt.timedelta(seconds=1))
    with svc.signers.first(Presented(fresh)):
        assert svc.consent("go", AGREEMENT).act_seal == fresh


def test_a_consent_to_other_terms_is_refused(clock: Clock) -> None:
    """A seal names the event that set the terms: the same agreement id proposed with other terms (here on
    another log) does not take a consent given to the first."""
    key = signing_key()
    first, second = seeded(clock, key), seeded(clock, key)
    propose_tasks(first)
    propose_tasks(second, fields=["task_id", "province_code"])
    go = signing_key("go/sign/both")
    for svc in (first, second):
        svc.add_key("cpo", "go", go.key_id, public_hex(go))
    consent = ev.AgreementConsented(AGREEMENT, "go")
    given = seal_by(first, go, "go", consent)
    message = refused_with(second, acts.SIGNATURE_INVALID, lambda: second.consent("go", AGREEMENT), given)
    assert "other terms" in message
    with first.signers.first(Presented(given)):
        first.consent("go", AGREEMENT)


def test_a_seal_for_another_hub_or_another_act_is_refused(clock: Clock) -> None:
    other_hub = seeded(clock, prefix="elsewhere")
    svc = seeded(clock)
    go = signing_key("go/sign/both")
    for service in (svc, other_hub):
        service.add_key("cpo", "go", go.key_id, public_hex(go))
        propose_tasks(service)
    elsewhere = seal_by(other_hub, go, "go", ev.AgreementConsented(AGREEMENT, "go"))
    refused_with(svc, acts.SIGNATURE_INVALID, lambda: svc.consent("go", AGREEMENT), elsewhere)
    suspend = seal_by(svc, go, "go", ev.AgreementSuspended(AGREEMENT, "go", "audit"))
    refused_with(svc, acts.SIGNATURE_INVALID, lambda: svc.consent("go", AGREEMENT), suspend)


def test_the_statement_is_domain_separated_and_names_every_part(svc: GovernanceService) -> None:
    propose_tasks(svc)
    consent = ev.AgreementConsented(AGREEMENT, "go")
    terms = acts.terms_hash(svc.state, consent)
    assert terms == events(svc)[-1].hash, "the proposal's event set the terms"
    data = acts.statement("sharehub", "go", consent, T0, terms)
    assert data.startswith(acts.SIGNED_AS)
    for other in (
        acts.statement("other", "go", consent, T0, terms),
        acts.statement("sharehub", "coc", consent, T0, terms),
        acts.statement("sharehub", "go", ev.AgreementConsented("x", "go"), T0, terms),
        acts.statement("sharehub", "go", consent, T0 + dt.timedelta(microseconds=1), terms),
        acts.statement("sharehub", "go", consent, T0, None),
    ):
        assert other != data


def test_an_agency_registering_its_first_key_seals_with_that_key(svc: GovernanceService) -> None:
    svc.register_agency("cpo", "thainguyen-ppc", "Thai Nguyen PPC", "provincial-party-committee", "internal")
    new = signing_key("thainguyen-ppc/sign/1")
    svc.signers.add(KeyRing().add("thainguyen-ppc", new))
    event = svc.add_key("thainguyen-ppc", "thainguyen-ppc", new.key_id, public_hex(new))
    assert event.act_seal is not None and event.act_seal.key_id == new.key_id


# --- the fold: a forced act is skipped, named, at its offset ------------------------------------------


def forced(svc: GovernanceService, actor: str, payload: ev.Payload, seal: ev.ActSeal | None) -> int:
    """Write an event straight to the log with the operator key, past the service's checks; its offset."""
    state = fold(svc._log.read_all(), svc.state.trust, svc.state.topic_prefix)
    event = ev.seal(
        svc.signing_key, sequence=state.head_sequence + 1, prev_hash=state.head_hash,
        occurred_at=svc.clock(), actor=actor, payload=payload, act_seal=seal,
    )  # fmt: skip
    svc._log.append(event)
    return len(svc._log.read_all()) - 1


def folded(svc: GovernanceService) -> GovState:
    entries = [Logged(offset, raw) for offset, raw in enumerate(svc._log.read_all())]
    return fold_log(entries, svc.state.trust, svc.state.topic_prefix)


@pytest.mark.parametrize(
    ("reason", "make_seal"),
    [
        (acts.UNSIGNED, lambda svc, key: None),
        (acts.WRONG_PARTY, lambda svc, key: seal_by(svc, key, "go", ev.AgreementConsented(AGREEMENT, "go"))),
        (
            acts.SIGNATURE_INVALID,
            lambda svc, key: dataclasses.replace(
                seal_by(svc, key, "go", ev.AgreementConsented(AGREEMENT, "go")), key_id="go/sign/party"
            ),
        ),
    ],
)
def test_the_fold_skips_a_forced_act_at_its_offset_and_goes_on(
    svc: GovernanceService, reason: str, make_seal: Callable[[GovernanceService, SigningKey], ev.ActSeal]
) -> None:
    propose_tasks(svc)
    coc = signing_key(party_key_id("coc"))
    offset = forced(svc, "go", ev.AgreementConsented(AGREEMENT, "go"), make_seal(svc, coc))
    state = folded(svc)
    (skipped,) = state.skipped
    assert (skipped.offset, skipped.reason) == (offset, reason)
    assert state.agreement(AGREEMENT).stage == "proposed", "the forced consent is not applied"
    assert state.head_sequence == offset + 1, "the operator-signed link still counts"
    with pytest.raises(ActSealRefused):
        fold(svc._log.read_all(), svc.state.trust, svc.state.topic_prefix)


# --- events written before the seal existed ----------------------------------------------------------


def test_legacy_acts_fold_as_operator_attested_and_a_downgrade_is_skipped(svc: GovernanceService) -> None:
    propose_tasks(svc)
    svc.consent("go", AGREEMENT)
    old = rewritten(svc._log.read_all(), first_release(), svc.signing_key)
    assert all(acts.is_legacy(ev.parse(raw)) for raw in old)
    state = fold_log([Logged(o, raw) for o, raw in enumerate(old)], svc.state.trust)
    assert state.skipped == [] and state.agreement(AGREEMENT).stage == "consented"
    assert state.legacy_acts == 4, "two schemas by their owners, a proposal, a consent"
    assert state.sealed_from is None

    # The log goes on in today's release, sealed; an event of the old release after that is a downgrade.
    going_on = GovernanceService(state, svc.signing_key, MemoryLog(old), clock=svc.clock, signers=svc.signers)
    going_on.approve("op", AGREEMENT)
    assert going_on.state.sealed_from == len(old) + 1
    raws = going_on._log.read_all()
    head = ev.parse(raws[-1])
    downgraded = old_release_event(
        svc.signing_key, head, "cpo", ev.AgreementRevoked(AGREEMENT, "cpo", "written by an old release")
    )
    entries = [Logged(o, raw) for o, raw in enumerate([*raws, downgraded])]
    state = fold_log(entries, svc.state.trust)
    (skipped,) = state.skipped
    assert (skipped.offset, skipped.reason) == (len(raws), acts.DOWNGRADE)
    assert state.agreement(AGREEMENT).stage == "approved"


def old_release_event(key: SigningKey, head: ev.GovernanceEvent, actor: str, payload: ev.Payload) -> bytes:
    """An event after ``head``, encoded by the first release of the schema (no seal) and operator-signed."""
    writer = first_release()
    datum = {
        "sequence": head.sequence + 1, "prev_hash": head.hash, "occurred_at": head.occurred_at,
        "actor": actor, "signer_key_id": key.key_id,
        "payload": (f"{ev.NAMESPACE}.{ev.type_name(payload)}", dataclasses.asdict(payload)),
    }  # fmt: skip
    out = io.BytesIO()
    fastavro.schemaless_writer(out, writer.parsed, datum)
    body = SINGLE_OBJECT_MARKER + writer.fingerprint + out.getvalue()
    return body + key.sign(body)


# --- a site seals, the hub checks ----------------------------------------------------------------------


def test_a_site_seals_a_request_the_hub_then_takes(svc: GovernanceService, clock: Clock) -> None:
    from services.act_signing import seal_request, site_body, with_fixed_times
    from services.gov_operations import OPERATIONS, Caller, parse_request

    mcst = signing_key("mcst-pc/sign/site")
    svc.add_key("cpo", "mcst-pc", mcst.key_id, public_hex(mcst))
    body = {
        "id": AGREEMENT, "consumer": "mcst-pc", "dataset": "tasks", "fields": ["task_id", "title"],
        "purpose": "Follow the resolution tasks", "legal_basis": "Regulation 384",
    }  # fmt: skip
    request = with_fixed_times(parse_request("propose", body), clock.now)
    written = len(svc._log.read_all())
    seal = seal_request(svc.state, mcst, "mcst-pc", "propose", request, clock.now)
    assert len(svc._log.read_all()) == written and svc.state.agreements_ == {}, "the site writes nothing"
    sent = site_body(request, seal)
    assert dt.datetime.fromisoformat(sent["valid_from"]) == clock.now, "the hub's default 'now', fixed"

    clock.advance(dt.timedelta(minutes=3))  # the request travels; the hub takes it a little later
    received = parse_request("propose", {k: v for k, v in sent.items() if k != "act_seal"})
    _, run = OPERATIONS["propose"]
    with svc.signers.first(Presented(ev.ActSeal.from_json(sent["act_seal"]))):
        event = run(None, svc, Caller("mcst-pc"), received)  # type: ignore[arg-type]
    assert event.act_seal == seal and event.occurred_at - seal.signed_at == dt.timedelta(minutes=3)


def test_a_site_is_refused_at_home_what_the_hub_would_refuse(svc: GovernanceService) -> None:
    from services.act_signing import seal_request
    from services.gov_operations import parse_request
    from sharehub.errors import NotPermitted

    propose_tasks(svc)
    coc = signing_key(party_key_id("coc"))
    with pytest.raises(NotPermitted, match="only the owner 'go'"):
        seal_request(
            svc.state, coc, "coc", "consent", parse_request("consent", {"agreement_id": AGREEMENT}), T0
        )
