"""A refused governance request changes nothing: not the governance log, not the key store, not the broker.

Decide first, then act, in one transaction (sharehub.gov.service): what an operation does beyond the log,
such as keeping a key pair the hub made, runs only after every rule passed, and is kept only once the log
holds the event. Against the real broker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.app import create_app
from services.gov_operations import OPERATIONS, Caller, perform
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.errors import BrokerError, NotPermitted
from sharehub.gov.credentials import credential_id
from sharehub.gov.key_request import make_key_request
from sharehub.keys import SigningKey
from tests.e2e.test_gov_interfaces import credential_file
from tests.gov_snapshot import snapshot
from tests.kafka_helpers import sharehub
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka

AGENCIES = ["cpo", "coc", "op", "ona", "go", "dongthap-ppc", "langson-ppc", "thainguyen-ppc", "mcst-pc"]
CENTRAL_OFFICES = {"cpo", "op", "ona", "go"}
OWNER = {"party-members": "coc", "handbook-activities": "coc", "documents": "cpo", "resolution-tasks": "cpo",
         "citizen-feedback": "go"}  # fmt: skip
KEY_FIELD = {"party-members": "member_id", "documents": "document_id", "citizen-feedback": "feedback_id"}
#: The demo's approved agreements: (id, consumer, dataset, who proposed it).
AGREEMENTS = [
    ("dongthap-ppc.party-members.1", "dongthap-ppc", "party-members"),
    ("ona.documents.1", "ona", "documents"),
    ("ona.citizen-feedback.1", "ona", "citizen-feedback"),
]


def public_hex() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()


def test_an_agency_that_may_not_add_the_operators_key_changes_nothing_and_governance_goes_on(
    hub: Hub, tmp_path: Path
) -> None:
    before = snapshot(hub)
    # On the hub's own machine, where the CLI makes the key pair when no public key is given.
    creds = credential_file(hub, "dongthap-ppc", tmp_path)
    after_credential = snapshot(hub)
    refused = sharehub(
        hub, "gov", "add-key", "--as", "dongthap-ppc", "--credential-file", creds,
        "--agency", "cpo", "--key-id", "cpo/sign/evil",
    )  # fmt: skip
    assert refused.returncode == 2 and "'dongthap-ppc' may not add keys of 'cpo'" in refused.stderr
    assert snapshot(hub) == after_credential
    # Over HTTP the hub never makes a key pair, and the rules refuse the step before anything is done.
    client = TestClient(create_app(hub))
    auth = {"Authorization": f"Bearer {issue_credential(hub, 'dongthap-ppc')}"}
    unchanged = snapshot(hub)
    no_key = client.post("/v1/gov/add-key", json={"agency": "cpo", "key_id": "cpo/sign/evil"}, headers=auth)
    assert no_key.status_code == 400 and "public_key: required" in no_key.json()["detail"]
    evil = {"agency": "cpo", "key_id": "cpo/sign/evil", "public_key": public_hex()}
    assert client.post("/v1/gov/add-key", json=evil, headers=auth).status_code == 403
    # A key id of another kind's namespace (a data key's) is refused, and data keys still rotate.
    claim = {"agency": "dongthap-ppc", "key_id": "party-members/data/2", "public_key": public_hex()}
    claimed = client.post("/v1/gov/add-key", json=claim, headers=auth)
    assert claimed.status_code == 400 and "must be 'dongthap-ppc/sign/LABEL'" in claimed.json()["detail"]
    assert snapshot(hub) == unchanged
    assert before.log != unchanged.log  # (the credentials are events: the snapshots do see the log)

    # Governance goes on: the operator signs the next change, the owner publishes, keys rotate.
    issue_credential(hub, "langson-ppc")
    report = hub.publisher("coc", "party-members").publish_records(list(generate_party_members(3, seed=5)))
    assert report.published == 3
    rotated = sharehub(hub, "keys", "rotate", "--dataset", "party-members")
    assert rotated.returncode == 0 and rotated.stdout.strip() == "party-members/data/2", rotated.stderr


@pytest.mark.parametrize(
    ("key_id", "public_key", "valid_from", "message"),
    [
        ("coc/sign/2", "00" * 32, None, "a point of small order"),
        ("coc/sign/2", "01" + "00" * 31, None, "a point of small order"),
        ("coc/sign/2", "ff" * 32, None, "not in canonical form"),
        ("coc/sign/\x00", None, None, "must be 'coc/sign/LABEL'"),
        ("cpo/sign/2", None, None, "must be 'coc/sign/LABEL'"),
        ("coc/sign/2", None, "1653-01-01T00:00:00+00:00", "is before 'coc' was registered"),
    ],
)
def test_a_key_that_could_not_be_trusted_is_refused(
    hub: Hub, key_id: str, public_key: str | None, valid_from: str | None, message: str
) -> None:
    client = TestClient(create_app(hub))
    auth = {"Authorization": f"Bearer {issue_credential(hub, 'coc')}"}
    body: dict[str, Any] = {"agency": "coc", "key_id": key_id, "public_key": public_key or public_hex()}
    if valid_from:
        body["valid_from"] = valid_from
    before = snapshot(hub)
    refused = client.post("/v1/gov/add-key", json=body, headers=auth)
    assert refused.status_code == 400 and message in refused.json()["detail"], refused.text
    assert snapshot(hub) == before


# --- the property: every operation, every agency that may not take it -------------------------------------


def _requests(n: int) -> list[tuple[str, dict[str, Any], set[str]]]:
    """(operation, request body, the agencies that may take it): valid requests, so the actor is the only
    reason one could be refused. ``n`` keeps new ids new."""
    cases: list[tuple[str, dict[str, Any], set[str]]] = []
    agency = {"name": "X", "kind": "state-agency", "clearance": "internal"}
    cases.append(("register-agency", {"id": f"new-{n}", **agency}, {"cpo"}))
    dataset = {"id": f"set-{n}", "owner": "coc", "classification": "internal", "key_field": "id"}
    cases.append(("declare-dataset", dataset, {"cpo"}))
    cases.append(("issue-credential", {"agency": "ona", "sha256": f"{n:064x}"}, {"cpo"}))
    term = {"id": f"term-{n}", "label_vi": "Mục đích", "label_en": "Purpose"}
    cases.append(("define-purpose", term, {"cpo"}))
    cases.append(("define-legal-basis", {**term, "reference": "Regulation 384"}, {"cpo"}))
    # The operator is asked first: a term that is not there is not why these are refused.
    cases.append(("retire-purpose", {"id": f"term-{n}", "reason": "r"}, {"cpo"}))
    cases.append(("retire-legal-basis", {"id": f"term-{n}", "reason": "r"}, {"cpo"}))
    for target in AGENCIES:
        may = {target, "cpo"}
        cases.append(("add-key", {"agency": target, "key_id": f"{target}/sign/a{n}"}, may))
        cases.append(
            ("add-key", {"agency": target, "key_id": f"{target}/sign/b{n}", "public_key": public_hex()}, may)
        )
        rotate = {"agency": target, "old_key_id": f"{target}/sign/1", "new_key_id": f"{target}/sign/r{n}"}
        cases.append(("rotate-key", rotate, may))
        cases.append(("revoke-key", {"agency": target, "key_id": f"{target}/sign/1", "reason": "lost"}, may))
        request = make_key_request(
            SigningKey(f"{target}/sign/s{n}", Ed25519PrivateKey.generate()),
            agency=target,
            valid_from=dt.datetime.now(dt.UTC),
        )  # proves possession: only the actor can be why it is refused
        cases.append(("register-key", request.model_dump(mode="json"), may))
        held = credential_id(_held_credential(target))
        cases.append(("revoke-credential", {"credential_id": held, "reason": "leaked"}, may))
        cases.append(("rotate-credential", {"credential_id": held, "sha256": f"{n:064x}"}, {"cpo"}))
    for dataset_id, owner in OWNER.items():
        schema = {
            "type": "record",
            "name": "R",
            "fields": [{"name": "id", "type": "string", "classification": "internal"}],
        }
        cases.append(("register-schema", {"dataset": dataset_id, "schema": schema}, {owner, "cpo"}))
        purposes = {"dataset": dataset_id, "purposes": ["party-cell-activities"], "reason": "r"}
        cases.append(("set-dataset-purposes", purposes, {owner, "cpo"}))
        retention = {"dataset": dataset_id, "retention_ms": 86_400_000, "reason": "r"}
        cases.append(("set-dataset-retention", retention, {owner, "cpo"}))
    for consumer in AGENCIES:
        for dataset_id, key_field in KEY_FIELD.items():
            if consumer == OWNER[dataset_id]:
                continue
            proposal = {"id": f"{consumer}.{dataset_id}.{n}", "consumer": consumer, "dataset": dataset_id,
                        "fields": [key_field], "purpose": "p", "legal_basis": "l"}  # fmt: skip
            cases.append(("propose", proposal, {consumer, OWNER[dataset_id], "cpo"}))
    for agreement_id, consumer, dataset_id in AGREEMENTS:
        owner = OWNER[dataset_id]
        step = {"agreement_id": agreement_id}
        cases.append(("consent", step, {owner}))
        # Approvers are central offices that are none of the parties (who proposed it: the consumer).
        cases.append(("approve", step, CENTRAL_OFFICES - {consumer, owner}))
        for verb in ("suspend", "resume", "revoke"):
            cases.append((verb, {**step, "reason": "audit"}, CENTRAL_OFFICES | {owner}))
    return cases


def _held_credential(agency: str) -> str:
    """The SHA-256 of a credential ``agency`` holds in the property's hub (see :func:`_issue_held`)."""
    return hashlib.sha256(f"held by {agency}".encode()).hexdigest()


