"""The chaos scenarios, run by ``python -m bench.chaos [scenario ...]`` (``make chaos``).

Each scenario makes a fresh hub (its own topic prefix and home; SQLite read models, or PostgreSQL on a
server of its own for the scenarios that stop it) on the three-node cluster of ``SHAREHUB_HOME`` /
``SHAREHUB_LOCAL_KAFKA_PORT`` (started if it is not running), starts the supervised projection worker
(``sharehub project``), the query API (``sharehub serve``), the publish load and a query load, injects its
fault, stops the loads, waits for the read models, and prints one line: events acknowledged, found in each
read model, duplicates, lost, the time to recover, whether each read model hashes like a replay of the log,
and how the queries were answered. It fails (exit 1) unless every acknowledged event is found once in every
read model and every query had a result or a 503 (never a 500, never no answer).
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bench.chaos.load import DATASET, PublishLoad, QueryLoad, ReadModelCount, count, wait_projected
from bench.load import free_port, query_api
from services import processes
from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.kafka import client_config
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafkaCluster
from tooling.postgres_local import LocalPostgres

DEMO_SPEC = Path(__file__).resolve().parents[2] / "demo" / "hub.yaml"
CONSUMERS = ["dongthap-ppc", "langson-ppc"]
WARM_UP_S = 8.0


@dataclass(frozen=True)
class Outcome:
    scenario: str
    acknowledged: int
    failed_batches: int
    counts: list[ReadModelCount]
    recovery_s: float
    projected_s: float
    #: Query answers by HTTP status (0: none).
    queries: dict[int, int]

    @property
    def query_errors(self) -> int:
        return sum(n for status, n in self.queries.items() if status not in (200, 503))

    @property
    def ok(self) -> bool:
        counted = all(c.lost == 0 and c.duplicates == 0 and c.hash_matches_replay for c in self.counts)
        return counted and self.query_errors == 0

    def line(self) -> str:
        found = "/".join(str(c.found) for c in self.counts)
        return (
            f"| {self.scenario} | {self.acknowledged} | {found} | "
            f"{sum(c.duplicates for c in self.counts)} | {sum(c.lost for c in self.counts)} | "
            f"{_seconds(self.recovery_s)} | {self.projected_s:.1f} s | "
            f"{'yes' if all(c.hash_matches_replay for c in self.counts) else 'NO'} | {self.failed_batches} | "
            f"{self.queries.get(200, 0)}/{self.queries.get(503, 0)}/{self.query_errors} |"
        )


def _seconds(value: float) -> str:
    return "—" if value != value else f"{value:.1f} s"  # NaN: the scenario has no publishing pause


HEADER = (
    "| scenario | acknowledged | found (dongthap-ppc/langson-ppc) | duplicates | lost | recovery | "
    "read models caught up | state hash = replay | failed batches | queries 200/503/other |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def _hub(cluster: LocalKafkaCluster, home: Path, read_model_url: str | None) -> Hub:
    settings = Settings(
        home=home,
        kafka_bootstrap=cluster.bootstrap,
        kafka_mtls_bootstrap=cluster.mtls_bootstrap,
        kafka_admin_password_file=cluster.admin_password_file,
        kafka_ca_file=cluster.ca_file,
        master_key=None,
        read_model_url=read_model_url,
    )
    hub = Hub(settings)
    spec = read_spec(DEMO_SPEC)
    load(hub.governance_desk(), spec.model_copy(update={"topic_prefix": f"chaos{uuid.uuid4().hex[:8]}",
                                      "custodial": list(spec.site_agencies)}))  # fmt: skip
    return hub


def _env(hub: Hub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    env.update(
        SHAREHUB_HOME=str(hub.home),
        SHAREHUB_KAFKA_BOOTSTRAP=hub.settings.bootstrap,
        SHAREHUB_KAFKA_MTLS_BOOTSTRAP=hub.settings.mtls_bootstrap,
        SHAREHUB_KAFKA_ADMIN_PASSWORD_FILE=str(hub.settings.admin_password_path),
        SHAREHUB_KAFKA_CA_FILE=str(hub.settings.kafka_ca_path),
        SHAREHUB_CACHE_DIR=str(hub.settings.cache_dir),
    )
    if hub.settings.read_model_url:
        env["SHAREHUB_READ_MODEL_URL"] = hub.settings.read_model_url
    return env


@dataclass(frozen=True)
class Stage:
    """What a fault acts on and watches."""

    cluster: LocalKafkaCluster
    hub: Hub
    publishing: PublishLoad
    querying: QueryLoad
    #: The read models' server, for the scenarios that stop it.
    postgres: LocalPostgres | None


def leader_node(hub: Hub) -> int:
    """The node leading partition 0 of the dataset's topic."""
    topic = hub.governance.dataset(DATASET).topic
    metadata = AdminClient(client_config(hub.kafka_admin)).list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[0].leader)


