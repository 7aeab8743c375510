"""The agreement lifecycle, step by step, and every refusal of a governance command with its message."""

from __future__ import annotations

import json

import pytest

from sharehub.avro import load_schema
from sharehub.errors import (
    ClearanceTooLow,
    DuplicateId,
    InputError,
    LifecycleViolation,
    NotPermitted,
    RowFilterError,
    SchemaIncompatible,
    UnknownReferenceError,
    ValidityExpired,
)
from sharehub.gov import GovernanceService
from tests.gov_support import (
    DAY,
    T0,
    TASKS_SCHEMA,
    Clock,
    propose_members,
    propose_tasks,
)


def status(svc: GovernanceService, agreement_id: str) -> str:
    return svc.state.agreement(agreement_id).status_at(svc.clock())


# --- transitions ---------------------------------------------------------------------------------------


def test_proposed_consented_approved_active(svc: GovernanceService) -> None:
    propose_tasks(svc)
    assert status(svc, "mcst.tasks.1") == "proposed"
    assert svc.state.active_agreement("mcst-pc", "tasks", T0) is None
    assert svc.state.agreements() == ()  # a proposal is not yet an agreement for the rest of the hub
    svc.consent("go", "mcst.tasks.1")
    assert status(svc, "mcst.tasks.1") == "consented"
    event = svc.approve("cpo", "mcst.tasks.1")
    assert event.type == "AgreementApproved" and event.actor == "cpo"
    assert status(svc, "mcst.tasks.1") == "active"
    active = svc.state.active_agreement("mcst-pc", "tasks", T0)
    assert active is not None and active.fields == ("task_id", "title") and active.status == "active"


def test_approved_before_valid_from_becomes_active_when_it_comes(
    svc: GovernanceService, clock: Clock
) -> None:
    propose_tasks(svc, valid_from=T0 + 10 * DAY)
    svc.consent("go", "mcst.tasks.1")
    svc.approve("cpo", "mcst.tasks.1")
    assert status(svc, "mcst.tasks.1") == "approved"
    assert svc.state.active_agreement("mcst-pc", "tasks", T0 + 9 * DAY) is None
    assert svc.state.active_agreement("mcst-pc", "tasks", T0 + 10 * DAY) is not None


def test_suspend_resume_revoke(svc: GovernanceService, clock: Clock) -> None:
    propose_tasks(svc)
    svc.consent("go", "mcst.tasks.1")
    svc.approve("cpo", "mcst.tasks.1")
    svc.suspend("go", "mcst.tasks.1", "audit of the ministry's access")
    assert status(svc, "mcst.tasks.1") == "suspended"
    assert svc.state.active_agreement("mcst-pc", "tasks", T0) is None
    assert svc.state.agreements()[0].status == "suspended"
    svc.resume("cpo", "mcst.tasks.1", "audit closed")
    assert svc.state.active_agreement("mcst-pc", "tasks", T0) is not None
    svc.revoke("go", "mcst.tasks.1", "no longer needed")
    assert status(svc, "mcst.tasks.1") == "revoked"
    assert svc.state.agreements()[0].status == "revoked"
    assert svc.state.active_agreement("mcst-pc", "tasks", T0) is None


def test_expires_when_valid_until_passes(svc: GovernanceService, clock: Clock) -> None:
    propose_tasks(svc, valid_until=T0 + 30 * DAY)
    svc.consent("go", "mcst.tasks.1")
    svc.approve("cpo", "mcst.tasks.1")
    assert svc.state.active_agreement("mcst-pc", "tasks", T0 + 29 * DAY) is not None
    assert svc.state.active_agreement("mcst-pc", "tasks", T0 + 30 * DAY) is None
    clock.advance(31 * DAY)
    assert status(svc, "mcst.tasks.1") == "expired"


def test_a_proposal_may_be_withdrawn(svc: GovernanceService) -> None:
    propose_tasks(svc)
    svc.revoke("go", "mcst.tasks.1", "the owner declines")
    assert status(svc, "mcst.tasks.1") == "revoked"
    assert svc.state.agreements() == ()  # it never took effect


