"""The chaos scenarios, run by ``python -m bench.chaos [scenario ...]`` (``make chaos``).

Each scenario makes a fresh hub (its own topic prefix and home; SQLite read models, or PostgreSQL on a
server of its own for the scenarios that stop it) on the three-node cluster of ``SHAREHUB_HOME`` /
``SHAREHUB_LOCAL_KAFKA_PORT`` (started if it is not running; the partition scenario makes one of its own,
each node in a network namespace), starts the supervised projection worker (``sharehub project``), the
query API (``sharehub serve``), the publish load (the hub's publisher, or the owner's site through the
agency SDK with a key service of the scenario's own) and a query load, injects its
fault, stops the loads, waits for the read models, and prints one line: events acknowledged, found in each
read model, duplicates, lost, the time to recover, whether each read model hashes like a replay of the log,
how the queries were answered, and what ``audit verify`` of the whole log found. It fails (exit 1) unless
every acknowledged event is found once in every read model, every query had a result or a 503 (never a 500,
never no answer) and the audit found nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.faults import CONSUMERS, SCENARIOS, Stage
from bench.chaos.load import PublishLoad, QueryLoad, ReadModelCount, count, wait_projected
from bench.chaos.netns import BrokerNetwork, namespaced
from bench.chaos.site import KeyService, site_publisher
from bench.load import free_port, query_api
from services import processes
from services.audit import audit_verify
from services.governance_bootstrap import load, read_spec
from services.hub import Hub
from sharehub.settings import Settings
from tooling.kafka_local import LocalKafkaCluster
from tooling.postgres_local import LocalPostgres

DEMO_SPEC = Path(__file__).resolve().parents[2] / "demo" / "hub.yaml"
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
    #: What ``audit verify`` of the hub's whole log found afterwards (each a finding).
    audit_findings: int

    @property
    def query_errors(self) -> int:
        return sum(n for status, n in self.queries.items() if status not in (200, 503))

    @property
    def ok(self) -> bool:
        counted = all(c.lost == 0 and c.duplicates == 0 and c.hash_matches_replay for c in self.counts)
        return counted and self.query_errors == 0 and self.audit_findings == 0

    def line(self) -> str:
        found = "/".join(str(c.found) for c in self.counts)
        return (
            f"| {self.scenario} | {self.acknowledged} | {found} | "
            f"{sum(c.duplicates for c in self.counts)} | {sum(c.lost for c in self.counts)} | "
            f"{_seconds(self.recovery_s)} | {self.projected_s:.1f} s | "
            f"{'yes' if all(c.hash_matches_replay for c in self.counts) else 'NO'} | {self.failed_batches} | "
            f"{self.queries.get(200, 0)}/{self.queries.get(503, 0)}/{self.query_errors} | "
            f"{self.audit_findings} |"
        )


def _seconds(value: float) -> str:
    return "—" if value != value else f"{value:.1f} s"  # NaN: the scenario has no publishing pause


HEADER = (
    "| scenario | acknowledged | found (dongthap-ppc/langson-ppc) | duplicates | lost | recovery | "
    "read models caught up | state hash = replay | failed batches | queries 200/503/other | "
    "audit findings |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
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


#: The size of the read models' own volume in the full-disk scenario.
SMALL_DISK_MB = 256
#: The key service of the scenarios that publish from the owner's site listens this far above the cluster's
#: base port (its nodes take the 9 ports from it).
KEY_SERVICE_PORT_OFFSET = 20
#: The cluster of a scenario that has one of its own (namespaced nodes) takes its 9 ports from this far above.
OWN_CLUSTER_PORT_OFFSET = 9


def _namespaced_cluster(
    shared: LocalKafkaCluster, home: Path, cleanup: contextlib.ExitStack
) -> tuple[LocalKafkaCluster, BrokerNetwork]:
    """A three-node cluster of the scenario's own in ``home``, each node in a network namespace of its own;
    stopped, and its namespaces removed, by ``cleanup``."""
    port = shared.port + OWN_CLUSTER_PORT_OFFSET
    network = cleanup.enter_context(namespaced(BrokerNetwork.for_port(port)))
    cache = shared.nodes[0].cache_dir
    cluster = LocalKafkaCluster(home, cache, port, 3, hosts=network.hosts, netns=network.namespaces)
    cleanup.callback(cluster.stop)
    print(f"chaos: the scenario's own cluster at {cluster.start()}", file=sys.stderr)
    return cluster, network


def run(shared: LocalKafkaCluster, name: str, scratch: Path) -> Outcome:
    scenario = SCENARIOS[name]
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
    read_model_dir = home / "readmodels"  # where a hub keeps its SQLite read models
    with contextlib.ExitStack() as cleanup:
        cluster, network = shared, None
        if scenario.cluster == "namespaced":
            cluster, network = _namespaced_cluster(shared, home / "cluster", cleanup)
        postgres = None
        if scenario.read_models == "postgres":
            postgres = LocalPostgres(free_port())
            cleanup.callback(postgres.remove)
        elif scenario.read_models == "small-disk":
            cleanup.enter_context(tmpfs(read_model_dir, SMALL_DISK_MB))
        hub = _hub(cluster, home, postgres.start() if postgres is not None else None)
        cleanup.callback(hub.close)
        env = _env(hub)
        # A worker killed is restarted within 2 s, however often (the default pause grows to a minute).
        processes.start(hub.home, "projector", ["project", "--max-pause", "2"], env=env)
        cleanup.callback(processes.stop, hub.home, "projector")
        key_service = None
        if scenario.publisher == "site":
            key_service = KeyService(hub, cluster.port + KEY_SERVICE_PORT_OFFSET, env)
            key_service.start()
            cleanup.callback(key_service.stop)
        publishing = PublishLoad(hub, site_publisher(hub, key_service) if key_service else None)
        cleanup.callback(publishing.stop)
        with query_api(env, home / "api.log") as server:
            querying = QueryLoad(hub, server, CONSUMERS[0])
            try:
                publishing.start()
                querying.start()
                time.sleep(WARM_UP_S)
                stage = Stage(
                    cluster, hub, publishing, querying, postgres, read_model_dir, key_service, network
                )
                recovery = scenario.fault(stage)
                time.sleep(5)
            finally:
                publishing.stop()
                querying.stop()
        projected = wait_projected(hub, CONSUMERS, publishing.acknowledged, timeout=180)
        processes.stop(hub.home, "projector")  # counted at rest
        counts = [count(hub, consumer, publishing.acknowledged) for consumer in CONSUMERS]
        audited = audit_verify(hub.kafka, hub.governance, quarantine=True)
    return Outcome(name, len(publishing.acknowledged), publishing.failed_batches, counts, recovery, projected,
                   dict(querying.statuses), len(audited.findings))  # fmt: skip


@contextlib.contextmanager
def tmpfs(path: Path, megabytes: int) -> Iterator[None]:
    """A tmpfs volume of ``megabytes`` mounted at ``path`` (root only: the scenario says so otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={megabytes}m,mode=0700"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        raise SystemExit(f"chaos: a volume of its own needs root (mount: {mounted.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
