"""Every cell of the authorisation matrix (tests/authz/matrix.py) against the real broker and the real HTTP
apps: allowed where the table allows it, refused with the interface's answer everywhere else, and nothing
changed by a refusal (governance log, key store, topics, ACLs, principals, every topic's end, every read
model). An allowed step that writes must show in that same state: the comparison sees what a refusal
might have done."""

from __future__ import annotations

import itertools

import pytest

from tests.authz import broker_probes, http_probes
from tests.authz.matrix import AGENCY_ROLES, CELLS, OPERATIONS, Cell, Interface
from tests.authz.world import World

pytestmark = pytest.mark.kafka

#: Each unknown credential is sent from an address of its own (TEST-NET-2): past 20 failures a minute, an
#: address is refused with 429 before its credential is looked at.
_SOURCES = (f"198.51.100.{n}" for n in itertools.count(1))


def _take(world: World, cell: Cell) -> str:
    """The answer to the cell's step; ``world.known`` is then the state just before the step."""
    operation, role = cell.operation, cell.role
    if operation.interface is Interface.BROKER:
        world.known = world.known or world.fingerprint()
        return broker_probes.PROBES[operation.name](world.logins[role], world.topics)
    request = http_probes.PROBES[operation.name](world, AGENCY_ROLES.get(role, http_probes.OTHER))
    world.known = world.known or world.fingerprint()  # after what the step needed first was made
    source = "testclient" if role in world.credentials else next(_SOURCES)
    client = world.client(request.gateway, source, site=request.site)
    try:
        return request.send(client, world.bearer(role))
    finally:
        client.close()


@pytest.mark.parametrize("cell", CELLS, ids=lambda cell: cell.id)
def test_each_role_is_allowed_exactly_what_the_matrix_allows(world: World, cell: Cell) -> None:
    answer = _take(world, cell)
    before = world.known
    assert answer == cell.expected
    world.known = after = world.fingerprint()
    if answer != cell.operation.ok:
        assert after == before, "a refused step changed the hub"
    elif cell.operation.writes:
        assert after != before, "an allowed step left no trace where refusals are looked for"


def test_every_operation_has_a_probe() -> None:
    names = {op.name for op in OPERATIONS}
    assert names == set(broker_probes.PROBES) | set(http_probes.PROBES)
    assert not set(broker_probes.PROBES) & set(http_probes.PROBES)