def test_every_version_is_kept(svc: GovernanceService) -> None:
    propose_tasks(svc, row_filter='province_code == "87"', fields=["task_id", "title", "province_code"])
    svc.consent("go", "mcst.tasks.1")
    svc.approve("cpo", "mcst.tasks.1")
    svc.suspend("cpo", "mcst.tasks.1", "check")
    history = svc.state.history("mcst.tasks.1")
    assert [v.event_type for v in history] == [
        "AgreementProposed",
        "AgreementConsented",
        "AgreementApproved",
        "AgreementSuspended",
    ]
    assert [v.stage for v in history] == ["proposed", "consented", "approved", "suspended"]
    assert [v.actor for v in history] == ["mcst-pc", "go", "cpo", "cpo"]
    assert history[-1].reason == "check" and history[0].reason is None
    assert history[0].sequence < history[1].sequence < history[2].sequence < history[3].sequence
    row_filter = svc.state.row_filter("mcst.tasks.1")
    assert row_filter is not None and row_filter.matches({"province_code": "87"})
    assert not row_filter.matches({"province_code": "20"})


# --- two approvers at secret ---------------------------------------------------------------------------


def test_secret_dataset_needs_two_distinct_central_approvers(svc: GovernanceService) -> None:
    propose_members(svc)
    svc.consent("coc", "dongthap.members.1")
    svc.approve("cpo", "dongthap.members.1")
    assert status(svc, "dongthap.members.1") == "consented"  # one approval of two
    assert svc.state.active_agreement("dongthap-ppc", "party-members", T0) is None
    with pytest.raises(NotPermitted, match="'cpo' already approved 'dongthap.members.1'"):
        svc.approve("cpo", "dongthap.members.1")
    svc.approve("op", "dongthap.members.1")
    assert status(svc, "dongthap.members.1") == "active"
    assert svc.state.agreement("dongthap.members.1").approvals == ("cpo", "op")


def test_a_secret_field_needs_two_approvers_even_in_a_lower_dataset(svc: GovernanceService) -> None:
    schema = json.loads(json.dumps(TASKS_SCHEMA))
    schema["fields"].append(
        {"name": "note", "type": ["null", "string"], "default": None, "classification": "secret"}
    )
    svc.register_schema("go", "tasks", schema)
    propose_tasks(svc, consumer="ona", fields=["task_id", "note"])
    svc.consent("go", "mcst.tasks.1")
    svc.approve("cpo", "mcst.tasks.1")
    assert status(svc, "mcst.tasks.1") == "consented"
    svc.approve("op", "mcst.tasks.1")
    assert status(svc, "mcst.tasks.1") == "active"


def test_one_approver_below_secret(svc: GovernanceService) -> None:
    propose_tasks(svc)
    svc.consent("go", "mcst.tasks.1")
    svc.approve("op", "mcst.tasks.1")
    assert status(svc, "mcst.tasks.1") == "active"
    with pytest.raises(LifecycleViolation, match="is approved; nothing is left to approve"):
        svc.approve("cpo", "mcst.tasks.1")


# --- refusals ------------------------------------------------------------------------------------------


def test_unknown_agency(svc: GovernanceService) -> None:
    with pytest.raises(UnknownReferenceError, match=r"unknown agency 'nobody' \(acting agency\)"):
        svc.consent("nobody", "x")
    with pytest.raises(UnknownReferenceError, match=r"unknown agency 'ghost' \(consumer of agreement 'a'\)"):
        propose_tasks(svc, "a", consumer="ghost", actor="cpo")
    with pytest.raises(UnknownReferenceError, match=r"unknown agency 'nowhere' \(parent of 'x'\)"):
        svc.register_agency("cpo", "x", "X", "party-agency", "internal", parent="nowhere")


