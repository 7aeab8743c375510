"""The governance log on the real Kafka broker: rebuild from the topic alone, tampering, restart."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from sharehub.errors import ChainViolation, SignatureInvalid
from sharehub.gov import GovernanceService, Trust, fold
from sharehub.gov import events as ev
from sharehub.gov.log import KafkaLog
from sharehub.kafka import KafkaAccess, producer_config
from tests.gov_support import Clock, propose_members, seed, signing_key

pytestmark = pytest.mark.kafka


def prefix() -> str:
    return f"gov{uuid.uuid4().hex[:10]}"


def test_state_rebuilt_from_the_topic_equals_the_service(kafka_admin: KafkaAccess) -> None:
    topics, key = prefix(), signing_key()
    svc = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=Clock())
    seed(svc)
    seeded = svc.state.head_sequence
    propose_members(svc)
    svc.consent("coc", "dongthap.members.1")
    svc.approve("cpo", "dongthap.members.1")
    svc.approve("go", "dongthap.members.1")
    svc.close()
    # Only the topic and the operator's public key: no state from the service.
    rebuilt = fold(
        KafkaLog(kafka_admin, topics).read_all(),
        Trust("cpo", {key.key_id: key.private.public_key()}),
        topics,
    )
    assert rebuilt.dump() == svc.state.dump()
    assert rebuilt.head_sequence == seeded + 4  # the seeding events + 4 for the agreement
    assert rebuilt.governance_topic == f"{topics}-governance"


def test_tampered_event_on_the_topic_is_detected(kafka_admin: KafkaAccess) -> None:
    topics, key = prefix(), signing_key()
    svc = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=Clock())
    seed(svc)
    svc.close()
    raws = KafkaLog(kafka_admin, topics).read_all()
    tampered = raws[-1].replace(b"ResolutionTask", b"ResolutionTASK")
    assert tampered != raws[-1]
    # Someone with write access to the broker appends a modified copy of the last event.
    producer = Producer(producer_config(kafka_admin))
    producer.produce(f"{topics}-governance", value=tampered, partition=0)
    assert producer.flush(30) == 0
    # The service goes on: the copy is named with its offset and applied nowhere; the chain continues.
    reopened = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=Clock())
    [skipped] = reopened.state.skipped
    assert (skipped.offset, skipped.sequence, skipped.reason) == (len(raws), len(raws), "bad_signature")
    assert f"governance event {len(raws)}" in skipped.detail and "does not verify" in skipped.detail
    event = reopened.register_agency("cpo", "x", "X", "party-agency", "internal")
    assert (event.sequence, event.prev_hash) == (len(raws) + 1, ev.parse(raws[-1]).hash)
    reopened.close()
    # and one that rewrites history in place is caught by its signature (simulated on the read bytes).
    with pytest.raises(SignatureInvalid):
        fold([*raws[:-1], tampered], Trust.of("cpo", key), topics)


def test_a_restarted_service_continues_the_chain(kafka_admin: KafkaAccess) -> None:
    topics, key, clock = prefix(), signing_key(), Clock()
    first = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=clock)
    seed(first)
    propose_members(first)
    head = (first.state.head_sequence, first.state.head_hash)
    first.close()
    second = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=clock, signers=first.signers)
    assert (second.state.head_sequence, second.state.head_hash) == head
    event = second.consent("coc", "dongthap.members.1")
    assert event.sequence == head[0] + 1 and event.prev_hash == head[1]
    second.close()
    rebuilt = fold(KafkaLog(kafka_admin, topics).read_all(), Trust.of("cpo", key), topics)
    assert rebuilt.dump() == second.state.dump()
    assert rebuilt.agreement("dongthap.members.1").stage == "consented"


def test_a_second_writer_is_refused(kafka_admin: KafkaAccess) -> None:
    topics, key = prefix(), signing_key()
    one = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=Clock())
    two = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=Clock())
    one.register_agency("cpo", "cpo", "Central Party Office", "central-office", "top-secret")
    with pytest.raises(ChainViolation, match="concurrent_writer"):
        two.register_agency("cpo", "cpo", "Central Party Office", "central-office", "top-secret")
    one.close()
    two.close()


def test_a_duplicated_event_on_the_topic_is_detected(kafka_admin: KafkaAccess) -> None:
    topics, key = prefix(), signing_key()
    svc = GovernanceService.open(kafka_admin, topics, key, "cpo", clock=Clock())
    seed(svc)
    svc.close()
    raws = KafkaLog(kafka_admin, topics).read_all()
    last = raws[-1]
    producer = Producer(producer_config(kafka_admin))
    producer.produce(f"{topics}-governance", value=last, partition=0)  # an authentic event, written twice
    assert producer.flush(30) == 0
    reopened = GovernanceService.open(kafka_admin, topics, key, "cpo")
    [skipped] = reopened.state.skipped
    assert (skipped.sequence, skipped.reason) == (len(raws), "duplicate")
    assert reopened.state.head_sequence == len(raws)
    reopened.close()
