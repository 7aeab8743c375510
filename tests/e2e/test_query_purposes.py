"""Purposes from governance's vocabulary, on the real broker: a query states one of its agreement's purposes
or is refused (403 with the allowed purposes, the refusal access-logged, nothing served); the access log
records the purpose id; and the vocabulary is run from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.access_log import read_access_log
from services.api.app import create_app
from services.cli import gov_commands
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import hub_env
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector

pytestmark = pytest.mark.kafka
RECORDS = "/v1/consumers/{consumer}/datasets/party-members/records"
MANAGEMENT = {
    "id": "party-member-management",
    "label_vi": "Quản lý đảng viên",
    "label_en": "Party member management",
}


@pytest.fixture
def governed(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Hub]:
    """The demo hub with its vocabulary (agreements name purposes), its topics on the broker, 3 members."""
    settings = Settings(
        home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, master_key=None, read_model_url=None
    )
    hub = Hub(settings)
    load(hub.governance_desk(), demo_spec(vocabulary=True))
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 4)]))
    yield hub
    hub.close()


def test_a_query_states_one_of_its_agreements_purposes(governed: Hub) -> None:
    c = TestClient(create_app(governed))
    auth = {"Authorization": f"Bearer {issue_credential(governed, 'dongthap-ppc')}"}
    base = RECORDS.format(consumer="dongthap-ppc")

    for path in (base, base + "/PM0000000001"):
        refused = c.get(path, params={"purpose": "Prepare the congress report"}, headers=auth)
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert body["error"] == "purpose_not_allowed"
        assert body["allowed_purposes"] == [MANAGEMENT]
        assert "state one of: party-member-management" in body["detail"]
    statistics = c.get(base, params={"purpose": "party-member-statistics"}, headers=auth)
    assert statistics.status_code == 403, "a purpose the dataset allows, but not this agreement"

    served = c.get(base, params={"purpose": MANAGEMENT["id"], "limit": 2}, headers=auth)
    assert served.status_code == 200
    assert [i["key"] for i in served.json()["items"]] == ["PM0000000001", "PM0000000002"]

    logged = list(read_access_log(governed.kafka, governed.governance.access_log_topic))
    assert [(e["operation"], e["purpose"], len(e["record_refs"]), e["fields_returned"]) for e in logged] == [
        ("purpose_refused", "Prepare the congress report", 0, []),
        ("purpose_refused", "Prepare the congress report", 0, []),
        ("purpose_refused", "party-member-statistics", 0, []),
        ("list_records", "party-member-management", 2, logged[-1]["fields_returned"]),
    ]
    assert logged[-1]["fields_returned"], "what was served is recorded; refusals served nothing"
    assert {e["agreement"] for e in logged} == {"dongthap-ppc.party-members.1"}


def test_the_dataset_list_takes_a_purpose_of_any_of_the_consumers_agreements(governed: Hub) -> None:
    c = TestClient(create_app(governed))
    auth = {"Authorization": f"Bearer {issue_credential(governed, 'dongthap-ppc')}"}
    listing = "/v1/consumers/dongthap-ppc/datasets"
    # Dong Thap holds two agreements: party members (management) and handbook activities.
    listed = c.get(listing, params={"purpose": "party-cell-activities"}, headers=auth)
    assert listed.status_code == 200
    assert {d["dataset"] for d in listed.json()} == {"party-members", "handbook-activities"}
    refused = c.get(listing, params={"purpose": "document-handling"}, headers=auth)
    assert refused.status_code == 403
    assert [p["id"] for p in refused.json()["allowed_purposes"]] == [
        "party-cell-activities",
        MANAGEMENT["id"],
    ]
    blank = c.get(listing, params={"purpose": "  "}, headers=auth)
    assert blank.status_code == 422, "the form is checked first, as before"


def test_the_vocabulary_on_the_command_line(hub: Hub) -> None:
    """On a hub whose agreements are of free-text purpose, the operator defines terms, an agreement names
    them, and a retired purpose stays with it (the rules' refusals are tested without a broker)."""

    def gov(*args: str) -> str:  # in this process: a command line started five times costs 20 s here
        done = CliRunner().invoke(gov_commands.app, list(args), env=hub_env(hub))
        assert done.exit_code == 0, done.output
        return done.stdout

    defined = gov("purposes", "define", "party-member-management", "--vi", "Quản lý đảng viên",
                  "--en", "Party member management", "--as", "cpo")  # fmt: skip
    assert json.loads(defined)["type"] == "PurposeDefined"
    gov("legal-bases", "define", "reg-384", "--vi", "Quy định 384", "--en", "Regulation 384",
        "--reference", "Regulation 384, Art. 5", "--as", "cpo")  # fmt: skip
    gov("propose", "--id", "x.1", "--consumer", "mcst-pc", "--dataset", "resolution-tasks", "--fields",
        "task_id,status", "--purposes", "party-member-management", "--legal-basis", "reg-384",
        "--as", "cpo")  # fmt: skip
    gov("purposes", "retire", "party-member-management", "--reason", "renamed", "--as", "cpo")
    listed = gov("purposes", "list")
    assert "Quản lý đảng viên" in listed and "retired" in listed and "renamed" in listed
    terms = hub.governance_state(refresh=True).agreement("x.1").terms
    assert terms.purposes == ("party-member-management",), "the agreement keeps its retired purpose"
    assert terms.legal_basis == "reg-384"


def test_a_datasets_purposes_changed_over_http_and_on_the_command_line(governed: Hub) -> None:
    """The owner widens its dataset's purposes over HTTP (a narrowing under an active agreement is refused,
    naming it; another agency may not); the operator lets it be shared for any purpose from the command
    line; the log on the broker folds to the same purposes."""
    c = TestClient(create_app(governed))

    def change(agency: str, purposes: list[str]) -> Any:
        auth = {"Authorization": f"Bearer {issue_credential(governed, agency)}"}
        body = {"dataset": "handbook-activities", "purposes": purposes, "reason": "cells report quarterly"}
        return c.post("/v1/gov/set-dataset-purposes", json=body, headers=auth)

    narrowed = change("coc", [MANAGEMENT["id"]])
    assert narrowed.status_code == 409, narrowed.text
    assert "dongthap-ppc.handbook-activities.1 (active: party-cell-activities)" in narrowed.json()["detail"]
    assert change("dongthap-ppc", ["party-cell-activities"]).status_code == 403
    widened = change("coc", ["party-cell-activities", "party-member-statistics"])
    assert widened.status_code == 201, widened.text
    assert widened.json()["type"] == "DatasetPurposesChanged"
    assert change("coc", ["party-member-statistics", "party-cell-activities"]).status_code == 400

    done = CliRunner().invoke(
        gov_commands.app,
        ["set-dataset-purposes", "--dataset", "handbook-activities", "--purposes", "",
         "--reason", "any purpose", "--as", "cpo"],
        env=hub_env(governed),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["type"] == "DatasetPurposesChanged"
    state = governed.governance_state(refresh=True)
    assert state.datasets_["handbook-activities"].purposes == () and state.skipped == []
    refolded = Hub(governed.settings)
    try:
        assert refolded.governance_state().state_hash() == state.state_hash()
    finally:
        refolded.close()
