"""A schema version weighed against the agreements over its dataset before it is registered: what it breaks is
refused (naming the agreements), what it narrows or widens is reported, and a change of classification alone
is a new version."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sharehub.avro import RecordSchema
from sharehub.errors import DuplicateId, SchemaBreaksAgreements
from sharehub.gov import GovernanceService
from sharehub.gov.impact import schema_impact
from tests.gov_support import DAY, TASKS_SCHEMA, Clock, propose_tasks


def tasks_schema(
    *, drop: tuple[str, ...] = (), classify: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    schema = copy.deepcopy(TASKS_SCHEMA)
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in drop]
    for field in schema["fields"]:
        field["classification"] = (classify or {}).get(field["name"], field["classification"])
    schema["fields"] += extra.get("add", [])
    return schema


def active_tasks_agreement(svc: GovernanceService, agreement_id: str = "mcst.tasks.1", **terms: Any) -> None:
    propose_tasks(svc, agreement_id, **terms)
    svc.consent("go", agreement_id)
    svc.approve("op", agreement_id)


def versions(svc: GovernanceService) -> int:
    return len(svc.state.datasets_["tasks"].schemas)


def test_a_change_of_classification_alone_is_a_new_version(svc: GovernanceService) -> None:
    raised = tasks_schema(classify={"budget": "secret"})
    svc.register_schema("go", "tasks", raised)
    assert versions(svc) == 2
    assert svc.state.current_schema("tasks").fields["budget"].classification == "secret"
    with pytest.raises(DuplicateId, match="already has this schema"):
        svc.register_schema("go", "tasks", raised)
    assert versions(svc) == 2


def test_dropping_a_granted_field_is_refused_naming_every_agreement_that_grants_it(
    svc: GovernanceService,
) -> None:
    active_tasks_agreement(svc)  # grants task_id, title
    propose_tasks(svc, "mcst.tasks.2", fields=["task_id", "title", "province_code"])  # still a proposal
    head = svc.state.head_sequence
    with pytest.raises(SchemaBreaksAgreements) as refused:
        svc.register_schema("go", "tasks", tasks_schema(drop=("title",)))
    message = str(refused.value)
    assert "'mcst.tasks.1' (mcst-pc): breaks: title" in message
    assert "'mcst.tasks.2' (mcst-pc): breaks: title" in message
    assert (versions(svc), svc.state.head_sequence) == (1, head), "a refused change changes nothing"


def test_a_version_is_refused_while_an_agreement_in_force_needs_what_it_drops(
    svc: GovernanceService, clock: Clock
) -> None:
    active_tasks_agreement(svc)
    with pytest.raises(SchemaBreaksAgreements, match="mcst.tasks.1"):
        svc.register_schema("go", "tasks", tasks_schema(drop=("title",)))
    svc.revoke("go", "mcst.tasks.1", "the title field is withdrawn")
    svc.register_schema("go", "tasks", tasks_schema(drop=("title",)))
    assert versions(svc) == 2
    # An agreement that has run out is not weighed either.
    active_tasks_agreement(
        svc, "mcst.tasks.3", fields=["task_id", "province_code"], valid_until=clock() + DAY
    )
    clock.advance(2 * DAY)
    svc.register_schema("go", "tasks", tasks_schema(drop=("title", "province_code")))
    assert versions(svc) == 3


def test_a_row_filter_the_new_version_cannot_read_breaks_its_agreement(svc: GovernanceService) -> None:
    active_tasks_agreement(
        svc, fields=["task_id", "title", "province_code"], row_filter='province_code == "01"'
    )
    with pytest.raises(SchemaBreaksAgreements) as refused:
        svc.register_schema("go", "tasks", tasks_schema(drop=("province_code",)))
    assert "breaks: province_code" in str(refused.value)
    assert "breaks: row filter: 'province_code == \"01\"' does not fit the new version" in str(refused.value)


def test_the_impact_report_names_what_narrows_and_what_widens(svc: GovernanceService, clock: Clock) -> None:
    status = {"name": "status", "type": {"type": "enum", "name": "TaskStatus", "symbols": ["OPEN", "DONE"]},
              "default": "OPEN", "classification": "internal"}  # fmt: skip
    svc.register_schema("go", "tasks", tasks_schema(add=[status]))
    active_tasks_agreement(svc, fields=["task_id", "title", "status"], row_filter='status != "DONE"')
    wider_status = copy.deepcopy(status)
    wider_status["type"]["symbols"] = ["OPEN", "DONE", "CANCELLED"]
    new = tasks_schema(classify={"title": "secret", "budget": "secret"}, add=[wider_status])
    impacts = schema_impact(svc.state, "tasks", RecordSchema.from_json("tasks", new), at=clock())
    assert [(i.agreement, i.effect, i.subject) for i in impacts] == [
        ("mcst.tasks.1", "narrows", "title"),
        ("mcst.tasks.1", "widens", "status"),
    ]
    assert "above the consumer's internal clearance" in impacts[0].detail
    assert "CANCELLED" in impacts[1].detail
    svc.register_schema("go", "tasks", new)  # narrowing and widening are reported, not refused
    assert versions(svc) == 3
