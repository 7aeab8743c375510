"""A dataset's purposes changed after it is declared (``DatasetPurposesChanged``): by its owner or the
operator, to purposes of the vocabulary, never silently the same; a narrowing waits until no agreement that
can still take effect names a purpose it leaves out; new proposals are checked against the new purposes; and
replay reaches the same state, a change that breaks the rules linking the chain but changing nothing."""

from __future__ import annotations

from sharehub.errors import InputError, LifecycleViolation, NotPermitted, UnknownReferenceError
from sharehub.gov import GovernanceService, fold
from sharehub.gov import events as ev
from tests.gov_support import logged_past_the_rules
from tests.unit.test_purpose_vocabulary import MANAGEMENT, STATISTICS, propose, refused, svc

__all__ = ["svc"]  # the fixture: the seeded hub, two purposes, tasks-2 shared for management only

DATASET = "tasks-2"
STATS, MGMT = STATISTICS[0], MANAGEMENT[0]


def purposes_of(svc: GovernanceService, dataset: str = DATASET) -> tuple[str, ...]:
    return svc.state.datasets_[dataset].purposes


def test_the_owner_widens_and_a_new_proposal_is_checked_against_the_new_purposes(
    svc: GovernanceService,
) -> None:
    refused(svc, InputError, f"may not be shared for {STATS}", lambda: propose(svc, dataset=DATASET))
    event = svc.set_dataset_purposes("go", DATASET, [MGMT, STATS], "statistics office joins")
    assert event.type == "DatasetPurposesChanged" and event.actor == "go"
    assert purposes_of(svc) == (MGMT, STATS)
    propose(svc, dataset=DATASET)  # statistics is allowed now


def test_the_operator_may_change_them_and_no_other_agency(svc: GovernanceService) -> None:
    refused(svc, NotPermitted, "only the owner 'go' or the operator changes the purposes of 'tasks-2'",
            lambda: svc.set_dataset_purposes("coc", DATASET, [STATS], "mine now"))  # fmt: skip
    svc.set_dataset_purposes("cpo", DATASET, [STATS], "governance decided")
    assert purposes_of(svc) == (STATS,)


def test_narrowing_is_refused_naming_the_agreements_until_they_are_revoked(svc: GovernanceService) -> None:
    svc.set_dataset_purposes("go", DATASET, [MGMT, STATS], "statistics too")
    propose(svc, "mcst.tasks.9", dataset=DATASET, purposes=[MGMT, STATS])
    propose(svc, "mcst.tasks.10", dataset=DATASET, purposes=[MGMT])
    svc.consent("go", "mcst.tasks.9")
    svc.approve("cpo", "mcst.tasks.9")
    svc.suspend("go", "mcst.tasks.9", "under review")
    named = f"mcst.tasks.9 \\(suspended: {STATS}\\); revoke them first"
    refused(svc, LifecycleViolation, named, lambda: svc.set_dataset_purposes("go", DATASET, [MGMT], "narrow"))
    refused(svc, LifecycleViolation, f"mcst.tasks.10 \\(proposed: {MGMT}\\)",
            lambda: svc.set_dataset_purposes("go", DATASET, [STATS], "narrow"))  # fmt: skip
    svc.revoke("go", "mcst.tasks.9", "statistics no longer shared")
    svc.set_dataset_purposes("go", DATASET, [MGMT], "statistics no longer shared")
    assert purposes_of(svc) == (MGMT,)
    refused(
        svc,
        InputError,
        f"may not be shared for {STATS}",
        lambda: propose(svc, "mcst.tasks.11", dataset=DATASET),
    )


