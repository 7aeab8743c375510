"""The faults of the chaos scenarios (:mod:`bench.chaos.runner` runs them): each acts on a running hub under
load and returns the time it took to recover (NaN where the scenario has no pause to measure)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bench.chaos.load import DATASET, PublishLoad, QueryLoad, read_model_members
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


def _rows(hub: Hub) -> int:
    return sum(len(read_model_members(hub, consumer)) for consumer in CONSUMERS)


@dataclass(frozen=True)
class Scenario:
    fault: Callable[[Stage], float]
    #: Where the read models live: "sqlite" files in the hub's home, "postgres" on a server of the
    #: scenario's own, or "small-disk": SQLite files on a volume of SMALL_DISK_MB of their own.
    read_models: str = "sqlite"


SCENARIOS: dict[str, Scenario] = {
    "kill-leader-broker": Scenario(kill_leader),
    "pause-broker-30s": Scenario(pause_broker),
    "kill-worker": Scenario(kill_worker),
    "kill-worker-100": Scenario(kill_worker_100),
    "stop-postgres-60s": Scenario(stop_postgres, read_models="postgres"),
    "full-disk-30s": Scenario(fill_disk, read_models="small-disk"),
}
