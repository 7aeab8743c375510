"""Each node of a chaos cluster in a network namespace of its own, so that one can be cut off (root only).

Node ``n`` runs in the namespace ``<tag>n<n>`` with the address ``<subnet>.<n>`` on one end of a veth pair;
the other end (``<tag>v<n>``) is a port of the bridge ``<tag>br`` in this namespace, which holds
``<subnet>.254``: the nodes reach each other over the bridge, and the clients (publisher, worker, API, all
in this namespace) reach them the same way. :meth:`BrokerNetwork.cut` takes node ``n``'s port of the bridge
down, which isolates it from the other nodes and from every client at once (packets are dropped, nothing
is refused: a partition, not a crash); :meth:`BrokerNetwork.heal` brings it back. The tag and the subnet
are made from the cluster's base port, so two runs on other ports never share a name or an address.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

#: The bridge's own address in the nodes' subnet (the clients' source address).
BRIDGE_HOST = 254


@dataclass(frozen=True)
class BrokerNetwork:
    """The names and addresses of ``count`` namespaced nodes (see the module)."""

    tag: str
    subnet: str
    count: int = 3

    @classmethod
    def for_port(cls, port: int, count: int = 3) -> BrokerNetwork:
        return cls(tag=f"shp{port}", subnet=f"10.77.{port % 250}", count=count)

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def namespace(self, node: int) -> str:
        return f"{self.tag}n{node}"

    def host(self, node: int) -> str:
        return f"{self.subnet}.{node}"

    def outer_link(self, node: int) -> str:
        """Node ``node``'s port of the bridge (the veth end in this namespace)."""
        return f"{self.tag}v{node}"

    def inner_link(self, node: int) -> str:
        return f"{self.tag}i{node}"

    @property
    def nodes(self) -> range:
        return range(1, self.count + 1)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(self.host(n) for n in self.nodes)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.namespace(n) for n in self.nodes)

    def setup_commands(self) -> list[list[str]]:
        """The ``ip`` commands that make the bridge, the namespaces and their links, in order."""
        commands = [
            ["link", "add", self.bridge, "type", "bridge"],
            ["addr", "add", f"{self.subnet}.{BRIDGE_HOST}/24", "dev", self.bridge],
            ["link", "set", self.bridge, "up"],
        ]
        for n in self.nodes:
            ns, outer, inner = self.namespace(n), self.outer_link(n), self.inner_link(n)
            commands += [
                ["netns", "add", ns],
                ["link", "add", outer, "type", "veth", "peer", "name", inner],
                ["link", "set", inner, "netns", ns],
                ["link", "set", outer, "master", self.bridge],
                ["link", "set", outer, "up"],
                ["-n", ns, "addr", "add", f"{self.host(n)}/24", "dev", inner],
                ["-n", ns, "link", "set", inner, "up"],
                ["-n", ns, "link", "set", "lo", "up"],
            ]
        return commands

    def teardown_commands(self) -> list[list[str]]:
        """What removes everything :meth:`setup_commands` made (a namespace takes its veth pair with it)."""
        return [
            *(["netns", "delete", self.namespace(n)] for n in self.nodes),
            *(["link", "delete", self.outer_link(n)] for n in self.nodes),
            ["link", "delete", self.bridge],
        ]

    def create(self) -> None:
        self.remove()  # what a run that was killed may have left
        for command in self.setup_commands():
            _ip(command, check=True)

    def remove(self) -> None:
        for command in self.teardown_commands():
            _ip(command, check=False)

    def cut(self, node: int) -> None:
        _ip(["link", "set", self.outer_link(node), "down"], check=True)

    def heal(self, node: int) -> None:
        _ip(["link", "set", self.outer_link(node), "up"], check=True)


@contextlib.contextmanager
def namespaced(network: BrokerNetwork) -> Iterator[BrokerNetwork]:
    """The network made, and removed on the way out whatever happened."""
    try:
        network.create()
        yield network
    finally:
        network.remove()


def _ip(args: list[str], *, check: bool) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(
            f"chaos: `ip {' '.join(args)}` failed ({done.stderr.strip()}); the partition scenario needs root "
            "and network namespaces"
        )
