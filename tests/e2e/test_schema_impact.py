"""``sharehub gov impact`` against the real broker: a schema version weighed against the demo's agreements
before it is registered, and the same version refused by ``register-schema`` over the HTTP API."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from services.api.app import create_app
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.avro import load_schema
from tests.kafka_helpers import sharehub

DATASET = "party-members"


def members_schema(tmp_path: Path, *, drop: str | None = None, secret: str | None = None) -> tuple[Path, Any]:
    raw = copy.deepcopy(load_schema(DATASET).raw)
    raw["fields"] = [f for f in raw["fields"] if f["name"] != drop]
    for field in raw["fields"]:
        if field["name"] == secret:
            field["classification"] = "secret"
    path = tmp_path / "next.avsc"
    path.write_text(json.dumps(raw))
    return path, raw


def test_impact_names_the_agreements_a_version_breaks_and_register_schema_refuses_it(
    hub: Hub, tmp_path: Path
) -> None:
    path, raw = members_schema(tmp_path, drop="commune_code")  # Dong Thap and Lang Son are both granted it
    report = sharehub(hub, "gov", "impact", "--dataset", DATASET, "--schema", str(path), "--json")
    assert report.returncode == 1, report.stderr
    impacts = [json.loads(line) for line in report.stdout.splitlines()]
    assert {(i["agreement"], i["effect"], i["subject"]) for i in impacts} == {
        ("dongthap-ppc.party-members.1", "breaks", "commune_code"),
        ("langson-ppc.party-members.1", "breaks", "commune_code"),
    }

    client = TestClient(create_app(hub))
    headers = {"Authorization": f"Bearer {issue_credential(hub, 'coc')}"}
    refused = client.post(
        "/v1/gov/register-schema", json={"dataset": DATASET, "schema": raw}, headers=headers
    )
    assert refused.status_code == 400, refused.text
    assert "dongthap-ppc.party-members.1" in refused.json()["detail"]
    assert len(hub.governance_state(refresh=True).datasets_[DATASET].schemas) == 1


def test_impact_reports_a_narrowing_and_registering_it_is_allowed(hub: Hub, tmp_path: Path) -> None:
    path, raw = members_schema(tmp_path, secret="full_name")  # granted to Dong Thap (confidential) only
    report = sharehub(hub, "gov", "impact", "--dataset", DATASET, "--schema", str(path), "--json")
    assert report.returncode == 0, report.stdout + report.stderr
    impacts = [json.loads(line) for line in report.stdout.splitlines()]
    assert [(i["agreement"], i["effect"], i["subject"]) for i in impacts] == [
        ("dongthap-ppc.party-members.1", "narrows", "full_name")
    ]
    table = sharehub(hub, "gov", "impact", "--dataset", DATASET, "--schema", str(path))
    assert table.returncode == 0 and "narrows" in table.stdout

    client = TestClient(create_app(hub))
    headers = {"Authorization": f"Bearer {issue_credential(hub, 'coc')}"}
    done = client.post("/v1/gov/register-schema", json={"dataset": DATASET, "schema": raw}, headers=headers)
    assert done.status_code == 201, done.text
    assert len(hub.governance_state(refresh=True).datasets_[DATASET].schemas) == 2


def test_impact_refuses_bad_input_clearly(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "junk.avsc").write_text("{not json")
    for args, words in [
        (["--dataset", "nope", "--schema", str(tmp_path / "junk.avsc")], "no dataset 'nope'"),
        (["--dataset", DATASET, "--schema", str(tmp_path / "junk.avsc")], "not a valid Avro record schema"),
        (["--dataset", DATASET, "--schema", str(tmp_path / "missing.avsc")], "cannot read"),
    ]:
        done = sharehub(hub, "gov", "impact", *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr
