"""Where each node of a local KRaft cluster listens, and how its replication is set.

One base port P (``SHAREHUB_LOCAL_KAFKA_PORT``) places a whole cluster: node ``n`` (1-based) takes three
consecutive ports from ``P + 3 * (n - 1)``: its client listener (SASL/SCRAM over TLS), its controller
listener (loopback, SASL/PLAIN) and its mutual-TLS listener. A lone broker is node 1 of 1, so its ports are
P, P+1, P+2 as they always were, and node 1 of a three-node cluster answers on the same P and P+2; the
cluster takes P..P+8. Two clusters coexist when their base ports are at least 9 apart.

Every node listens on 127.0.0.1 unless the cluster is given one address per node (``hosts``): then node
``n`` binds all three listeners to its own address, as when each node runs in a network namespace of its
own (the partition chaos scenario), and the controller listener is on that address too (authenticated
either way).
"""

from __future__ import annotations

from dataclasses import dataclass

from sharehub.errors import InputError

#: The cluster sizes ``sharehub kafka start --brokers`` offers: one node, or three that survive one's loss.
CLUSTER_SIZES = (1, 3)
PORTS_PER_NODE = 3
LOOPBACK = "127.0.0.1"


def check_cluster_size(count: int) -> int:
    """``count`` when it is a size we run, else a clear :class:`InputError`."""
    if count not in CLUSTER_SIZES:
        raise InputError(
            f"--brokers {count}: a local cluster has 1 node (development) or 3 (replication factor 3, "
            "min.insync.replicas 2, survives the loss of one node)"
        )
    return count


@dataclass(frozen=True)
class NodePlace:
    """Node ``id`` (1-based) of a cluster of ``count`` nodes, each a broker and a KRaft voter."""

    id: int
    count: int
    #: Each node's address, node 1's first; none: every node on 127.0.0.1.
    hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.hosts and len(self.hosts) != self.count:
            raise InputError(f"{len(self.hosts)} addresses for a cluster of {self.count} nodes")

    @property
    def host(self) -> str:
        """The address this node's listeners bind to."""
        return self.hosts[self.id - 1] if self.hosts else LOOPBACK

    def client_port(self, base_port: int) -> int:
        return base_port + PORTS_PER_NODE * (self.id - 1)

    def quorum_voters(self, base_port: int) -> str:
        """``controller.quorum.voters``: every node's controller listener."""
        places = [NodePlace(n, self.count, self.hosts) for n in range(1, self.count + 1)]
        return ",".join(f"{p.id}@{p.host}:{p.client_port(base_port) + 1}" for p in places)

    def replication_properties(self) -> dict[str, str]:
        """Replication settings: all 1 for a lone node; for three, every topic (internal ones too) on
        all three nodes, two in sync for an acks=all write, and no unclean leader election."""
        factor = min(self.count, 3)
        in_sync = 2 if factor >= 3 else 1
        balance = {} if self.count == 1 else {"leader.imbalance.check.interval.seconds": "5"}
        return {
            **balance,  # a node that comes back leads its partitions again within seconds, not 5 minutes
            "default.replication.factor": str(factor),
            "offsets.topic.replication.factor": str(factor),
            "transaction.state.log.replication.factor": str(factor),
            "transaction.state.log.min.isr": str(in_sync),
            "min.insync.replicas": str(in_sync),
            "unclean.leader.election.enable": "false",
        }


def bootstrap_list(base_port: int, count: int, *, mtls: bool = False, hosts: tuple[str, ...] = ()) -> str:
    """Every node's client (or, with ``mtls``, mutual-TLS) listener, comma-separated: a client that knows
    them all still finds the cluster when the first node is down."""
    offset = 2 if mtls else 0
    places = [NodePlace(n, count, hosts) for n in range(1, count + 1)]
    return ",".join(f"{p.host}:{p.client_port(base_port) + offset}" for p in places)
