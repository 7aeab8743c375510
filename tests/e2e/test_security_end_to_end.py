"""Envelope security on the real broker: audit of chain violations and truncation, erasure, key rotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from connectors.publisher import Publisher
from projections.projector import LogMessage, Projector
from projections.read_model import ReadModelStore
from services.hub import Hub
from sharehub.chain import ChainHead
from sharehub.checkpoints import seal_checkpoint
from sharehub.envelope import ChainPosition, Envelope, parse
from sharehub.kafka import client_config
from tests.kafka_helpers import Worker, sharehub, topic_messages, wait_until
from tests.unit.test_avro import member
from tests.unit.test_envelope import sealed
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def publisher(hub: Hub) -> Publisher:
    return hub.publisher("coc", DATASET)


def produce_raw(hub: Hub, topic: str, partition: int, *values: bytes) -> None:
    producer = Producer(client_config(hub.kafka_as("coc")))
    for value in values:
        producer.produce(topic, value=value, partition=partition)
    assert producer.flush(10) == 0


def log(hub: Hub) -> list[tuple[int, int, Envelope]]:
    return [(p, o, parse(v)) for p, o, v in topic_messages(hub, hub.governance.dataset(DATASET).topic)]


def audit(hub: Hub) -> dict[str, Any]:
    result = sharehub(hub, "audit", "verify", "--json")
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (1 if report["findings"] else 0)
    return report


def chain_findings(report: dict[str, Any]) -> list[tuple[int, str]]:
    return [(r["sequence"], r["chain"]) for r in report["results"] if r["chain"] != "ok"]


def erase(hub: Hub, subject: str, *, requested_by: str, approved_by: str) -> Any:
    return sharehub(
        hub,
        "gov",
        "erase",
        "--dataset",
        DATASET,
        "--subject",
        subject,
        "--requested-by",
        requested_by,
        "--approved-by",
        approved_by,
    )


def lane_head(hub: Hub) -> tuple[int, Envelope]:
    """The busiest lane and its newest event."""
    events = log(hub)
    lane = max({p for p, _, _ in events}, key=lambda p: sum(1 for q, _, _ in events if q == p))
    return lane, max((e for p, _, e in events if p == lane), key=lambda e: e.header.sequence)


def test_the_audit_names_a_duplicate_a_gap_and_an_event_out_of_order(hub: Hub) -> None:
    publisher(hub).publish_records(list(generate_party_members(12, seed=4)))
    assert audit(hub)["findings"] == 0
    lane, head = lane_head(hub)
    topic = hub.governance.dataset(DATASET).topic
    n = head.header.sequence
    next_one = sealed(hub, record=member(member_id="PMX1"), position=ChainPosition(lane, n + 1, head.hash))
    after_it = sealed(
        hub, record=member(member_id="PMX2"), position=ChainPosition(lane, n + 2, next_one.hash)
    )
    produce_raw(hub, topic, lane, head.raw, after_it.raw, next_one.raw)  # a copy, then two swapped
    assert chain_findings(audit(hub)) == [(n, "duplicate"), (n + 2, "gap"), (n + 1, "out_of_order")]


def test_the_audit_names_a_fork(hub: Hub) -> None:
    publisher(hub).publish_records(list(generate_party_members(8, seed=5)))
    lane, head = lane_head(hub)
    n = head.header.sequence
    one = sealed(hub, record=member(member_id="PMF1"), position=ChainPosition(lane, n + 1, head.hash))
    other = sealed(hub, record=member(member_id="PMF2"), position=ChainPosition(lane, n + 1, head.hash))
    produce_raw(hub, hub.governance.dataset(DATASET).topic, lane, one.raw, other.raw)
    assert chain_findings(audit(hub)) == [(n + 1, "fork")]


def test_a_lane_cut_short_is_found_through_its_checkpoint(hub: Hub) -> None:
    publisher(hub).publish_records(list(generate_party_members(8, seed=6)))
    report = audit(hub)
    assert report["findings"] == 0 and report["checkpoints"] >= 1
    lane, head = lane_head(hub)
    claimed = ChainHead(head.header.sequence + 2, b"\x07" * 32)  # events the log does not hold
    checkpoint = seal_checkpoint(hub.keys.signing_key("coc"), "coc", DATASET, lane, claimed)
    produce_raw(hub, hub.governance.checkpoint_topic("coc"), 0, checkpoint)
    assert [(r["sequence"], r["chain"]) for r in audit(hub)["results"] if r["chain"] != "ok"] == [
        (claimed.sequence, "truncated")
    ]


def test_R6_erasure_purges_the_subject_everywhere_and_leaves_a_verifiable_log(
    hub: Hub, worker: Worker, tmp_path: Path
) -> None:
    members = list(generate_party_members(30, seed=8))
    data = tmp_path / "members.jsonl"
    write_jsonl(members, data)
    assert sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(data)).returncode == 0
    worker.start()
    stores = [hub.store("dongthap-ppc"), hub.store("langson-ppc")]
    wait_until(
        lambda: all(s.count(DATASET) == 30 for s in stores), timeout=90, what="30 rows", log=worker.log
    )
    subject = members[0]["member_id"]

    refused = erase(hub, subject, requested_by="go", approved_by="cpo")
    assert (
        refused.returncode == 2 and "only 'coc', the owner of 'party-members', may request" in refused.stderr
    )
    self_approved = erase(hub, subject, requested_by="coc", approved_by="coc")
    assert self_approved.returncode == 2 and "approved centrally, by 'cpo'" in self_approved.stderr

    erased = erase(hub, subject, requested_by="coc", approved_by="cpo")
    assert erased.returncode == 0, erased.stderr
    receipt = json.loads(erased.stdout)
    assert receipt["subject_key_destroyed"] and subject not in erased.stdout  # the receipt names a pseudonym
    wait_until(
        lambda: all(s.get(DATASET, subject) is None for s in stores),
        timeout=60,
        what="the purge",
        log=worker.log,
    )
    assert all(s.count(DATASET) == 29 for s in stores)

    receipt_file = hub.home / "erasures" / f"{receipt['event']['event_id']}.json"
    assert sharehub(hub, "audit", "receipt", str(receipt_file)).returncode == 0
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**receipt, "approved_by": "cpo", "requested_by": "go"}))
    assert sharehub(hub, "audit", "receipt", str(forged)).returncode == 1

    assert audit(hub)["findings"] == 0  # every signature and chain still verifies
    rebuilt = ReadModelStore(f"sqlite:///{tmp_path}/rebuilt-{{consumer}}.db", "dongthap-ppc")
    rebuilt.create()
    topic = hub.governance.dataset(DATASET).topic
    replay = Projector(hub.governance, hub.keys, {"dongthap-ppc": rebuilt})
    decision = replay.decide([LogMessage(topic, p, o, None, v) for p, o, v in topic_messages(hub, topic)])
    replay.commit(decision)
    assert not decision.quarantined
    assert rebuilt.count(DATASET) == 29 and rebuilt.get(DATASET, subject) is None
    rebuilt.close()

    again = tmp_path / "again.jsonl"
    write_jsonl(members[:1], again)
    republished = sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(again))
    assert republished.returncode == 1 and "was erased" in republished.stderr


def test_rotation_starts_an_epoch_and_both_epochs_project(hub: Hub, tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_jsonl(generate_party_members(10, seed=9), first)
    write_jsonl(generate_party_members(10, seed=10, start_index=10), second)
    assert sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(first)).returncode == 0
    rotated = sharehub(hub, "keys", "rotate", "--dataset", DATASET)
    assert rotated.returncode == 0 and rotated.stdout.strip() == "party-members/data/2"
    assert sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(second)).returncode == 0
    assert {e.header.data_key_id for _, _, e in log(hub)} == {"party-members/data/1", "party-members/data/2"}
    topic = hub.governance.dataset(DATASET).topic
    fresh = Hub(hub.settings)
    p = Projector(fresh.governance, fresh.keys, {c: fresh.store(c) for c in fresh.consumers()})
    p.commit(p.decide([LogMessage(topic, q, o, None, v) for q, o, v in topic_messages(hub, topic)]))
    assert fresh.store("langson-ppc").count(DATASET) == 20
    fresh.close()
    assert audit(hub)["findings"] == 0
