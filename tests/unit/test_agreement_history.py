"""An agreement's status at a past time comes from its history as it stood then, and governance can be folded
as it stood at a past time (the ground of ``sharehub audit reconstruct``)."""

from __future__ import annotations

import pytest

from sharehub.gov import GovernanceService, fold_log_as_of
from sharehub.gov.log import Logged
from tests.gov_support import DAY, T0, Clock, propose_tasks, seeded

AGREEMENT = "mcst.tasks.1"
HOUR = DAY / 24


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(clock: Clock) -> GovernanceService:
    """mcst-pc's agreement on tasks, approved at T0 + 1h, valid from T0 for 30 days."""
    service = seeded(clock)
    propose_tasks(service, valid_until=T0 + 30 * DAY)
    service.consent("go", AGREEMENT)
    clock.advance(HOUR)
    service.approve("cpo", AGREEMENT)
    return service


def status(svc: GovernanceService, at_hours: float) -> str:
    return svc.state.agreement(AGREEMENT).status_at(T0 + at_hours * HOUR)


def test_suspended_later_is_active_before_and_suspended_after(svc: GovernanceService, clock: Clock) -> None:
    clock.advance(5 * HOUR)  # T0 + 6h
    svc.suspend("cpo", AGREEMENT, "inquiry")
    assert status(svc, 0.5) == "consented"  # not yet approved
    assert status(svc, 3) == "active"
    assert status(svc, 6) == "suspended"
    assert status(svc, 24) == "suspended"
    assert svc.state.active_agreement("mcst-pc", "tasks", T0 + 3 * HOUR) is not None
    assert svc.state.active_agreement("mcst-pc", "tasks", T0 + 7 * HOUR) is None


def test_revoked_before_is_revoked_and_stays_revoked(svc: GovernanceService, clock: Clock) -> None:
    clock.advance(HOUR)  # T0 + 2h
    svc.revoke("cpo", AGREEMENT, "no longer needed")
    assert status(svc, 1.5) == "active"
    assert status(svc, 2) == "revoked"
    assert status(svc, 31 * 24) == "revoked"  # revoked, not merely expired


def test_resumed_is_active_again_from_the_resumption(svc: GovernanceService, clock: Clock) -> None:
    clock.advance(HOUR)  # T0 + 2h
    svc.suspend("cpo", AGREEMENT, "inquiry")
    clock.advance(2 * HOUR)  # T0 + 4h
    svc.resume("cpo", AGREEMENT, "cleared")
    assert [status(svc, h) for h in (1.5, 3, 4, 5)] == ["active", "suspended", "active", "active"]
    stages = [stage for _, stage in svc.state.agreement(AGREEMENT).stages]
    assert stages == ["proposed", "consented", "approved", "suspended", "approved"]


def test_expiry_comes_at_valid_until_whatever_happened_before(svc: GovernanceService) -> None:
    assert status(svc, 30 * 24 - 1) == "active"
    assert status(svc, 30 * 24) == "expired"


def test_before_the_proposal_nothing_is_in_effect(svc: GovernanceService) -> None:
    assert svc.state.agreement(AGREEMENT).status_at(T0 - DAY) == "proposed"


def test_governance_as_of_a_time_leaves_out_later_events(svc: GovernanceService, clock: Clock) -> None:
    clock.advance(HOUR)  # T0 + 2h
    svc.suspend("cpo", AGREEMENT, "inquiry")
    clock.advance(HOUR)  # T0 + 3h
    svc.register_agency("cpo", "lsn", "Late agency", "party-agency", "internal", None)
    log = [Logged(offset, raw) for offset, raw in enumerate(svc._log.read_all())]
    trust, prefix = svc.state.trust, svc.state.topic_prefix

    then = fold_log_as_of(log, trust, T0 + 1.5 * HOUR, prefix)
    assert then.agreement(AGREEMENT).stage == "approved"
    assert then.active_agreement("mcst-pc", "tasks", T0 + 1.5 * HOUR) is not None
    assert "lsn" not in then.agencies_
    assert then.head_sequence == svc.state.head_sequence - 2

    now = fold_log_as_of(log, trust, T0 + 3 * HOUR, prefix)
    assert now.state_hash() == svc.state.state_hash()  # an event stamped exactly at the time counts

    junk = [*log[:3], Logged(len(log), b"not a governance event"), *log[3:]]
    assert fold_log_as_of(junk, trust, T0 + 3 * HOUR, prefix).head_sequence == svc.state.head_sequence
