"""The HTTP API under hostile input: unknown credentials are throttled per source and never re-read the log
twice, bad input is a 4xx with a reason (never a 500), governance is shown on a need-to-know basis with no
credential hashes, and every refusal is in the OpenAPI document. Against the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.auth import FAILURES_ALLOWED, FailedAuthentications
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.gov.views import token_hash
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector

pytestmark = pytest.mark.kafka
RECORDS = "/v1/consumers/dongthap-ppc/datasets/party-members/records"
DATASETS = [
    "citizen-feedback",
    "documents",
    "handbook-activities",
    "handbook-attendance",
    "party-members",
    "resolution-tasks",
]
PURPOSE = {"purpose": "Prepare the congress report"}


@pytest.fixture
def loaded(hub: Hub) -> Hub:
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 4)]))
    return hub


def bearer(hub: Hub, agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_credential(hub, agency)}"}


def test_unknown_credentials_are_throttled_per_source_and_a_known_one_still_passes(loaded: Hub) -> None:
    client = TestClient(create_app(loaded))
    valid, operator = bearer(loaded, "dongthap-ppc"), bearer(loaded, "cpo")
    for n in range(FAILURES_ALLOWED):
        refused = client.get(RECORDS, params=PURPOSE, headers={"Authorization": f"Bearer shc_guess{n}"})
        assert refused.status_code == 401
    throttled = client.get(RECORDS, params=PURPOSE, headers={"Authorization": "Bearer shc_guess-again"})
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_requests"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert client.get(RECORDS, params=PURPOSE, headers=valid).status_code == 200  # same source, known
    metrics = client.get("/metrics", headers=operator).text
    assert f'sharehub_api_auth_failures_total{{reason="unknown_credential"}} {FAILURES_ALLOWED}.0' in metrics
    assert "sharehub_api_auth_throttled_total 1.0" in metrics


def test_a_credential_found_unknown_is_refused_again_without_reading_the_log(loaded: Hub) -> None:
    # A follower that would not read the log again for an hour: only a request can make it read.
    api = Hub(loaded.settings.model_copy(update={"governance_refresh_s": 3600}))
    try:
        client = TestClient(create_app(api))
        unknown = {"Authorization": "Bearer shc_never-issued"}
        read_before = api.governance_read_at
        assert client.get(RECORDS, params=PURPOSE, headers=unknown).status_code == 401
        read_once = api.governance_read_at
        assert read_once > read_before, "the first time, the log is read past the request"
        for _ in range(5):
            assert client.get(RECORDS, params=PURPOSE, headers=unknown).status_code == 401
        assert api.governance_read_at == read_once, "found unknown and nothing changed since: no read"
        # A credential issued elsewhere a moment ago is still found at once (governance changed).
        fresh = {"Authorization": f"Bearer {issue_credential(loaded, 'dongthap-ppc')}"}
        assert client.get(RECORDS, params=PURPOSE, headers=fresh).status_code == 200
    finally:
        api.close()


def test_failed_authentications_are_counted_in_a_sliding_window() -> None:
    now = [100.0]
    failures = FailedAuthentications(allowed=3, window_s=10.0, clock=lambda: now[0])
    for _ in range(3):
        assert failures.retry_after("10.0.0.1") is None
        failures.failed("10.0.0.1")
    assert failures.retry_after("10.0.0.1") == pytest.approx(10.0)
    assert failures.retry_after("10.0.0.2") is None  # per source
    now[0] += 4
    assert failures.retry_after("10.0.0.1") == pytest.approx(6.0)
    now[0] += 6.5
    assert failures.retry_after("10.0.0.1") is None  # the oldest failures left the window


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({"as_of": "9999-12-31T23:59:59-23:59"}, 400, "as_of: out of range"),
        ({"as_of": "0001-01-01T00:00:00+23:59"}, 400, "as_of: out of range"),
        ({"as_of": "1700000000"}, 422, "as_of: not an ISO 8601 time"),
        ({"as_of": "2026-01-31T17:00:00"}, 400, "as_of: give the time zone"),
        ({"purpose": "   "}, 422, "purpose: state why"),
        ({"purpose": " \t x "}, 422, "purpose: state why"),
        ({"limit": "1e9"}, 422, "limit"),
        ({"sort": "-"}, 422, "sort"),
    ],
)
def test_bad_query_input_is_a_clear_4xx(
    loaded: Hub, params: dict[str, str], status: int, reason: str
) -> None:
    client = TestClient(create_app(loaded), raise_server_exceptions=False)
    response = client.get(RECORDS, params={**PURPOSE, **params}, headers=bearer(loaded, "dongthap-ppc"))
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    if set(params) <= {"as_of", "purpose"}:  # the parameters a fetch by key takes too
        one = client.get(
            f"{RECORDS}/PM0000000001", params={**PURPOSE, **params}, headers=bearer(loaded, "dongthap-ppc")
        )
        assert one.status_code == status


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "x\\ud800", "name": "X", "kind": "state-agency", "clearance": "public"}',
        b'{"id": "x", "name": "X", "kind": "state-agency", "clearance": "public", "\\udfff": 1}',
        b'{"id": "x", "name": "\\ud83d", "kind": "state-agency", "clearance": "public"}',
    ],
)
def test_a_lone_surrogate_in_a_governance_request_is_a_422(loaded: Hub, body: bytes) -> None:
    client = TestClient(create_app(loaded), raise_server_exceptions=False)
    headers = {**bearer(loaded, "cpo"), "Content-Type": "application/json"}
    head = loaded.governance_state(refresh=True).head_sequence
    response = client.post("/v1/gov/register-agency", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert "not valid Unicode text" in response.json()["detail"]
    assert loaded.governance_state(refresh=True).head_sequence == head


def test_governance_is_shown_on_a_need_to_know_basis_and_credential_hashes_to_no_one(loaded: Hub) -> None:
    client = TestClient(create_app(loaded))
    tokens = {a: issue_credential(loaded, a) for a in ("dongthap-ppc", "cpo", "op", "mcst-pc")}
    hashes = {token_hash(t) for t in tokens.values()} | set(loaded.governance.token_owners)

    def state(agency: str) -> dict[str, Any]:
        response = client.get("/v1/gov/state", headers={"Authorization": f"Bearer {tokens[agency]}"})
        assert response.status_code == 200
        text = response.text
        assert not any(h in text for h in hashes), f"a credential hash reached {agency}"
        return dict(json.loads(text))

    everything = set(loaded.governance.versions)
    assert set(state("cpo")["agreements"]) == everything  # the operator
    assert set(state("op")["agreements"]) == everything  # a central office: it approves
    assert set(state("dongthap-ppc")["agreements"]) == {
        "dongthap-ppc.party-members.1",
        "dongthap-ppc.handbook-activities.1",
    }
    assert state("dongthap-ppc")["credentials"] == {"dongthap-ppc": 1}
    # Credentials' ids and lifetimes: an agency sees its own, the operator every agency's (never a hash).
    own = state("dongthap-ppc")["credential_lifetimes"]
    assert [r["consumer"] for r in own.values()] == ["dongthap-ppc"]
    assert {r["consumer"] for r in state("cpo")["credential_lifetimes"].values()} >= set(tokens)
    internal = state("mcst-pc")  # cleared for internal data only, owns nothing, holds no agreement
    assert internal["agreements"] == {}
    assert [d["id"] for d in internal["datasets"]] == [d for d in DATASETS if d != "documents"]  # top-secret
    other = "/v1/gov/agreements/ona.documents.1/history"
    assert client.get(other, headers={"Authorization": f"Bearer {tokens['dongthap-ppc']}"}).status_code == 404
    assert client.get(other, headers={"Authorization": f"Bearer {tokens['cpo']}"}).status_code == 200


def test_the_openapi_document_names_every_refusal_in_its_one_shape(loaded: Hub) -> None:
    spec = TestClient(create_app(loaded)).get("/openapi.json").json()
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error", "detail"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            documented = operation["responses"]
            for status in ("400", "401", "403", "404", "422", "429"):
                assert status in documented, f"{method.upper()} {path} does not document {status}"
            body = documented["422"]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}, f"{method.upper()} {path}: 422 body"
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_a_valid_request_is_answered_while_unknown_credentials_wait_for_the_log(loaded: Hub) -> None:
    """Requests with unknown credentials wait for a read of the log without holding a thread: a valid
    request made while 30 of them wait is answered before they are."""
    api = Hub(loaded.settings.model_copy(update={"governance_refresh_s": 3600}))
    app = create_app(api)
    valid = bearer(loaded, "dongthap-ppc")

    async def run() -> tuple[float, list[int]]:
        transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            flood = [
                asyncio.create_task(
                    client.get(RECORDS, params=PURPOSE, headers={"Authorization": f"Bearer shc_flood{n}"})
                )
                for n in range(30)
            ]
            started = time.monotonic()
            answer = await client.get(f"{RECORDS}/PM0000000001", params=PURPOSE, headers=valid)
            took = time.monotonic() - started
            assert answer.status_code == 200
            statuses = [r.status_code for r in await asyncio.gather(*flood)]
            return took, statuses

    try:
        took, statuses = asyncio.run(run())
    finally:
        api.close()
    assert set(statuses) <= {401, 429} and 401 in statuses
    assert took < 5.0  # (not a timing goal: the request is simply not stuck behind the flood)
