"""The three-node local cluster (``sharehub kafka start --brokers 3``) against its real nodes: governance's
topics get replication factor 3 and two in sync, a publish survives the loss of a node, and every node
refuses what the lone broker refuses.

The cluster runs in this module's own home on nine consecutive ports from ``SHAREHUB_TEST_CLUSTER_PORT``
(else a free block found here), never on the suite's broker; it starts in about 25 s on two cores.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from services.governance_bootstrap import load
from services.hub import Hub
from sharehub.kafka import KafkaAccess, KafkaTls, client_config, read_topic, records
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tooling.kafka_local import LocalKafkaCluster
from tooling.kafka_local.layout import PORTS_PER_NODE
from tooling.synthetic import generate_party_members

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]
DATASET = "party-members"
NODES = 3


#: Where a free block is looked for: below the kernel's ephemeral range (32768 and up here), so no outgoing
#: connection, not even one of the cluster's own nodes starting before the others, can take a port of it
#: between the look and the bind; and clear of every fixed port the suite and the benches use (25432 and
#: 29192 up).
BLOCK_RANGE = (22000, 25000)


def _free_block(size: int) -> int:
    """A base port whose ``size`` ports are all free now, in :data:`BLOCK_RANGE`."""
    low, high = BLOCK_RANGE
    for _ in range(50):
        base = random.randrange(low, high - size)
        if all(_free(p) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports found in {low}-{high}")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    named = os.environ.get("SHAREHUB_TEST_CLUSTER_PORT")
    port = int(named) if named else _free_block(PORTS_PER_NODE * NODES)
    kafka = LocalKafkaCluster(tmp_path_factory.mktemp("cluster"), Settings().cache_dir, port, NODES)
    kafka.start()
    yield kafka
    kafka.stop()


@pytest.fixture(scope="module")
def cluster_hub(cluster: LocalKafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    settings = Settings(
        home=tmp_path_factory.mktemp("hub"),
        kafka_bootstrap=cluster.bootstrap,
        kafka_mtls_bootstrap=cluster.mtls_bootstrap,
        kafka_admin_password_file=cluster.admin_password_file,
        kafka_ca_file=cluster.ca_file,
        master_key=None,
        read_model_url=None,
    )
    hub = Hub(settings)
    load(hub.governance_desk(), demo_spec())
    yield hub
    hub.close()


def _leaders(access: KafkaAccess, topic: str) -> dict[int, int]:
    """Partition → the node leading it."""
    metadata = AdminClient(client_config(access)).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in metadata.topics[topic].partitions.values()}


def _write(access: KafkaAccess, topic: str, partition: int) -> KafkaError | None:
    outcomes: list[KafkaError | None] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        outcomes.append(err)

    producer = Producer(client_config(access, **{"message.timeout.ms": 10_000}))
    producer.produce(topic, value=b"not the owner", partition=partition, on_delivery=delivered)
    producer.flush(15)
    assert len(outcomes) == 1
    return outcomes[0]


def test_every_node_runs_with_its_own_certificate(cluster: LocalKafkaCluster) -> None:
    assert all(status.running for status in cluster.status())
    certificates = {node.certificate.cert_file.read_bytes() for node in cluster.nodes}
    assert len(certificates) == NODES
    brokers = AdminClient(client_config(cluster.admin_access())).list_topics(timeout=10).brokers
    assert sorted(brokers) == [1, 2, 3]


def test_governance_topics_are_on_three_nodes_with_two_in_sync(cluster_hub: Hub) -> None:
    topic = cluster_hub.governance.dataset(DATASET).topic
    admin = AdminClient(client_config(cluster_hub.kafka_admin))
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
    assert partitions and all(len(p.replicas) == NODES for p in partitions)
    [config] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    settings = config.result(timeout=10)
    assert settings["min.insync.replicas"].value == "2"
    assert settings["unclean.leader.election.enable"].value == "false"


def test_every_node_refuses_a_plaintext_client(cluster: LocalKafkaCluster) -> None:
    for node in cluster.nodes:
        for port in (node.port, node.mtls_port):
            admin = AdminClient(client_config(f"127.0.0.1:{port}", **{"log.connection.close": False}))
            with pytest.raises(KafkaException):
                admin.list_topics(timeout=1.5)
        anonymous = KafkaAccess(node.mtls_bootstrap, tls=KafkaTls(cluster.ca_file))
        with pytest.raises(KafkaException):
            AdminClient(client_config(anonymous)).list_topics(timeout=1.5)


def test_every_node_refuses_another_agencys_write(cluster: LocalKafkaCluster, cluster_hub: Hub) -> None:
    topic = cluster_hub.governance.dataset(DATASET).topic
    leaders = _leaders(cluster_hub.kafka_admin, topic)
    for node in cluster.nodes:
        go = cluster_hub.kafka_as("go")
        through_this_node = KafkaAccess(node.bootstrap, go.username, go.password, go.tls)
        for partition in leaders:
            refused = _write(through_this_node, topic, partition)
            assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert set(leaders.values()) == {1, 2, 3}, "each node led a partition and refused the write itself"
    assert _write(cluster_hub.kafka_as("coc"), topic, 0) is None, "the owner may write"


def test_a_home_refuses_a_size_other_than_its_own(cluster: LocalKafkaCluster, tmp_path: Path) -> None:
    from sharehub.errors import InputError

    with pytest.raises(InputError, match="3-node"):
        LocalKafkaCluster(cluster.nodes[0].home, Settings().cache_dir, cluster.port, 1).check_home()
    with pytest.raises(InputError, match="--brokers 2"):
        LocalKafkaCluster(tmp_path, Settings().cache_dir, cluster.port, 2)


def test_a_publish_with_a_node_killed_is_acknowledged_and_read_back_whole(
    cluster: LocalKafkaCluster, cluster_hub: Hub
) -> None:
    topic = cluster_hub.governance.dataset(DATASET).topic
    before = sum(1 for _ in records(read_topic(cluster_hub.kafka_admin, topic)))
    # The node leading the governance log: the hub's reader of that log, kept open since the hub started,
    # must find the new leader by itself (a request it had sent to the dead node only times out).
    [leader] = _leaders(cluster_hub.kafka_admin, cluster_hub.governance.governance_topic).values()
    pid = cluster.node(leader).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    members = list(generate_party_members(50, seed=uuid.uuid4().int % 10_000))
    with cluster_hub.publisher("coc", DATASET) as publisher:
        report = publisher.publish_records(members)
    assert report.published == 50 and not report.rejected
    after = sum(1 for _ in records(read_topic(cluster_hub.kafka_admin, topic)))
    assert after == before + 50
    # Last in this module: the node stays down (its return is `make chaos`'s, which times it).