def _issue_held(hub: Hub) -> None:
    """Every agency holds a credential, so that only the actor can be why its revocation or rotation is
    refused."""
    with hub.governing() as service:
        for agency in AGENCIES:
            if service.state.credential(_held_credential(agency)) is None:
                service.issue_credential("cpo", agency, _held_credential(agency))


@st.composite
def refused_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    n = draw(st.integers(min_value=0, max_value=10**6))
    operation, body, may = draw(st.sampled_from(_requests(n)))
    actor = draw(st.sampled_from(sorted(set(AGENCIES) - may)))
    return operation, body, actor


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=refused_requests())
def test_every_operation_refused_to_an_agency_that_may_not_take_it_changes_nothing(
    hub: Hub, case: tuple[str, dict[str, Any], str]
) -> None:
    operation, body, actor = case
    kind, _ = OPERATIONS[operation]
    request = kind.model_validate(body)
    _issue_held(hub)
    before = snapshot(hub)
    with pytest.raises(NotPermitted):
        # As on the hub's own machine: the operations that may make a key pair would make one here.
        perform(hub.governance_desk(), Caller(actor, local=True), operation, request)
    assert snapshot(hub) == before


def test_the_property_covers_every_operation() -> None:
    assert {operation for operation, _, _ in _requests(0)} == set(OPERATIONS)