def test_duplicate_ids(svc: GovernanceService) -> None:
    with pytest.raises(DuplicateId, match="agency 'coc' is already registered"):
        svc.register_agency("cpo", "coc", "Again", "party-agency", "secret")
    with pytest.raises(DuplicateId, match="dataset 'tasks' is already declared"):
        svc.declare_dataset("cpo", "tasks", "go", "internal", "task_id")
    propose_tasks(svc)
    with pytest.raises(DuplicateId, match="agreement 'mcst.tasks.1' already exists"):
        propose_tasks(svc)
    with pytest.raises(DuplicateId, match="already has this schema"):
        svc.register_schema("go", "tasks", TASKS_SCHEMA)


def test_invalid_agency_fields(svc: GovernanceService) -> None:
    with pytest.raises(InputError, match="clearance"):
        svc.register_agency("cpo", "x", "X", "party-agency", "ultra-secret")
    with pytest.raises(InputError, match="agency 'Bad Id'"):
        svc.register_agency("cpo", "Bad Id", "X", "party-agency", "secret")


def test_only_the_operator_registers(svc: GovernanceService) -> None:
    with pytest.raises(NotPermitted, match="only the operator 'cpo' may register agency 'x'; 'go' asked"):
        svc.register_agency("go", "x", "X", "party-agency", "internal")
    with pytest.raises(NotPermitted, match="only the operator 'cpo' may declare dataset 'd'"):
        svc.declare_dataset("coc", "d", "coc", "internal", "k")


def test_incompatible_schema_names_the_field(svc: GovernanceService) -> None:
    schema = json.loads(json.dumps(TASKS_SCHEMA))
    schema["fields"].append({"name": "deadline", "type": "string", "classification": "internal"})
    with pytest.raises(SchemaIncompatible, match="deadline"):
        svc.register_schema("go", "tasks", schema)
    lowered = json.loads(json.dumps(TASKS_SCHEMA))
    lowered["fields"][3]["classification"] = "internal"
    with pytest.raises(SchemaIncompatible, match="budget"):
        svc.register_schema("go", "tasks", lowered)
    assert len(svc.state.dataset_schemas("tasks")) == 1


def test_schema_versions_are_all_kept(svc: GovernanceService) -> None:
    schema = json.loads(json.dumps(TASKS_SCHEMA))
    schema["fields"].append({"name": "deadline", "type": ["null", "string"], "default": None})
    event = svc.register_schema("go", "tasks", schema)
    assert event.payload.version == 2  # type: ignore[union-attr]
    schemas = svc.state.dataset_schemas("tasks")
    assert len(schemas) == 2
    assert "deadline" in svc.state.current_schema("tasks").fields
    assert svc.state.current_schema("party-members").fingerprint == load_schema("party-members").fingerprint


def test_clearance_too_low_names_field_and_levels(svc: GovernanceService) -> None:
    with pytest.raises(
        ClearanceTooLow,
        match="field 'national_id' is secret, above the confidential clearance of 'dongthap-ppc'",
    ):
        propose_members(svc, fields=["member_id", "national_id"])


def test_row_filter_must_compile_against_the_granted_fields(svc: GovernanceService) -> None:
    with pytest.raises(RowFilterError, match="agreement 'mcst.tasks.1': row filter: column 1"):
        propose_tasks(svc, row_filter='province_code == "87"')  # province_code is not granted
    with pytest.raises(RowFilterError, match="column 7"):
        propose_tasks(svc, row_filter='title = "x"', fields=["task_id", "title"])


def test_agreement_on_a_dataset_that_does_not_exist(svc: GovernanceService) -> None:
    with pytest.raises(UnknownReferenceError, match="agreement 'a': dataset 'documents' does not exist"):
        propose_tasks(svc, "a", dataset="documents")


def test_expired_validity(svc: GovernanceService, clock: Clock) -> None:
    with pytest.raises(
        ValidityExpired, match="valid_until 2025-12-31T00:00:00\\+00:00 is already in the past"
    ):
        propose_tasks(svc, valid_from=T0 - 30 * DAY, valid_until=T0 - DAY)
    with pytest.raises(InputError, match="is not after valid_from"):
        propose_tasks(svc, valid_until=T0)
    propose_tasks(svc, valid_until=T0 + DAY)
    clock.advance(2 * DAY)
    with pytest.raises(ValidityExpired, match="agreement 'mcst.tasks.1' expired on 2026-01-02"):
        svc.consent("go", "mcst.tasks.1")


