"""The projection worker's /healthz and /readyz (``sharehub project --health-port``) against the real broker:
not ready while it has not joined its consumer group and heard from its read models, ready once it has,
and the supervised worker's listener answers for each worker it starts."""

from __future__ import annotations

import time

import httpx
import pytest

from services import processes
from services.hub import Hub
from tests.kafka_helpers import free_port, hub_env, wait_until

pytestmark = pytest.mark.kafka


def _probe(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    except httpx.HTTPError:
        return None  # not listening (yet)


def test_the_worker_is_ready_once_assigned_and_its_read_models_answer(hub: Hub) -> None:
    port = free_port()
    _, log = processes.start(hub.home, "projector", ["project", "--health-port", str(port)], env=hub_env(hub))
    try:
        wait_until(lambda: _probe(port, "/healthz") is not None, timeout=60, what="the health port", log=log)
        alive = _probe(port, "/healthz")
        assert alive is not None and (alive.status_code, alive.json()) == (200, {"status": "ok"})
        seen: list[httpx.Response] = []

        def ready() -> bool:
            answer = _probe(port, "/readyz")
            if answer is not None:
                seen.append(answer)
            return answer is not None and answer.status_code == 200

        wait_until(ready, timeout=120, what="the worker ready", log=log)
        assert seen[-1].json() == {"status": "ready"}
        for early in seen[:-1]:  # before: refused with every reason, never a hang or a 500
            assert early.status_code == 503 and early.json()["error"] == "unavailable"
            assert early.headers["retry-after"] and early.json()["detail"]
        unknown = _probe(port, "/metrics")
        assert unknown is not None and unknown.status_code == 404
        started = time.monotonic()
        for _ in range(5):  # stays ready: the broker and read models answer each time
            again = _probe(port, "/readyz")
            assert again is not None and again.status_code == 200, again.text if again else "no answer"
        assert time.monotonic() - started < 30
    finally:
        processes.stop(hub.home, "projector")
    assert _probe(port, "/healthz") is None, "the listener goes with the worker"
