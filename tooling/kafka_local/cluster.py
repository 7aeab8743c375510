"""A local KRaft cluster of one or three nodes, each both broker and controller, managed together.

Why every node is also a controller: three voters keep a quorum through the loss of any one node, exactly
the failure the brokers' replication (factor 3, two in sync) is set to survive, with three JVMs instead of
four to six on a small machine; a separate controller would be one more process whose loss alone stops
every metadata change. Node ``n`` keeps its state in ``home/kafka/node-<n>`` (data, logs, its own
certificate of the hub CA, its ``server.properties``); ``home/kafka`` holds what they share: the cluster id,
the super user's and the controller's passwords, and ``cluster.size``, which tells ``stop`` and ``status``
what was started. Ports and addresses: see :mod:`tooling.kafka_local.layout`; with ``netns``, node ``n``
runs in the network namespace ``netns[n - 1]`` (made beforehand, reaching its ``hosts[n - 1]``).

A cluster's nodes can only answer once a majority runs, so ``start`` launches every node first and then
waits for each, and for the metadata to list them all (a topic of replication factor 3 needs three).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from sharehub.errors import BrokerStartError, InputError
from sharehub.kafka import KafkaAccess, client_config
from tooling.kafka_local.broker import POLL_S, START_TIMEOUT_S, BrokerStatus, LocalKafka
from tooling.kafka_local.layout import NodePlace, bootstrap_list, check_cluster_size

SIZE_FILE = "cluster.size"


def recorded_size(home: Path) -> int | None:
    """The size of the cluster last started in ``home``, if one was."""
    try:
        return int((home.expanduser().resolve() / "kafka" / SIZE_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


class LocalKafkaCluster:
    """``count`` local nodes on ports from ``port`` (1 or 3): ``start()``, ``stop()``, ``status()``; each on
    127.0.0.1, or on its own address of ``hosts`` and in its own network namespace of ``netns``."""

    def __init__(
        self,
        home: Path,
        cache_dir: Path,
        port: int,
        count: int = 1,
        *,
        hosts: tuple[str, ...] = (),
        netns: tuple[str, ...] = (),
    ) -> None:
        self.count = check_cluster_size(count)
        self.port = port
        self.hosts = hosts
        self.nodes = [
            LocalKafka(
                home, cache_dir, port, NodePlace(n, count, hosts), netns=netns[n - 1] if netns else None
            )
            for n in range(1, count + 1)
        ]
        self.state_dir = self.nodes[0].shared_dir
        self.ca_file = self.nodes[0].ca_file
        self.admin_password_file = self.nodes[0].admin_password_file

    @property
    def bootstrap(self) -> str:
        return bootstrap_list(self.port, self.count, hosts=self.hosts)

    @property
    def mtls_bootstrap(self) -> str:
        return bootstrap_list(self.port, self.count, mtls=True, hosts=self.hosts)

    def admin_access(self) -> KafkaAccess:
        """The super user's login with every node's address."""
        single = self.nodes[0].admin_access()
        return KafkaAccess(self.bootstrap, single.username, single.password, single.tls)

    def node(self, node_id: int) -> LocalKafka:
        if not 1 <= node_id <= self.count:
            raise InputError(f"node {node_id}: this cluster has nodes 1 to {self.count}")
        return self.nodes[node_id - 1]

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Make sure every node runs and the metadata lists them all; return the bootstrap list."""
        self.check_home()
        if self.count == 1:
            self.nodes[0].start(timeout)
            return self.bootstrap
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / SIZE_FILE).write_text(f"{self.count}\n")
        try:
            for node in self.nodes:
                node.launch()
            deadline = time.monotonic() + timeout
            for node in self.nodes:
                node.wait_until_ready(max(1.0, deadline - time.monotonic()))
            self._wait_for_every_broker(deadline)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self) -> bool:
        """Stop every node at once (one by one, the last would wait for a quorum that is gone)."""
        with ThreadPoolExecutor(max_workers=self.count) as pool:
            return any(pool.map(lambda node: node.stop(), self.nodes))

    def status(self) -> list[BrokerStatus]:
        return [node.status() for node in self.nodes]

    def check_home(self) -> None:
        """Refuse (:class:`InputError`) a size other than the one this home's Kafka was formatted with."""
        recorded = recorded_size(self.nodes[0].home)
        started_alone = (self.state_dir / "data" / "meta.properties").exists()
        if (recorded or (1 if started_alone else self.count)) != self.count:
            raise InputError(
                f"{self.state_dir} holds a {recorded or 1}-node Kafka; start it with --brokers "
                f"{recorded or 1}, or stop it and remove {self.state_dir} (its topics are lost)"
            )

    def _wait_for_every_broker(self, deadline: float) -> None:
        admin = AdminClient(client_config(self.admin_access()))
        seen = 0
        while time.monotonic() < deadline:
            try:
                seen = len(admin.list_topics(timeout=2.0).brokers)
            except KafkaException:
                seen = 0
            if seen == self.count:
                return
            time.sleep(POLL_S)
        raise BrokerStartError(
            f"the Kafka cluster in {self.state_dir} runs but its metadata lists {seen} of {self.count} "
            f"brokers; see {self.state_dir}/node-*/logs/server.log"
        )