def test_consent_only_by_the_owner(svc: GovernanceService) -> None:
    propose_tasks(svc)
    with pytest.raises(NotPermitted, match="only the owner 'go' of 'tasks' may consent to 'mcst.tasks.1'"):
        svc.consent("cpo", "mcst.tasks.1")


def test_approval_before_consent(svc: GovernanceService) -> None:
    propose_tasks(svc)
    with pytest.raises(LifecycleViolation, match="approve before consent: the owner 'go' has not consented"):
        svc.approve("cpo", "mcst.tasks.1")


def test_self_approval(svc: GovernanceService) -> None:
    propose_tasks(svc, actor="cpo")  # the operator proposes on the ministry's behalf
    svc.consent("go", "mcst.tasks.1")
    with pytest.raises(NotPermitted, match="self-approval: 'cpo' proposed 'mcst.tasks.1'"):
        svc.approve("cpo", "mcst.tasks.1")


def test_approval_by_consumer_or_owner_or_a_non_central_office(svc: GovernanceService) -> None:
    propose_tasks(svc, consumer="ona", actor="cpo")  # ona, a central office, is the consumer
    svc.consent("go", "mcst.tasks.1")
    with pytest.raises(NotPermitted, match="'ona' is the consumer of 'mcst.tasks.1' and may not approve it"):
        svc.approve("ona", "mcst.tasks.1")
    with pytest.raises(NotPermitted, match="'go' owns 'tasks' and may not approve 'mcst.tasks.1'"):
        svc.approve("go", "mcst.tasks.1")
    with pytest.raises(NotPermitted, match="approvers are central offices; 'coc' is a party-agency"):
        svc.approve("coc", "mcst.tasks.1")


def test_wrong_lifecycle_order(svc: GovernanceService) -> None:
    propose_tasks(svc)
    with pytest.raises(LifecycleViolation, match="resume when not suspended: 'mcst.tasks.1' is proposed"):
        svc.resume("go", "mcst.tasks.1", "why not")
    with pytest.raises(LifecycleViolation, match="only an approved agreement can be suspended"):
        svc.suspend("go", "mcst.tasks.1", "early")
    svc.consent("go", "mcst.tasks.1")
    with pytest.raises(LifecycleViolation, match="consent is given once"):
        svc.consent("go", "mcst.tasks.1")
    svc.revoke("go", "mcst.tasks.1", "stop")
    with pytest.raises(LifecycleViolation, match="already revoked"):
        svc.revoke("go", "mcst.tasks.1", "again")
    with pytest.raises(LifecycleViolation, match="is revoked; nothing is left to approve"):
        svc.approve("cpo", "mcst.tasks.1")


def test_only_owner_or_central_office_intervenes(svc: GovernanceService) -> None:
    propose_tasks(svc)
    with pytest.raises(NotPermitted, match="only the owner 'go' or a central office may revoke"):
        svc.revoke("mcst-pc", "mcst.tasks.1", "mine")


def test_a_refusal_leaves_no_trace(svc: GovernanceService) -> None:
    before = svc.state.dump()
    with pytest.raises(ClearanceTooLow):
        propose_members(svc, fields=["member_id", "phone"])
    assert svc.state.dump() == before
    assert len(svc._log.read_all()) == before["head"]["sequence"]


def test_credentials(svc: GovernanceService) -> None:
    from sharehub.gov import new_credential

    token, digest = new_credential()
    svc.issue_credential("cpo", "mcst-pc", digest)
    assert svc.state.consumer_for_token(token) == "mcst-pc"
    assert svc.state.consumer_for_token(token + "x") is None
    assert token not in json.dumps(svc.state.dump())
    with pytest.raises(DuplicateId):
        svc.issue_credential("cpo", "mcst-pc", digest)
    with pytest.raises(NotPermitted):
        svc.issue_credential("mcst-pc", "mcst-pc", new_credential()[1])
