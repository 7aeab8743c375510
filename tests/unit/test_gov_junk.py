"""A governance log holding junk, forgeries and broken links: each record is skipped and named by its offset,
the state is the one the honest events build, and nothing that is not the operator's next link changes it."""

from __future__ import annotations

import pytest

from sharehub.errors import ChainViolation
from sharehub.gov import GovernanceService, fold, fold_log
from sharehub.gov import events as ev
from sharehub.gov.log import Logged, MemoryLog
from tests.gov_support import T0, Clock, seeded, signing_key


@pytest.fixture
def svc() -> GovernanceService:
    return seeded(Clock())


def entries(raws: list[bytes]) -> list[Logged]:
    return [Logged(offset, raw) for offset, raw in enumerate(raws)]


def forged_registration(key_id: str, sequence: int, prev_hash: bytes) -> ev.GovernanceEvent:
    return ev.seal(
        signing_key(key_id),
        sequence=sequence,
        prev_hash=prev_hash,
        occurred_at=T0,
        actor="cpo",
        payload=ev.AgencyRegistered("intruder", "Intruder", "party-agency", None, "top-secret"),
    )


def test_junk_forgeries_and_replays_are_skipped_with_their_offsets(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    honest = fold(raws, svc.state.trust, svc.state.topic_prefix)
    head = svc.state
    flipped = bytearray(raws[3])
    flipped[-70] ^= 0x01
    log = [
        *raws[:3],
        b"not a governance event",  # 3
        bytes(flipped),  # 4: a copy of event 4 with one byte changed
        forged_registration("coc/sign/1", 4, ev.parse(raws[2]).hash).raw,  # 5: signed by a non-operator
        raws[1],  # 6: an old event again
        *raws[3:],
        raws[-1],  # a duplicate of the last
    ]
    state = fold_log(entries(log), head.trust, head.topic_prefix)
    assert [(s.offset, s.sequence, s.reason) for s in state.skipped] == [
        (3, None, "malformed"),
        (4, 4, "bad_signature"),
        (5, 4, "unknown_signer"),
        (6, 2, "replayed_sequence"),
        (len(log) - 1, len(raws), "duplicate"),
    ]
    assert state.dump() == honest.dump()
    assert state.state_hash() == honest.state_hash()
    assert "intruder" not in state.agencies_


def test_a_fork_signed_by_the_operator_is_skipped_and_the_real_chain_goes_on(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    fork = ev.seal(
        svc.signing_key,
        sequence=3,
        prev_hash=bytes(32),
        occurred_at=T0,
        actor="cpo",
        payload=ev.AgencyRegistered("x", "X", "party-agency", None, "internal"),
    )
    state = fold_log(entries([*raws[:2], fork.raw, *raws[2:]]), svc.state.trust, svc.state.topic_prefix)
    assert [(s.offset, s.reason) for s in state.skipped] == [(2, "chain_fork")]
    assert state.dump() == svc.state.dump()


def test_after_a_gap_nothing_is_applied_and_nothing_may_be_appended(svc: GovernanceService) -> None:
    raws = svc._log.read_all()
    state = fold_log(entries([raws[0], *raws[2:]]), svc.state.trust, svc.state.topic_prefix)
    assert state.head_sequence == 1
    assert {s.reason for s in state.skipped} == {"chain_gap"} and len(state.skipped) == len(raws) - 2
    writer = GovernanceService(state, svc.signing_key, MemoryLog(), clock=svc.clock)
    with pytest.raises(ChainViolation, match="chain_gap"):
        writer.register_agency("cpo", "x", "X", "party-agency", "internal")


def test_an_operator_event_that_breaks_a_rule_links_the_chain_but_changes_nothing(
    svc: GovernanceService,
) -> None:
    svc.propose("mcst-pc", "a", "mcst-pc", "tasks", ["task_id"], "p", "l", valid_from=T0)
    before = svc.state.dump()
    bad = ev.seal(
        svc.signing_key,
        sequence=svc.state.head_sequence + 1,
        prev_hash=svc.state.head_hash,
        occurred_at=T0,
        actor="cpo",
        payload=ev.AgreementApproved("a", "cpo"),
    )
    raws = [*svc._log.read_all(), bad.raw]
    state = fold_log(entries(raws), svc.state.trust, svc.state.topic_prefix)
    assert [(s.offset, s.reason) for s in state.skipped] == [(len(raws) - 1, "rule_violation")]
    assert state.head_sequence == bad.sequence
    after = state.dump()
    assert after.pop("head") != before.pop("head") and after == before