def test_a_change_whose_event_the_log_does_not_take_keeps_no_key(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules accept it, the key pair is made, the write to the log fails: the key store keeps nothing."""

    def unwritable(_event: object) -> None:
        raise BrokerError("the broker did not take the event")

    before = snapshot(hub)
    kind, run = OPERATIONS["add-key"]
    request = kind.model_validate({"agency": "coc", "key_id": "coc/sign/9"})
    with hub.governing() as service:
        monkeypatch.setattr(service._log, "append", unwritable)
        with pytest.raises(BrokerError):
            run(hub.keys, service, Caller("cpo", local=True), request)
    assert snapshot(hub) == before
    assert not hub.keys.has("coc/sign/9", "signing")


def test_key_ids_are_scoped_by_kind_in_the_key_store(offline_hub: Hub) -> None:
    keys = offline_hub.keys
    keys.add_signing_key("coc", "party-members/data/7", Ed25519PrivateKey.generate())
    keys.create_data_key("party-members", "party-members/data/7")  # the same id, another kind: no clash
    assert keys.has("party-members/data/7", "signing") and keys.has("party-members/data/7", "data")
    assert keys.current_data_key_id("party-members") == "party-members/data/7"
    assert keys.signing_key("coc").key_id == "party-members/data/7"


@pytest.mark.parametrize(("consumer", "refused"), [("dongthap-ppc", True), ("mcst-pc", True), ("op", False)])
def test_a_top_secret_dataset_is_shared_only_with_an_agency_cleared_for_top_secret(
    hub: Hub, consumer: str, refused: bool
) -> None:
    client = TestClient(create_app(hub))
    auth = {"Authorization": f"Bearer {issue_credential(hub, consumer)}"}
    proposal = {
        "id": f"{consumer}.documents.numbers",
        "consumer": consumer,
        "dataset": "documents",
        "fields": ["document_id", "document_number"],
        "purpose": "Registry",
        "legal_basis": "Art. 5",
    }
    before = snapshot(hub)
    answer = client.post("/v1/gov/propose", json=proposal, headers=auth)
    if refused:  # internal fields only, and still refused: the dataset is top-secret as a whole
        assert answer.status_code == 400 and "'documents' is top-secret as a whole" in answer.json()["detail"]
        assert snapshot(hub) == before
    else:
        assert answer.status_code == 201, answer.text
