"""The same refusal of the query API in Vietnamese and in English: ``error`` and ``detail`` stay as they are,
``message`` and Content-Language follow the request's Accept-Language. Against the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.errors import ErrorBody
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from services.refusals import sentence
from tests.conftest import demo_hub

pytestmark = pytest.mark.kafka
RECORDS = "/v1/consumers/dongthap-ppc/datasets/party-members/records"
UNKNOWN = {"Authorization": "Bearer shc_not-a-real-one"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Hub]:
    yield from demo_hub(Path(tmp_path_factory.mktemp("languages")) / "home", kafka_bootstrap)


@pytest.fixture(scope="module")
def api(hub: Hub) -> TestClient:
    return TestClient(create_app(hub))


@pytest.fixture(scope="module")
def dong_thap(hub: Hub) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_credential(hub, 'dongthap-ppc')}"}


@pytest.mark.parametrize(
    ("path", "credential", "code"),
    [
        (RECORDS, False, "not_authenticated"),  # the hub's own refusals (SharehubError)
        (RECORDS.replace("dongthap-ppc", "langson-ppc"), True, "forbidden"),
        ("/v1/no-such-route", False, "not_found"),  # Starlette's
        (RECORDS + "?limit=not-a-number", True, "invalid_request"),  # FastAPI's validation
    ],
)
def test_a_refusal_says_the_same_in_vietnamese_and_english(
    api: TestClient, dong_thap: dict[str, str], path: str, credential: bool, code: str
) -> None:
    headers = dong_thap if credential else UNKNOWN
    vi = api.get(path, headers={**headers, "Accept-Language": "vi-VN"})
    en = api.get(path, headers={**headers, "Accept-Language": "en-GB;q=0.9, vi;q=0.1"})
    assert vi.status_code == en.status_code >= 400
    assert vi.json()["error"] == en.json()["error"] == code and vi.json()["detail"] == en.json()["detail"]
    assert (vi.json()["message"], vi.headers["content-language"]) == (sentence(code, "vi"), "vi")
    assert (en.json()["message"], en.headers["content-language"]) == (sentence(code, "en"), "en")
    assert vi.json()["message"] != en.json()["message"] and "accept-language" in vi.headers["vary"].lower()


def test_a_body_past_the_limit_is_refused_in_the_callers_language(api: TestClient, hub: Hub) -> None:
    too_large = b"{" + b" " * hub.settings.api_max_body + b"}"
    answer = api.post("/v1/governance/agreements", content=too_large, headers={"Accept-Language": "vi"})
    assert answer.status_code == 413 and answer.json()["error"] == "too_large"
    assert answer.json()["message"] == "yêu cầu quá lớn" and answer.headers["content-language"] == "vi"


def test_the_openapi_document_describes_the_message(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()["components"]["schemas"]["ErrorBody"]
    assert "message" in schema["properties"] and "message" not in schema.get("required", [])
    assert ErrorBody.model_validate({"error": "forbidden", "detail": "d"}).message is None
