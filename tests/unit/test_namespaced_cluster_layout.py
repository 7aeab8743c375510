"""Where the nodes of a cluster listen when each has an address of its own (in a network namespace of its
own, for the partition chaos scenario), and the namespaces' names: pure, no broker, no root."""

from __future__ import annotations

import pytest

from bench.chaos.netns import BrokerNetwork
from sharehub.errors import InputError
from tooling.kafka_local.layout import NodePlace, bootstrap_list

HOSTS = ("10.77.1.1", "10.77.1.2", "10.77.1.3")


def test_each_node_binds_and_is_reached_at_its_own_address() -> None:
    place = NodePlace(2, 3, HOSTS)
    assert place.host == "10.77.1.2"
    assert place.quorum_voters(40000) == "1@10.77.1.1:40001,2@10.77.1.2:40004,3@10.77.1.3:40007"
    assert bootstrap_list(40000, 3, hosts=HOSTS) == "10.77.1.1:40000,10.77.1.2:40003,10.77.1.3:40006"
    assert bootstrap_list(40000, 3, mtls=True, hosts=HOSTS).split(",")[2] == "10.77.1.3:40008"


def test_without_addresses_every_node_stays_on_loopback() -> None:
    assert NodePlace(3, 3).host == "127.0.0.1"
    assert NodePlace(1, 3).quorum_voters(40000).startswith("1@127.0.0.1:40001,")
    assert bootstrap_list(40000, 1) == "127.0.0.1:40000"


def test_one_address_per_node_or_a_clear_error() -> None:
    with pytest.raises(InputError, match="2 addresses for a cluster of 3 nodes"):
        NodePlace(1, 3, HOSTS[:2])


@pytest.mark.parametrize("port", [1024, 31404, 65535])
def test_the_partition_networks_names_fit_linux_and_are_the_ports_own(port: int) -> None:
    network = BrokerNetwork.for_port(port)
    links = [network.bridge, *(network.outer_link(n) for n in network.nodes)]
    links += [network.inner_link(n) for n in network.nodes]
    assert all(len(name) <= 15 for name in links), "an interface name longer than IFNAMSIZ - 1"
    assert len(set(links)) == len(links) and len(set(network.namespaces)) == 3
    assert network.hosts == tuple(f"{network.subnet}.{n}" for n in (1, 2, 3))
    other = BrokerNetwork.for_port(port - 9)  # another run's cluster, 9 ports below
    assert not set(links) & {other.bridge, *(other.outer_link(n) for n in other.nodes)}
    assert other.subnet != network.subnet


def test_the_teardown_removes_every_namespace_and_link_the_setup_made() -> None:
    network = BrokerNetwork.for_port(31404)
    made = {c[2] for c in network.setup_commands() if c[:2] in (["link", "add"], ["netns", "add"])}
    removed = {c[2] for c in network.teardown_commands()}
    assert made <= removed | {
        network.inner_link(n) for n in network.nodes
    }  # inner ends go with their namespace
    assert set(network.namespaces) <= removed and network.bridge in removed
