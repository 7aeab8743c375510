"""The projection worker's readiness rules and its probe listener (real HTTP on loopback), with the
worker's state and the broker check given, not patched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from projections.health import RECONCILED_WITHIN_S, HealthListener, Readiness
from sharehub.errors import BrokerError, ConfigurationError


@dataclass
class State:
    restart_reasons: list[str] = field(default_factory=list)
    reconciled_at: float | None = 100.0
    assigned_at: float | None = 100.0


def _broker(answers: bool) -> Callable[[], None]:
    def check() -> None:
        if not answers:
            raise BrokerError("no broker at 127.0.0.1:9 answers: timed out")

    return check


def test_ready_only_when_every_part_answers() -> None:
    now = [101.0]
    state = State()
    readiness = Readiness(state, _broker(True), clock=lambda: now[0])
    assert readiness.not_ready() == [] and readiness.alive() == []
    state.assigned_at = None
    assert readiness.not_ready() == ["no partition assignment from the consumer group yet"]
    state.assigned_at, state.reconciled_at = 100.0, None
    assert readiness.not_ready() == ["the read models have not answered yet"]
    state.reconciled_at = 100.0
    now[0] = 100.0 + RECONCILED_WITHIN_S + 5
    assert readiness.not_ready() == [f"the read models have not answered for {RECONCILED_WITHIN_S + 5:.0f} s"]
    now[0] = 101.0
    assert Readiness(state, _broker(False)).not_ready()[-1].startswith("no broker at")
    state.restart_reasons.append("a new dataset")
    assert readiness.alive() == ["starting over: a new dataset"]
    assert readiness.not_ready()[0] == "starting over: a new dataset"


def test_the_listener_answers_each_probe() -> None:
    state = State(assigned_at=None)
    with HealthListener(Readiness(state, _broker(True), clock=lambda: 101.0), "127.0.0.1", 0) as probes:
        base = f"http://127.0.0.1:{probes.port}"
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        not_ready = httpx.get(base + "/readyz")
        assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "5"
        assert not_ready.json() == {
            "error": "unavailable",
            "detail": "no partition assignment from the consumer group yet",
        }
        state.assigned_at = 100.0
        assert httpx.get(base + "/readyz").json() == {"status": "ready"}
        assert httpx.get(base + "/nothing").status_code == 404


def test_a_taken_port_is_a_configuration_error() -> None:
    with (
        HealthListener(Readiness(State(), _broker(True)), "127.0.0.1", 0) as first,
        pytest.raises(ConfigurationError, match="not free"),
    ):
        HealthListener(Readiness(State(), _broker(True)), "127.0.0.1", first.port)
