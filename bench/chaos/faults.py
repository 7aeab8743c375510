"""The faults of the chaos scenarios (:mod:`bench.chaos.runner` runs them): each acts on a running hub under
load and returns the time it took to recover (NaN where the scenario has no pause to measure)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bench.chaos.load import DATASET, PublishLoad, QueryLoad, read_model_members
from bench.chaos.netns import BrokerNetwork
from bench.chaos.site import KeyService
from services import processes
from services.hub import Hub
from sharehub.kafka import client_config
from tooling.kafka_local import LocalKafkaCluster
from tooling.postgres_local import LocalPostgres

#: The consumers whose read models hold the dataset (the demo's).
CONSUMERS = ["dongthap-ppc", "langson-ppc"]


@dataclass(frozen=True)
class Stage:
    """What a fault acts on and watches."""

    cluster: LocalKafkaCluster
    hub: Hub
    publishing: PublishLoad
    querying: QueryLoad
    #: The read models' server, for the scenarios that stop it.
    postgres: LocalPostgres | None
    #: Where the SQLite read models are (a small volume of their own in the full-disk scenario).
    read_model_dir: Path
    #: The key service the owner's site publishes with, for the scenarios that publish from the site.
    key_service: KeyService | None = None
    #: The namespaces of the cluster's nodes, for the scenarios that cut one off.
    network: BrokerNetwork | None = None


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


def kill_worker(stage: Stage, kills: int = 5, apart_s: tuple[float, float] = (3.0, 10.0)) -> float:
    """kill -9 of the worker (under its supervisor) ``kills`` times at random moments ``apart_s`` apart
    (from the moment the supervisor has a worker running: starting, reading or writing)."""
    rng = random.Random(21)
    killed = 0
    while killed < kills:
        time.sleep(rng.uniform(*apart_s))
        pid = _worker_pid(stage.hub)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return float("nan")


def kill_worker_100(stage: Stage) -> float:
    """The worker killed 100 times, 0.5 to 6 s apart: most kills land while it starts, rebalances or
    resumes from the read models' positions, some in the middle of a batch."""
    return kill_worker(stage, kills=100, apart_s=(0.5, 6.0))


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


def fill_disk(stage: Stage, full_s: float = 30.0) -> float:
    """The read models' volume filled to its last byte for ``full_s`` (another file taking the space), then
    freed: the time from freeing it to the first batch applied after (the read models' rows grow)."""
    filler = stage.read_model_dir / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:  # until "No space left on device"
            out.write(b"\0" * 1_048_576)
            out.flush()
    time.sleep(full_s)
    before = _rows(stage.hub)
    freed = time.monotonic()
    filler.unlink()
    while _rows(stage.hub) == before and time.monotonic() - freed < 120:
        time.sleep(0.2)
    return time.monotonic() - freed


def stop_key_service(stage: Stage, down_s: float = 60.0) -> float:
    """The key service the owner's site takes its keys from killed (SIGKILL, a request in flight lost with
    it) for ``down_s``, then started again at the same address: the time from its answering again to the
    first batch acknowledged after it. The site's publisher waits meanwhile (every batch brings new
    subjects, whose keys only the key service gives); the worker takes its keys from the hub's own key
    store, not over this wire."""
    assert stage.key_service is not None
    stage.key_service.kill()
    gone = time.monotonic()
    time.sleep(down_s)
    started = time.monotonic()
    stage.key_service.start()
    back = time.monotonic()
    meanwhile = sum(1 for t in stage.publishing.ack_times if gone < t < back)
    print(f"chaos: key-service-down-60s: away {back - gone:.1f} s in all (answering {back - started:.1f} s "
          f"after its start); batches acknowledged meanwhile: {meanwhile}", file=sys.stderr)  # fmt: skip
    resumed = stage.publishing.wait_for_ack_after(back, timeout=180)
    time.sleep(10)
    return float("nan") if resumed is None else resumed


