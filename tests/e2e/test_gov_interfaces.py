"""Governance through its two interfaces, the ``sharehub gov`` CLI and the HTTP API, on the real broker.

Every change is made by the agency it is for, authenticated with its own credential (the operator on the
hub's machine by its key); the log on Kafka is the only state, and folding the topic gives the service's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from services.act_signing import seal_request, site_body, with_fixed_times
from services.api.app import create_app
from services.cli.demo_commands import sites_for
from services.gov_operations import parse_request
from services.governance_bootstrap import issue_credential, read_spec
from services.hub import Hub
from sharehub.avro import load_schema
from sharehub.gov import fold
from sharehub.gov.events import parse
from sharehub.settings import Settings
from tests.conftest import DEMO_SPEC
from tests.kafka_helpers import sharehub

pytestmark = pytest.mark.kafka


@pytest.fixture
def bare_hub(tmp_path: Path, kafka_bootstrap: str) -> Iterator[tuple[Hub, Path]]:
    """A home with no governance yet, and the demo spec (own topic prefix) as a file."""
    raw = yaml.safe_load(DEMO_SPEC.read_text(encoding="utf-8"))
    raw["topic_prefix"] = f"t{uuid.uuid4().hex[:10]}"
    spec = tmp_path / "hub.yaml"
    spec.write_text(yaml.safe_dump(raw), encoding="utf-8")
    settings = Settings(home=tmp_path / "home", kafka_bootstrap=kafka_bootstrap, master_key=None)
    hub = Hub(settings)
    yield hub, spec
    hub.close()


def test_apply_shows_a_plan_applies_it_and_then_has_nothing_to_do(bare_hub: tuple[Hub, Path]) -> None:
    hub, spec = bare_hub
    dry = sharehub(hub, "gov", "apply", "--dry-run", str(spec))
    assert dry.returncode == 0, dry.stderr
    assert "+ register agency coc (Central Organization Commission)" in dry.stdout
    assert "+ approve agreement dongthap-ppc.party-members.1 by op" in dry.stdout
    assert "dry run: nothing applied" in dry.stderr
    assert hub.governance_state(refresh=True).head_sequence == 0, "a dry run writes nothing"

    refused = sharehub(hub, "gov", "apply", str(spec))  # no --yes and no terminal: the question is declined
    assert refused.returncode == 1
    assert hub.governance_state(refresh=True).head_sequence == 0
    # No agency but the operator can sign here: the plan is refused as a whole, naming who must sign what.
    unsigned = sharehub(hub, "gov", "apply", "--yes", str(spec))
    assert unsigned.returncode == 2, unsigned.stdout + unsigned.stderr
    assert "coc: consent agreement dongthap-ppc.party-members.1 by coc" in unsigned.stderr
    assert hub.governance_state(refresh=True).head_sequence == 0, "refused before its first change"

    # As in the demo: the hub's own acts, then each agency's site on this machine, then the rest.
    first = len(sites_for(hub, read_spec(spec), read_spec(spec).site_agencies))
    applied = sharehub(hub, "gov", "apply", "--yes", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "+ register site key coc/sign/1 of coc (its signed request)" in applied.stdout
    planned = first + len([line for line in applied.stdout.splitlines() if line[:1] in "+~-"])
    assert f"applied {planned - first} changes" in applied.stderr
    state = hub.governance_state(refresh=True)
    assert state.head_sequence == planned
    assert state.active_agreement("dongthap-ppc", "party-members", dt.datetime.now(dt.UTC)) is not None

    again = sharehub(hub, "gov", "apply", "--yes", str(spec))
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
    assert hub.governance_state(refresh=True).head_sequence == planned

    verified = sharehub(hub, "gov", "verify")
    assert verified.returncode == 0, verified.stderr
    # Each owner's consent is sealed at its site (the operator's own, as owner, needs no seal).
    consents = [e for e in map(parse, hub.log.read_all()) if e.type == "AgreementConsented"]
    by_sites = [e for e in consents if e.actor != "cpo"]
    assert by_sites and all(e.act_seal and e.act_seal.key_id == f"{e.actor}/sign/1" for e in by_sites)
    assert all(e.act_seal is None for e in consents if e.actor == "cpo")
    canonical = json.dumps(state.dump(), sort_keys=True, separators=(",", ":")).encode()
    assert f"{planned} events verify; state sha256 {hashlib.sha256(canonical).hexdigest()}" in verified.stdout


def credential_file(hub: Hub, agency: str, tmp_path: Path) -> str:
    path = tmp_path / f"{agency}.credential"
    path.write_text(issue_credential(hub, agency))
    return str(path)


def test_an_agreement_lifecycle_on_the_command_line(hub: Hub, tmp_path: Path) -> None:
    creds = {a: credential_file(hub, a, tmp_path) for a in ("mcst-pc", "cpo", "op", "go", "dongthap-ppc")}

    def gov(*args: str, who: str) -> tuple[int, str]:
        done = sharehub(hub, "gov", *args, "--as", who, "--credential-file", creds[who])
        return done.returncode, done.stdout + done.stderr

    fields = "resolution_number,task_id,task_title,status"
    code, out = gov(
        "propose", "--id", "mcst.tasks.1", "--consumer", "mcst-pc", "--dataset", "resolution-tasks",
        "--fields", fields, "--purpose", "Follow culture tasks", "--legal-basis", "Regulation 384",
        who="mcst-pc",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out.splitlines()[0])["type"] == "AgreementProposed"
    # resolution-tasks is owned by the Central Party Office: it consents, and may then not approve.
    assert gov("consent", "--agreement-id", "mcst.tasks.1", who="cpo")[0] == 0
    code, out = gov("approve", "--agreement-id", "mcst.tasks.1", who="cpo")
    assert code == 2 and "owns 'resolution-tasks' and may not approve" in out
    code, out = gov("approve", "--agreement-id", "mcst.tasks.1", who="mcst-pc")
    assert code == 2 and "self-approval" in out
    assert gov("approve", "--agreement-id", "mcst.tasks.1", who="op")[0] == 0
    now = dt.datetime.now(dt.UTC)
    assert hub.governance_state(refresh=True).active_agreement("mcst-pc", "resolution-tasks", now) is not None

    assert gov("suspend", "--agreement-id", "mcst.tasks.1", "--reason", "review", who="cpo")[0] == 0
    suspended = hub.governance_state(refresh=True).agreement("mcst.tasks.1")
    assert suspended.status_at(dt.datetime.now(dt.UTC)) == "suspended"
    assert suspended.status_at(now) == "active", "as it stood before the suspension"
    assert gov("resume", "--agreement-id", "mcst.tasks.1", "--reason", "reviewed", who="go")[0] == 0
    assert gov("revoke", "--agreement-id", "mcst.tasks.1", "--reason", "task ended", who="cpo")[0] == 0
    code, out = gov("resume", "--agreement-id", "mcst.tasks.1", "--reason", "again", who="cpo")
    assert code == 2 and "resume when not suspended" in out

    history = sharehub(hub, "gov", "history", "mcst.tasks.1")
    events = [line.split("\t")[2] for line in history.stdout.splitlines()]
    assert events == [
        "AgreementProposed", "AgreementConsented", "AgreementApproved",
        "AgreementSuspended", "AgreementResumed", "AgreementRevoked",
    ]  # fmt: skip


def propose(agreement: str, consumer: str, dataset: str, fields: str, *extra: str) -> list[str]:
    return [
        "propose", "--id", agreement, "--consumer", consumer, "--dataset", dataset, "--fields", fields,
        "--purpose", "p", "--legal-basis", "l", *extra,
    ]  # fmt: skip


PAST = ["--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2021-01-01T00:00:00Z"]
AGENCY = ["--name", "X", "--kind", "state-agency", "--clearance", "public"]


@pytest.mark.parametrize(
    ("who", "args", "message"),
    [
        ("dongthap-ppc", ["register-agency", "--id", "x", *AGENCY], "only the operator 'cpo' may"),
        ("cpo", ["register-agency", "--id", "coc", *AGENCY], "agency 'coc' is already registered"),
        ("dongthap-ppc", propose("d.1", "dongthap-ppc", "weather", "x"), "does not exist"),
        (
            "mcst-pc",
            propose("m.1", "mcst-pc", "party-members", "member_id,full_name"),
            "'full_name' is confidential, above the internal clearance of 'mcst-pc'",
        ),
        ("dongthap-ppc", propose("d.2", "dongthap-ppc", "resolution-tasks", "task_id", *PAST), "in the past"),
        (
            "dongthap-ppc",
            propose("d.4", "dongthap-ppc", "documents", "document_id"),
            "'documents' is top-secret as a whole",
        ),
        (
            "dongthap-ppc",
            propose("d.3", "langson-ppc", "documents", "document_id"),
            "may not propose an agreement for 'langson-ppc'",
        ),
        ("cpo", ["add-key", "--agency", "ghost", "--key-id", "ghost/sign/1"], "unknown agency 'ghost'"),
    ],
)
def test_every_refusal_names_its_reason_and_writes_nothing(
    hub: Hub, tmp_path: Path, who: str, args: list[str], message: str
) -> None:
    creds = ["--credential-file", credential_file(hub, who, tmp_path)]
    before = hub.governance_state(refresh=True).head_sequence
    done = sharehub(hub, "gov", *args, "--as", who, *creds)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert hub.governance_state(refresh=True).head_sequence == before


def test_a_credential_acts_for_its_own_agency_only(hub: Hub, tmp_path: Path) -> None:
    go = credential_file(hub, "go", tmp_path)
    done = sharehub(hub, "gov", "consent", "--agreement-id", "x", "--as", "coc", "--credential-file", go)
    assert done.returncode == 1 and "the credential is 'go''s, not 'coc''s" in done.stderr
    nothing = sharehub(hub, "gov", "consent", "--agreement-id", "x", "--as", "coc")
    assert nothing.returncode == 1 and "needs a credential governance issued to 'coc'" in nothing.stderr


def test_the_http_api_performs_operations_as_the_credentials_agency(hub: Hub) -> None:
    client = TestClient(create_app(hub))

    def as_(agency: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_credential(hub, agency)}"}

    body = {
        "id": "ona.tasks.1",
        "consumer": "ona",
        "dataset": "resolution-tasks",
        "fields": ["task_id", "status"],
        "purpose": "Supervision",
        "legal_basis": "Regulation 384",
        "row_filter": 'status == "OVERDUE"',
    }
    assert client.post("/v1/gov/propose", json=body).status_code == 401
    assert client.post("/v1/gov/propose", json=body, headers=as_("go")).status_code == 403
    made = client.post("/v1/gov/propose", json=body, headers=as_("ona"))
    assert made.status_code == 201, made.text
    assert made.json()["type"] == "AgreementProposed" and made.json()["actor"] == "ona"
    again = client.post("/v1/gov/propose", json=body, headers=as_("ona"))
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    step = {"agreement_id": "ona.tasks.1"}
    assert client.post("/v1/gov/approve", json=step, headers=as_("go")).status_code == 409  # not consented
    assert client.post("/v1/gov/consent", json=step, headers=as_("cpo")).status_code == 201
    assert client.post("/v1/gov/approve", json=step, headers=as_("go")).status_code == 201
    history = client.get("/v1/gov/agreements/ona.tasks.1/history", headers=as_("ona")).json()
    assert [v["event"] for v in history] == ["AgreementProposed", "AgreementConsented", "AgreementApproved"]
    assert history[-1]["terms"]["row_filter"] == 'status == "OVERDUE"'

    bad = client.post("/v1/gov/propose", json={**body, "id": "ona.tasks.2", "row_filter": "__import__('os')"},
                      headers=as_("ona"))  # fmt: skip
    assert bad.status_code == 400 and "row filter" in bad.json()["detail"]
    typo = client.post("/v1/gov/propose", json={**body, "fieldz": []}, headers=as_("ona"))
    assert typo.status_code == 422 and "fieldz" in typo.json()["detail"]
    assert client.post("/v1/gov/teleport", json={}, headers=as_("ona")).status_code == 404


def test_a_site_signs_its_act_and_the_http_api_only_checks_the_seal(hub: Hub) -> None:
    client = TestClient(create_app(hub))
    headers = {"Authorization": f"Bearer {issue_credential(hub, 'ona')}"}
    body = {
        "id": "ona.tasks.9", "consumer": "ona", "dataset": "resolution-tasks",
        "fields": ["task_id", "status"], "purpose": "Supervision", "legal_basis": "Regulation 384",
    }  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    request = with_fixed_times(parse_request("propose", body), now)
    state = hub.governance_state(refresh=True)
    # ona's key stands in for its site's (the hub holds it in custody here); go's is another agency's.
    seal = seal_request(state, hub.keys.signing_key("ona"), "ona", "propose", request, now)
    signed = site_body(request, seal)
    by_go = site_body(request, dataclasses.replace(seal, key_id=hub.keys.signing_key("go").key_id))

    wrong = client.post("/v1/gov/propose", json=by_go, headers=headers)
    assert wrong.status_code == 403 and "must be signed by a key of 'ona'" in wrong.json()["detail"]
    broken = client.post("/v1/gov/propose", json={**signed, "act_seal": {"key_id": 1}}, headers=headers)
    assert broken.status_code == 422 and "act_seal" in broken.json()["detail"]
    assert hub.governance_state(refresh=True).head_sequence == state.head_sequence, "refusals write nothing"
    made = client.post("/v1/gov/propose", json=signed, headers=headers)
    assert made.status_code == 201, made.text
    event = parse(hub.log.read_all()[-1])
    assert event.act_seal is not None and event.act_seal.json() == signed["act_seal"]


def test_an_incompatible_schema_is_refused_naming_the_field(hub: Hub) -> None:
    client = TestClient(create_app(hub))
    headers = {"Authorization": f"Bearer {issue_credential(hub, 'coc')}"}
    schema = dict(load_schema("party-members").raw)
    schema["fields"] = [
        {**f, "type": "int"} if f["name"] == "full_name" else f for f in schema["fields"]
    ]  # a string field becomes an int: old events cannot be read
    refused = client.post("/v1/gov/register-schema", json={"dataset": "party-members", "schema": schema},
                          headers=headers)  # fmt: skip
    assert refused.status_code == 400, refused.text
    assert "full_name" in refused.json()["detail"]
    assert len(hub.governance_state(refresh=True).datasets_["party-members"].schemas) == 1


def test_rebuilding_from_the_topic_alone_gives_the_services_state(hub: Hub, tmp_path: Path) -> None:
    issue_credential(hub, "dongthap-ppc")
    with hub.governing() as service:
        service.suspend("cpo", "langson-ppc.party-members.1", "audit")
        expected = service.state.dump()
    reader = Hub(hub.settings)  # another process's view: the topic and the pinned key only
    try:
        pinned = reader.anchors
        assert fold(reader.log.read_all(), pinned.trust, pinned.topic_prefix).dump() == expected
        assert reader.governance.dump() == expected
    finally:
        reader.close()
