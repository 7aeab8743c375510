"""The projection checks every producer's chain online: each violation is quarantined with its own reason."""

from __future__ import annotations

from projections.projector import LogMessage, Projector
from services.hub import Hub
from sharehub.envelope import ChainPosition, parse
from tests.unit.test_avro import member
from tests.unit.test_envelope import sealed
from tests.unit.test_projector import apply, messages, projector


def at(message: LogMessage, offset: int, partition: int | None = None) -> LogMessage:
    """The same bytes found at another place in the log."""
    return LogMessage(
        message.topic, message.partition if partition is None else partition, offset, None, message.value
    )


def reasons(p: Projector, batch: list[LogMessage]) -> list[str]:
    return [q.reason for q in apply(p, batch).quarantined]


def chain_of(hub: Hub, n: int) -> list[LogMessage]:
    return messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, n + 1)])


def test_an_unbroken_chain_is_applied(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    assert reasons(p, chain_of(offline_hub, 4)) == []
    assert offline_hub.store("langson-ppc").count() == 4


def test_the_same_event_twice_is_applied_once(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    one, two = chain_of(offline_hub, 2)
    assert reasons(p, [one, two, at(two, 2)]) == ["duplicate"]
    assert set(offline_hub.store("langson-ppc").versions("party-members").values()) == {1}


def test_a_replayed_old_event_is_refused(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    one, two, three = chain_of(offline_hub, 3)
    assert reasons(p, [one, two, three, at(one, 3)]) == ["replayed_sequence"]


def test_a_gap_is_reported_and_the_chain_goes_on(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    one, _lost, three, four = chain_of(offline_hub, 4)
    assert reasons(p, [one, at(three, 1), at(four, 2)]) == ["chain_gap"]
    assert offline_hub.store("langson-ppc").count() == 2  # 1 and 4; 3 waits in quarantine


def test_reordered_events_are_refused(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    one, two, three = chain_of(offline_hub, 3)
    assert reasons(p, [one, at(three, 1), at(two, 2)]) == ["chain_gap", "replayed_sequence"]


def test_a_fork_is_refused(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    one, two = chain_of(offline_hub, 2)
    wrong_parent = parse(two.value).header.prev_hash[::-1]
    forked = sealed(
        offline_hub, record=member(member_id="PM0000000009"), position=ChainPosition(0, 2, wrong_parent)
    )
    assert reasons(p, [one, LogMessage(one.topic, 0, 1, None, forked.raw), at(two, 2)]) == ["chain_fork"]


def test_an_event_in_another_partition_than_signed_is_misrouted(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    (one,) = chain_of(offline_hub, 1)
    assert reasons(p, [at(one, 0, partition=1)]) == ["misrouted"]


def test_chain_heads_survive_a_restart(offline_hub: Hub) -> None:
    one, two, three = chain_of(offline_hub, 3)
    apply(projector(offline_hub), [one, two])
    restarted = projector(offline_hub)  # a new process: heads come from the read model
    assert restarted.resume_offset((one.topic, 0)) == 2
    assert reasons(restarted, [at(three, 2), at(one, 3)]) == ["replayed_sequence"]
    assert offline_hub.store("langson-ppc").count() == 3


def test_a_redelivered_batch_is_not_judged_twice(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    batch = chain_of(offline_hub, 3)
    apply(p, batch)
    assert reasons(p, batch) == []  # a redelivery after a rebalance is not a replay attack


def test_a_partition_that_moved_on_elsewhere_is_taken_up_from_the_read_models(offline_hub: Hub) -> None:
    batch = chain_of(offline_hub, 6)
    here, elsewhere = projector(offline_hub), projector(offline_hub)
    apply(here, batch[:2])
    apply(elsewhere, batch[2:4])  # another worker took the partition over and went on
    here.resume([(batch[0].topic, 0)])  # the partition comes back to this worker
    assert reasons(here, batch[4:]) == []
    assert offline_hub.store("langson-ppc").count() == 6
    assert here.stored_offset((batch[0].topic, 0)) == 6
