"""No agency can stop the projection for everyone: owners may not join the projector's consumer group, a
group member that sends garbage is assigned nothing while the worker goes on, and a worker that dies is
started again by its supervisor. Against the real broker and the real worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from confluent_kafka import Consumer, KafkaError

from services.hub import Hub
from services.supervisor import Supervisor
from sharehub.kafka import SASL_MECHANISM, client_config
from tests.e2e.test_end_to_end import family
from tests.kafka_helpers import Worker, wait_until
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def _group_refusal(hub: Hub, agency: str, group: str) -> KafkaError | None:
    """The error the broker gives ``agency`` subscribing in ``group`` (None if it is let in)."""
    consumer = Consumer(
        client_config(hub.kafka_as(agency), **{"group.id": group, "enable.auto.commit": False})
    )
    try:
        consumer.subscribe([hub.governance.dataset(DATASET).topic])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error():
                return msg.error()  # type: ignore[no-any-return]
            if consumer.assignment():
                return None
        raise AssertionError(f"{agency} neither joined {group} nor was refused in 20 s")
    finally:
        consumer.close()


@pytest.mark.parametrize("group", ["projector", "sharehub-anything", "readers-of-another"])
def test_an_owner_may_use_no_consumer_group_but_its_own_readers(hub: Hub, group: str) -> None:
    name = {
        "projector": hub.governance.projector_group,
        "sharehub-anything": "sharehub-anything",
        "readers-of-another": f"{hub.principal('hub')}.readers",
    }[group]
    refused = _group_refusal(hub, "coc", name)
    assert refused is not None and refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


class _Junk(AbstractPartitionAssignor):
    """Claims to be a faust worker, and sends metadata no faust worker would."""

    name = "faust"
    version = 4

    @classmethod
    def assign(
        cls, cluster: object, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        return {m: ConsumerProtocolMemberAssignment(cls.version, [], b"") for m in members}

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, sorted(topics), b"\x00not json at all")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass


class _Assignments(ConsumerRebalanceListener):
    """Every assignment the group gave this member (empty ones too), in order."""

    def __init__(self) -> None:
        self.given: list[set[object]] = []

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Iterable[object]) -> None:
        self.given.append(set(assigned))


async def _intrude(hub: Hub, timeout: float) -> set[object]:
    """Join the projector's group (as the hub's own principal, which may) with junk metadata; the
    partitions the group's rebalance gave it (waited for, up to ``timeout`` seconds)."""
    access = hub.kafka
    assert access.username and access.password
    intruder = AIOKafkaConsumer(
        bootstrap_servers=str(access),
        group_id=hub.governance.projector_group,
        security_protocol="SASL_SSL",
        ssl_context=access.tls.context() if access.tls else None,
        sasl_mechanism=SASL_MECHANISM,
        sasl_plain_username=access.username,
        sasl_plain_password=access.password.reveal().decode(),
        partition_assignment_strategy=(_Junk,),
        enable_auto_commit=False,
    )
    assignments = _Assignments()
    intruder.subscribe([d.topic for d in hub.governance.datasets()], listener=assignments)
    await intruder.start()
    try:
        deadline = time.monotonic() + timeout
        while not assignments.given:
            assert time.monotonic() < deadline, f"the group gave the intruder nothing in {timeout} s"
            await asyncio.sleep(0.2)
        return assignments.given[0]
    finally:
        await intruder.stop()


def test_a_group_member_with_malformed_metadata_gets_nothing_and_the_worker_goes_on(
    hub: Hub, worker: Worker
) -> None:
    first = list(generate_party_members(10, seed=31))
    assert hub.publisher("coc", DATASET).publish_records(first).published == 10
    worker.start()
    store = hub.store("langson-ppc")
    wait_until(lambda: store.count(DATASET) == 10, timeout=90, what="10 rows", log=worker.log)
    assert worker.pid is not None and worker.log is not None
    projecting = family(worker.pid)[1]  # the supervised worker process

    assigned = asyncio.run(_intrude(hub, timeout=60))
    assert assigned == set()
    later = list(generate_party_members(10, seed=32, start_index=10))
    assert hub.publisher("coc", DATASET).publish_records(later).published == 10
    wait_until(lambda: store.count(DATASET) == 20, timeout=90, what="20 rows", log=worker.log)
    log = worker.log.read_text()
    assert "sent malformed metadata" in log, log[-3000:]
    assert "worker exited" not in log and family(worker.pid)[1] == projecting, "the same worker went on"


def test_a_worker_that_is_killed_is_started_again_by_its_supervisor(hub: Hub, worker: Worker) -> None:
    worker.start()
    assert worker.pid is not None and worker.log is not None
    wait_until(lambda: len(family(worker.pid)) >= 3, timeout=60, what="worker and engine", log=worker.log)
    projecting = family(worker.pid)[1]
    os.kill(projecting, signal.SIGKILL)
    members = list(generate_party_members(10, seed=33))
    assert hub.publisher("coc", DATASET).publish_records(members).published == 10
    store = hub.store("langson-ppc")
    wait_until(lambda: store.count(DATASET) == 10, timeout=120, what="10 rows", log=worker.log)
    assert worker.alive() and family(worker.pid)[1] != projecting
    assert "worker was killed by SIGKILL (status -9); starting a new one in 1 s" in worker.log.read_text()


def test_the_supervisor_backs_off_a_failing_worker_and_starts_over_at_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # Fails twice, then asks to start over, then runs until stopped.
    script = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(runs)!r}); n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        "sys.exit(3) if n < 2 else sys.exit(75) if n == 2 else time.sleep(60)\n"
    )
    supervisor = Supervisor([sys.executable, "-c", script], first_pause_s=0.2, max_pause_s=0.4)
    started = time.monotonic()
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    wait_until(lambda: runs.exists() and len(runs.read_text()) == 4, timeout=20, what="four starts")
    took = time.monotonic() - started
    supervisor.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert (supervisor.starts, supervisor.failures) == (4, 2)
    assert took >= 0.2 + 0.4, "a pause after each failure, doubling"
