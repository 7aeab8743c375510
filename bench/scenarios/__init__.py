"""The scenarios, each the hub against the plainest code doing the same visible work.

Every module has ``run(config) -> ScenarioResult``; ``SCENARIOS`` lists them in report order and says
which need a Kafka broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.model import Config, ScenarioResult


@dataclass(frozen=True)
class Scenario:
    id: str
    name: str
    needs_kafka: bool
    module: str

    def runner(self) -> Callable[[Config], ScenarioResult]:
        import importlib

        run: Callable[[Config], ScenarioResult] = importlib.import_module(self.module).run
        return run


SCENARIOS = (
    Scenario("a", "envelope", False, "bench.scenarios.envelope"),
    Scenario("b", "publish", True, "bench.scenarios.publish"),
    Scenario("c", "projection", True, "bench.scenarios.projection"),
    Scenario("d", "query", True, "bench.scenarios.query"),
    Scenario("e", "audit", True, "bench.scenarios.audit"),
    Scenario("f", "site-publish", True, "bench.scenarios.site_publish"),
    Scenario("g", "gateway", True, "bench.scenarios.gateway"),
    Scenario("h", "outbox", True, "bench.scenarios.outbox"),
)
