"""The gateway's health and readiness: alive while it serves, ready only while its broker answers."""

from __future__ import annotations

from typing import Any, cast

from fastapi.testclient import TestClient

from services.gateway.app import RETRY_READY_S, Gateway, create_gateway
from sharehub.errors import BrokerError


def _gateway(broker_check: Any) -> TestClient:
    unused = cast(Any, None)  # the probes use none of the publishing parts
    return TestClient(
        create_gateway(
            Gateway(
                ingest=unused, credentials=unused, owner=unused, may_seal_for=unused, rate=unused,
                max_body=1024, broker_check=broker_check,
            )
        )
    )  # fmt: skip


def _away() -> None:
    raise BrokerError("no broker at 127.0.0.1:9 answers: timed out")


def test_a_gateway_whose_broker_is_away_is_alive_but_not_ready() -> None:
    client = _gateway(_away)
    assert client.get("/healthz").json() == {"status": "ok"}
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "unavailable",
        "detail": "no broker at 127.0.0.1:9 answers: timed out",
        "message": "a service the hub needs does not answer: try again later",
    }
    assert answer.headers["Retry-After"] == str(RETRY_READY_S)


def test_a_gateway_whose_broker_answers_is_ready() -> None:
    assert _gateway(lambda: None).get("/readyz").json() == {"status": "ready"}