def kill_leader(stage: Stage) -> float:
    node = stage.cluster.node(leader_node(stage.hub))
    pid = node.pid()
    assert pid is not None
    fault = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    time.sleep(20)
    node.start()  # its return: it catches up from the others and leads again
    time.sleep(10)
    return stage.publishing.first_ack_after(fault) or float("nan")


def pause_broker(stage: Stage) -> float:
    node = stage.cluster.node(leader_node(stage.hub))
    pid = node.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)
    fault = time.monotonic()
    try:
        time.sleep(30)
    finally:
        os.killpg(pid, signal.SIGCONT)
    time.sleep(10)
    return stage.publishing.first_ack_after(fault) or float("nan")


def _worker_pid(hub: Hub) -> int | None:
    supervisor = processes.running_pid(hub.home, "projector")
    if supervisor is None:
        return None
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return int(children[0]) if children else None


def kill_worker(stage: Stage, kills: int = 5) -> float:
    """kill -9 of the worker (under its supervisor) ``kills`` times at random moments."""
    rng = random.Random(21)
    killed = 0
    while killed < kills:
        time.sleep(rng.uniform(3.0, 10.0))
        pid = _worker_pid(stage.hub)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return float("nan")


def stop_postgres(stage: Stage, down_s: float = 60.0) -> float:
    """The read models' PostgreSQL stopped for ``down_s`` under the worker and the query API, then started:
    the time from its return to the first query answered with a result."""
    assert stage.postgres is not None
    stage.postgres.stop()
    time.sleep(down_s)
    back = time.monotonic()
    stage.postgres.start()
    time.sleep(10)
    return stage.querying.first_ok_after(back) or float("nan")


@dataclass(frozen=True)
class Scenario:
    fault: Callable[[Stage], float]
    #: Read models on a PostgreSQL server of the scenario's own (else SQLite files).
    postgres: bool = False


SCENARIOS: dict[str, Scenario] = {
    "kill-leader-broker": Scenario(kill_leader),
    "pause-broker-30s": Scenario(pause_broker),
    "kill-worker": Scenario(kill_worker),
    "stop-postgres-60s": Scenario(stop_postgres, postgres=True),
}


def run(cluster: LocalKafkaCluster, name: str, scratch: Path) -> Outcome:
    scenario = SCENARIOS[name]
    postgres = LocalPostgres(free_port()) if scenario.postgres else None
    try:
        url = postgres.start() if postgres is not None else None
        return _run(cluster, name, scenario, url, postgres, scratch)
    finally:
        if postgres is not None:
            postgres.remove()


def _run(
    cluster: LocalKafkaCluster,
    name: str,
    scenario: Scenario,
    read_model_url: str | None,
    postgres: LocalPostgres | None,
    scratch: Path,
) -> Outcome:
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
    hub = _hub(cluster, home, read_model_url)
    env = _env(hub)
    processes.start(hub.home, "projector", ["project"], env=env)
    publishing = PublishLoad(hub)
    try:
        with query_api(env, home / "api.log") as server:
            querying = QueryLoad(hub, server, CONSUMERS[0])
            try:
                publishing.start()
                querying.start()
                time.sleep(WARM_UP_S)
                recovery = scenario.fault(Stage(cluster, hub, publishing, querying, postgres))
                time.sleep(5)
            finally:
                publishing.stop()
                querying.stop()
        projected = wait_projected(hub, CONSUMERS, publishing.acknowledged, timeout=180)
    finally:
        publishing.stop()
        processes.stop(hub.home, "projector")
    counts = [count(hub, consumer, publishing.acknowledged) for consumer in CONSUMERS]
    hub.close()
    return Outcome(name, len(publishing.acknowledged), publishing.failed_batches, counts, recovery, projected,
                   dict(querying.statuses))  # fmt: skip
