"""The chaos scenarios, run by ``python -m bench.chaos [scenario ...]`` (``make chaos``).

Each scenario makes a fresh hub (its own topic prefix and home, SQLite read models) on the three-node
cluster of ``SHAREHUB_HOME`` / ``SHAREHUB_LOCAL_KAFKA_PORT`` (started if it is not running), starts the
supervised projection worker (``sharehub project``) and the publish load, injects its fault, stops the load,
waits for the read models, and prints one line: events acknowledged, found in each read model, duplicates,
lost, the time to recover, and whether each read model hashes like a replay of the log. It fails (exit 1)
unless every acknowledged event is found once in every read model.
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

from bench.chaos.load import DATASET, PublishLoad, ReadModelCount, count, wait_projected
from services import processes
from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.kafka import client_config
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafkaCluster

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

    @property
    def ok(self) -> bool:
        return all(c.lost == 0 and c.duplicates == 0 and c.hash_matches_replay for c in self.counts)

    def line(self) -> str:
        found = "/".join(str(c.found) for c in self.counts)
        return (
            f"| {self.scenario} | {self.acknowledged} | {found} | "
            f"{sum(c.duplicates for c in self.counts)} | {sum(c.lost for c in self.counts)} | "
            f"{_seconds(self.recovery_s)} | {self.projected_s:.1f} s | "
            f"{'yes' if all(c.hash_matches_replay for c in self.counts) else 'NO'} | {self.failed_batches} |"
        )


def _seconds(value: float) -> str:
    return "—" if value != value else f"{value:.1f} s"  # NaN: the scenario has no publishing pause


HEADER = (
    "| scenario | acknowledged | found (dongthap-ppc/langson-ppc) | duplicates | lost | recovery | "
    "read models caught up | state hash = replay | failed batches |\n|---|---|---|---|---|---|---|---|---|"
)


def _hub(cluster: LocalKafkaCluster, home: Path) -> Hub:
    settings = Settings(
        home=home,
        kafka_bootstrap=cluster.bootstrap,
        kafka_mtls_bootstrap=cluster.mtls_bootstrap,
        kafka_admin_password_file=cluster.admin_password_file,
        kafka_ca_file=cluster.ca_file,
        master_key=None,
        read_model_url=None,
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
    return env


def leader_node(hub: Hub) -> int:
    """The node leading partition 0 of the dataset's topic."""
    topic = hub.governance.dataset(DATASET).topic
    metadata = AdminClient(client_config(hub.kafka_admin)).list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[0].leader)


def kill_leader(cluster: LocalKafkaCluster, hub: Hub, load: PublishLoad) -> float:
    node = cluster.node(leader_node(hub))
    pid = node.pid()
    assert pid is not None
    fault = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    time.sleep(20)
    node.start()  # its return: it catches up from the others and leads again
    time.sleep(10)
    return load.first_ack_after(fault) or float("nan")


def pause_broker(cluster: LocalKafkaCluster, hub: Hub, load: PublishLoad) -> float:
    node = cluster.node(leader_node(hub))
    pid = node.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)
    fault = time.monotonic()
    try:
        time.sleep(30)
    finally:
        os.killpg(pid, signal.SIGCONT)
    time.sleep(10)
    return load.first_ack_after(fault) or float("nan")


def _worker_pid(hub: Hub) -> int | None:
    supervisor = processes.running_pid(hub.home, "projector")
    if supervisor is None:
        return None
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return int(children[0]) if children else None


def kill_worker(_cluster: LocalKafkaCluster, hub: Hub, _load: PublishLoad, kills: int = 5) -> float:
    """kill -9 of the worker (under its supervisor) ``kills`` times at random moments."""
    rng = random.Random(21)
    killed = 0
    while killed < kills:
        time.sleep(rng.uniform(3.0, 10.0))
        pid = _worker_pid(hub)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return float("nan")


SCENARIOS: dict[str, Callable[[LocalKafkaCluster, Hub, PublishLoad], float]] = {
    "kill-leader-broker": kill_leader,
    "pause-broker-30s": pause_broker,
    "kill-worker": kill_worker,
}


def run(cluster: LocalKafkaCluster, name: str, scratch: Path) -> Outcome:
    hub = _hub(cluster, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch)))
    processes.start(hub.home, "projector", ["project"], env=_env(hub))
    load = PublishLoad(hub)
    try:
        load.start()
        time.sleep(WARM_UP_S)
        recovery = SCENARIOS[name](cluster, hub, load)
        time.sleep(5)
        load.stop()
        projected = wait_projected(hub, CONSUMERS, load.acknowledged, timeout=180)
    finally:
        load.stop()
        processes.stop(hub.home, "projector")
    counts = [count(hub, consumer, load.acknowledged) for consumer in CONSUMERS]
    hub.close()
    return Outcome(name, len(load.acknowledged), load.failed_batches, counts, recovery, projected)