def test_from_any_purpose_to_some_and_back(svc: GovernanceService) -> None:
    """``tasks`` was declared without purposes (any): naming some narrows it, none widens it again."""
    propose(svc, "mcst.tasks.9", purposes=[STATS])
    refused(svc, LifecycleViolation, f"mcst.tasks.9 \\(proposed: {STATS}\\)",
            lambda: svc.set_dataset_purposes("go", "tasks", [MGMT], "management only"))  # fmt: skip
    svc.set_dataset_purposes("go", "tasks", [STATS], "statistics only")
    assert purposes_of(svc, "tasks") == (STATS,)
    svc.set_dataset_purposes("go", "tasks", [], "any purpose again")
    assert purposes_of(svc, "tasks") == ()
    propose(svc, "mcst.tasks.10", purposes=[MGMT])


def test_the_same_purposes_again_are_refused_not_logged(svc: GovernanceService) -> None:
    refused(svc, InputError, f"may already be shared for {MGMT}: the change changes nothing",
            lambda: svc.set_dataset_purposes("go", DATASET, [MGMT], "again"))  # fmt: skip
    svc.set_dataset_purposes("go", DATASET, [MGMT, STATS], "both")
    refused(svc, InputError, "changes nothing",
            lambda: svc.set_dataset_purposes("go", DATASET, [STATS, MGMT], "the other order"))  # fmt: skip
    refused(svc, InputError, "may already be shared for any purpose",
            lambda: svc.set_dataset_purposes("go", "tasks", [], "any"))  # fmt: skip


def test_unknown_retired_repeated_purposes_an_unknown_dataset_and_no_reason_are_refused(
    svc: GovernanceService,
) -> None:
    def change(purposes: list[str], dataset: str = DATASET, reason: str = "r") -> None:
        svc.set_dataset_purposes("go", dataset, purposes, reason)

    refused(svc, UnknownReferenceError, f"dataset 'tasks-2': no purpose 'gossip'; in use: {MGMT}, {STATS}",
            lambda: change([MGMT, "gossip"]))  # fmt: skip
    refused(svc, InputError, "purpose ids must not repeat", lambda: change([STATS, STATS]))
    refused(
        svc, UnknownReferenceError, "dataset 'nothing' does not exist", lambda: change([STATS], "nothing")
    )
    refused(svc, InputError, "a reason is required", lambda: change([STATS], reason=" "))
    svc.retire_purpose("cpo", STATS, "merged into management")
    refused(svc, LifecycleViolation, f"purpose '{STATS}' is retired", lambda: change([MGMT, STATS]))


def test_a_retired_purpose_the_dataset_names_may_be_kept(svc: GovernanceService) -> None:
    svc.define_purpose("cpo", "party-member-audit", "Kiểm tra đảng viên", "Party member audit")
    svc.set_dataset_purposes("go", DATASET, [MGMT, STATS], "both")
    propose(svc, "mcst.tasks.9", dataset=DATASET, purposes=[STATS])
    svc.retire_purpose("cpo", STATS, "merged into management")
    svc.set_dataset_purposes("go", DATASET, [MGMT, STATS, "party-member-audit"], "audit too")
    assert purposes_of(svc) == (MGMT, STATS, "party-member-audit")


def test_replay_reaches_the_same_state(svc: GovernanceService) -> None:
    svc.set_dataset_purposes("go", DATASET, [MGMT, STATS], "both")
    propose(svc, "mcst.tasks.9", dataset=DATASET)
    svc.set_dataset_purposes("cpo", "tasks", [STATS], "statistics only")
    replayed = fold(svc._log.read_all(), svc.state.trust, svc.state.topic_prefix)
    assert replayed.state_hash() == svc.state.state_hash()
    assert replayed.skipped == []
    assert replayed.dump()["vocabulary"]["dataset_purposes"] == {DATASET: [MGMT, STATS], "tasks": [STATS]}


def test_a_change_on_the_log_that_breaks_a_rule_links_the_chain_but_changes_nothing(
    svc: GovernanceService,
) -> None:
    propose(svc, "mcst.tasks.9", purposes=[STATS])
    narrowed = ev.DatasetPurposesChanged("tasks", (MGMT,), "narrowed under an agreement")
    assert "mcst.tasks.9" in logged_past_the_rules(svc, narrowed)
