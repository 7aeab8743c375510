"""Each owner states its chain heads on a checkpoint topic only it may write: another agency cannot put
anything there, and whatever an owner writes there is that owner's statement, so the audit names the owner
as the producer of a finding there, never "?". Against the real broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer

from services.hub import Hub
from sharehub.chain import ChainHead
from sharehub.checkpoints import seal_checkpoint
from sharehub.kafka import producer_config
from tests.kafka_helpers import sharehub
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka


def _produce(hub: Hub, agency: str, topic: str, value: bytes) -> KafkaError | None:
    failures: list[KafkaError] = []
    producer = Producer({**producer_config(hub.kafka_as(agency)), "message.timeout.ms": 10_000})
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: failures.append(err) if err else None)
    producer.flush(15)
    return failures[0] if failures else None


def _audit(hub: Hub) -> tuple[int, dict[str, Any]]:
    done = sharehub(hub, "audit", "verify", "--json")
    return done.returncode, json.loads(done.stdout)


def test_an_agency_cannot_write_another_owners_checkpoint_topic(hub: Hub) -> None:
    coc_topic = hub.governance.checkpoint_topic("coc")
    for agency in ("go", "dongthap-ppc"):
        refused = _produce(hub, agency, coc_topic, b"junk")
        assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, agency
    # Nor a checkpoint signed with its own key that claims to be the owner's.
    forged = seal_checkpoint(
        hub.keys.signing_key("go"), "coc", "party-members", 0, ChainHead(1, b"\x01" * 32)
    )
    assert _produce(hub, "go", coc_topic, forged) is not None
    assert _audit(hub)[0] == 0


def test_what_an_owner_writes_on_its_checkpoint_topic_is_that_owners_finding(hub: Hub) -> None:
    assert (
        hub.publisher("coc", "party-members")
        .publish_records(list(generate_party_members(5, seed=41)))
        .published
    )
    status, clean = _audit(hub)
    assert status == 0 and clean["checkpoints"] >= 1
    topic = hub.governance.checkpoint_topic("coc")
    assert _produce(hub, "coc", topic, b"\x00junk from the owner itself") is None
    # A checkpoint of another producer, on coc's topic, written by coc.
    other = seal_checkpoint(
        hub.keys.signing_key("go"), "go", "citizen-feedback", 0, ChainHead(1, b"\x02" * 32)
    )
    assert _produce(hub, "coc", topic, other) is None
    status, report = _audit(hub)
    assert status == 1
    findings = [r for r in report["results"] if r["topic"] == topic]
    assert [(f["producer"], f["signature"]) for f in findings] == [("coc", "malformed"), ("coc", "not_owner")]
    assert "written by 'coc'" in findings[0]["detail"]
    assert all(r["producer"] not in (None, "?") for r in report["results"] if r["signature"] != "ok")