def partition_broker(stage: Stage, cut_s: float = 30.0) -> float:
    """The node leading partition 0 cut off from the other nodes and from every client for ``cut_s`` (its
    port of the bridge down), then joined again: the time from the cut to the first batch acknowledged
    after it; when the node was back in every in-sync replica set, and publishing going again, to stderr."""
    assert stage.network is not None
    node = leader_node(stage.hub)
    fault = time.monotonic()
    stage.network.cut(node)
    try:
        moved = _seconds_until_led_elsewhere(stage.hub, node, until=fault + cut_s)
        time.sleep(max(0.0, fault + cut_s - time.monotonic()))
    finally:
        stage.network.heal(node)
    healed = time.monotonic()
    in_sync = _seconds_until_in_sync(stage.hub, timeout=180)
    resumed = stage.publishing.wait_for_ack_after(fault, timeout=180)
    after_heal = "never" if resumed is None else f"{fault + resumed - healed:+.1f} s"
    elsewhere = "not during the cut" if moved is None else f"{moved:.1f} s after the cut"
    print(f"chaos: partition-broker: node {node} cut off for {healed - fault:.1f} s; partition 0 led by "
          f"another node {elsewhere}; node {node} back in every in-sync replica set of the dataset "
          f"{in_sync:.1f} s after joining again; the first batch acknowledged after the cut came "
          f"{after_heal} from the heal", file=sys.stderr)  # fmt: skip
    time.sleep(10)
    return float("nan") if resumed is None else resumed


def _seconds_until_led_elsewhere(hub: Hub, node: int, until: float) -> float | None:
    """Seconds until the other nodes name another leader of partition 0 (asked each second until the
    monotonic moment ``until``); None: not before then."""
    started = time.monotonic()
    while time.monotonic() < until:
        with contextlib.suppress(KafkaException, KeyError):
            if leader_node(hub) not in (node, -1):
                return time.monotonic() - started
        time.sleep(1.0)
    return None


def _seconds_until_in_sync(hub: Hub, timeout: float) -> float:
    """Seconds until every partition of the dataset's topic has all its replicas in sync (NaN: never)."""
    topic = hub.governance.dataset(DATASET).topic
    admin = AdminClient(client_config(hub.kafka_admin))
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(KafkaException):
            partitions = admin.list_topics(topic, timeout=5).topics[topic].partitions.values()
            if partitions and all(len(p.isrs) == len(p.replicas) for p in partitions):
                return time.monotonic() - started
        time.sleep(0.5)
    return float("nan")


def _rows(hub: Hub) -> int:
    return sum(len(read_model_members(hub, consumer)) for consumer in CONSUMERS)


@dataclass(frozen=True)
class Scenario:
    fault: Callable[[Stage], float]
    #: Where the read models live: "sqlite" files in the hub's home, "postgres" on a server of the
    #: scenario's own, or "small-disk": SQLite files on a volume of SMALL_DISK_MB of their own.
    read_models: str = "sqlite"
    #: Who publishes: the "hub" (the owner's keys in its custody) or the owner's "site" (the agency SDK,
    #: its keys from a key service of the scenario's own).
    publisher: str = "hub"
    #: The cluster: the "shared" one of the run, or "namespaced": one of the scenario's own whose nodes each
    #: run in a network namespace of their own (:mod:`bench.chaos.netns`; root only).
    cluster: str = "shared"


SCENARIOS: dict[str, Scenario] = {
    "kill-leader-broker": Scenario(kill_leader),
    "pause-broker-30s": Scenario(pause_broker),
    "kill-worker": Scenario(kill_worker),
    "kill-worker-100": Scenario(kill_worker_100),
    "stop-postgres-60s": Scenario(stop_postgres, read_models="postgres"),
    "full-disk-30s": Scenario(fill_disk, read_models="small-disk"),
    "key-service-down-60s": Scenario(stop_key_service, publisher="site"),
    "partition-broker": Scenario(partition_broker, cluster="namespaced"),
}
