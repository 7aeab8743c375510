"""The tamper corpus, on the real broker: an honest log of every demo dataset and of an API instance's answers
(its access records and its lane's checkpoints) audits clean; then one of each tampering is written beside
it (flipped byte, forged signer, revoked key, non-owner publisher, reorder, gap, duplicate, fork, truncation
after a checkpoint, access records cut off after a checkpoint, a governance event signed by a non-operator,
junk on each of the hub's own topics) and the audit reports each with its reason and offset, and nothing
else, the same report in one process as with the lanes spread over worker processes. Governance goes on past
its junk: commands load it, and new changes are still written and applied."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import asdict
from typing import Any

import pytest
from confluent_kafka import Producer

from services.access_log import AccessLog, Checkpointing
from services.audit import audit_verify
from services.hub import Hub
from sharehub.chain import ChainHead
from sharehub.checkpoints import seal_checkpoint
from sharehub.envelope import ChainPosition, Envelope, parse
from sharehub.gov import events as ev
from sharehub.kafka import KafkaAccess, TopicReader, client_config, ensure_topics, read_topic, records
from tests.gov_support import public_hex, signing_key
from tests.kafka_helpers import sharehub, topic_messages
from tests.unit.test_avro import member
from tests.unit.test_envelope import sealed
from tooling.synthetic import (
    generate_citizen_feedback,
    generate_documents,
    generate_handbook_activities,
    generate_handbook_attendance,
    generate_party_members,
    generate_resolution_tasks,
)

pytestmark = pytest.mark.kafka
DATASET = "party-members"
HONEST = {
    "party-members": ("coc", generate_party_members),
    "documents": ("cpo", generate_documents),
    "resolution-tasks": ("cpo", generate_resolution_tasks),
    "handbook-activities": ("coc", generate_handbook_activities),
    "handbook-attendance": ("coc", generate_handbook_attendance),
    "citizen-feedback": ("go", generate_citizen_feedback),
}
Finding = tuple[str, int, int, str]


class Tamperer:
    """Writes raw records to the hub's topics and notes the finding each must give (topic, partition,
    offset, reason)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.expected: set[Finding] = set()
        self._reader = TopicReader(hub.kafka)

    def write(
        self, login: KafkaAccess, topic: str, partition: int, *values: tuple[bytes, str | None]
    ) -> None:
        start = self._reader.high(topic, partition)
        producer = Producer(client_config(login))
        for offset, (value, reason) in enumerate(values, start=start):
            producer.produce(topic, value=value, partition=partition)
            if reason is not None:
                self.expected.add((topic, partition, offset, reason))
        assert producer.flush(30) == 0

    def close(self) -> None:
        self._reader.close()


def audit(hub: Hub, *args: str) -> dict[str, Any]:
    result = sharehub(hub, "audit", "verify", "--json", *args)
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (1 if report["findings"] else 0)
    return report


def found(report: dict[str, Any]) -> set[Finding]:
    return {
        (r["topic"], r["partition"], r["offset"], r["reason"])
        for r in report["results"]
        if r["reason"] != "ok"
    }


def lane_heads(hub: Hub) -> dict[int, Envelope]:
    heads: dict[int, Envelope] = {}
    for partition, _, value in topic_messages(hub, hub.governance.dataset(DATASET).topic):
        heads[partition] = parse(value)
    return heads


def test_every_tampering_is_reported_with_its_reason_and_offset_and_nothing_else(hub: Hub) -> None:
    # The lanes cut into parts of 4 records, over two worker processes: the cuts go through every chain, and
    # through some tamperings; the one-process audit must report the same below.
    workers, parts = "2", ("--part-size", "4")
    for dataset, (owner, generate) in HONEST.items():
        report = hub.publisher(owner, dataset).publish_records(list(generate(30, seed=11)))
        assert not report.rejected
    state = hub.governance
    # An API instance answers five queries: its lane's checkpoints every two records and on close.
    honest_api = AccessLog(hub.kafka, state.access_log_topic, _operator_signer(hub), _checkpointing(hub, 2))
    _answer(honest_api, 5)
    honest = audit(hub, "--workers", workers, *parts)
    assert honest["findings"] == 0 and honest["events"] == 30 * len(HONEST)
    assert honest["governance"]["head"] > 0
    assert honest["topics"][state.access_log_topic]["note"].startswith("signed by the operator key")
    assert honest["topics"][state.access_log_topic]["verified"] == 5
    stated = honest["topics"][state.access_checkpoint_topic]
    assert stated["records"] == stated["verified"] >= 2  # at least one on the way, and one on close

    t = Tamperer(hub)
    _tamper_lanes(hub, t)
    _cut_access_lane(hub, t)
    _tamper_governance(hub, t)
    junk = (b"\x00 junk \xff", "malformed")
    t.write(hub.kafka_as("coc"), hub.governance.checkpoint_topic("coc"), 0, junk)
    t.write(hub.kafka_admin, hub.governance.access_log_topic, 0, junk)
    t.write(hub.kafka_admin, hub.governance.quarantine_topic, 0, junk)
    t.close()

    report = audit(hub, "--workers", workers, *parts)
    assert found(report) == t.expected
    assert len(t.expected) == 15
    other = audit(hub, "--workers", "2" if workers == "1" else "1")
    assert other["results"] == report["results"] and other["topics"] == report["topics"]
    # Without every event kept (the command's default without --json or --all): the same findings, in
    # the same order, and the same counts.
    compact = audit_verify(
        hub.kafka, hub.governance, workers=int(workers), every_event=False, quarantine=True, part_size=3
    )
    assert [{**asdict(e), "reason": e.reason} for e in compact.events] == [
        r for r in report["results"] if r["reason"] != "ok"
    ]
    assert compact.to_json()["topics"] == report["topics"]
    assert any("(revoked)" in r["detail"] for r in report["results"])
    assert report["governance"]["state_sha256"] == hub.governance_state(refresh=True).state_hash()


def _tamper_lanes(hub: Hub, t: Tamperer) -> None:
    topic = hub.governance.dataset(DATASET).topic
    heads = lane_heads(hub)
    assert len(heads) >= 3, "every lane of party-members holds an event"
    a, b, c = sorted(heads)[:3]
    coc = hub.kafka_as("coc")
    # Lane a: a copy of its head, then two new events swapped (a gap, then the missing one late).
    head = heads[a]
    n = head.header.sequence
    next_one = sealed(hub, record=member(member_id="PMT1"), position=ChainPosition(a, n + 1, head.hash))
    after = sealed(hub, record=member(member_id="PMT2"), position=ChainPosition(a, n + 2, next_one.hash))
    t.write(coc, topic, a, (head.raw, "duplicate"), (after.raw, "gap"), (next_one.raw, "out_of_order"))
    # Lane b: two different events both claiming the next sequence.
    head = heads[b]
    n = head.header.sequence
    one = sealed(hub, record=member(member_id="PMF1"), position=ChainPosition(b, n + 1, head.hash))
    other = sealed(hub, record=member(member_id="PMF2"), position=ChainPosition(b, n + 1, head.hash))
    t.write(coc, topic, b, (one.raw, None), (other.raw, "fork"))
    # Lane c: records that are not authentic (they change no chain).
    at = ChainPosition(c, heads[c].header.sequence + 1, heads[c].hash)
    flipped = bytearray(heads[c].raw)
    flipped[-1] ^= 0x01
    forged = sealed(hub, record=member(member_id="PMX1"), position=at, signing_key=hub.keys.signing_key("go"))
    non_owner = sealed(hub, producer="go", record=member(member_id="PMX2"), position=at)
    revoked = _revoked_coc_key(hub)
    with_revoked = sealed(hub, record=member(member_id="PMX3"), position=at, signing_key=revoked)
    t.write(
        coc, topic, c,
        (bytes(flipped), "bad_signature"), (forged.raw, "unknown_signer"), (non_owner.raw, "not_owner"),
        (with_revoked.raw, "unknown_signer"),
    )  # fmt: skip
    # A checkpoint of events lane a never held: the lane was cut short after it.
    claimed = ChainHead(heads[a].header.sequence + 5, b"\x07" * 32)
    checkpoint = seal_checkpoint(hub.keys.signing_key("coc"), "coc", DATASET, a, claimed)
    t.write(coc, hub.governance.checkpoint_topic("coc"), 0, (checkpoint, "truncated"))


def _operator_signer(hub: Hub) -> Any:
    return hub.keys.signing_key(hub.governance.operator)


def _checkpointing(hub: Hub, every: int) -> Checkpointing:
    """The hub's access-log checkpoints every ``every`` records and on close (not by time)."""
    state = hub.governance
    return Checkpointing(state.access_checkpoint_topic, state.operator, every=every, seconds=0)


def _answer(log: AccessLog, queries: int, *, checkpoint_after: int | None = None) -> None:
    """``queries`` answered queries recorded by ``log`` (and a checkpoint after the first
    ``checkpoint_after``), then ``log`` closed: its last checkpoint."""

    async def answered() -> None:
        for n in range(1, queries + 1):
            await log.record(consumer="dongthap-ppc", purpose=f"query {n}", operation="list_records",
                             dataset=DATASET, record_refs=[f"{n:032x}"])  # fmt: skip
            if n == checkpoint_after:
                log.checkpoint()

    try:
        asyncio.run(answered())
    finally:
        log.close()


def _cut_access_lane(hub: Hub, t: Tamperer) -> None:
    """An API instance answers four queries, its lane checkpointed after the second and on close; its third
    and fourth records are cut off the access log. (The instance wrote its records to a topic of their own,
    from which the first two are copied to the access log: the log as whoever cut it left it.)"""
    state = hub.governance
    written = f"{state.topic_prefix}-access-log-before-the-cut"
    ensure_topics(hub.kafka_admin, [(written, 1)])
    cut = AccessLog(hub.kafka_admin, written, _operator_signer(hub), _checkpointing(hub, 1000))
    _answer(cut, 4, checkpoint_after=2)
    with TopicReader(hub.kafka) as reader:
        closing_checkpoint = reader.high(state.access_checkpoint_topic, 0) - 1
    kept = [r.value for r in records(read_topic(hub.kafka_admin, written))][:2]
    t.write(hub.kafka_admin, state.access_log_topic, 1, *((value, None) for value in kept))
    t.expected.add((state.access_checkpoint_topic, 0, closing_checkpoint, "truncated"))


def _revoked_coc_key(hub: Hub) -> Any:
    """A second key of coc, registered then revoked (written after junk on the log: governance goes on)."""
    key = signing_key("coc/sign/compromised")
    with hub.governing() as gov:
        gov.add_key("cpo", "coc", key.key_id, public_hex(key))
        gov.revoke_key("cpo", "coc", key.key_id, "compromised")
    return key


def _tamper_governance(hub: Hub, t: Tamperer) -> None:
    state = hub.governance_state(refresh=True)
    forged = ev.seal(
        signing_key("coc/sign/forged"),
        sequence=state.head_sequence + 1,
        prev_hash=state.head_hash,
        occurred_at=dt.datetime.now(dt.UTC),
        actor="coc",
        payload=ev.AgencyRegistered("intruder", "Intruder", "party-agency", None, "top-secret"),
    )
    topic = state.governance_topic
    t.write(
        hub.kafka_governance,
        topic,
        0,
        (b"not a governance event", "malformed"),
        (forged.raw, "unknown_signer"),
    )
    # Everything that loads governance goes on, and names the offsets it skipped.
    logged = sharehub(hub, "gov", "log")
    assert logged.returncode == 0 and "malformed" in logged.stderr, logged.stderr
    assert sharehub(hub, "gov", "show").returncode == 0
    verified = sharehub(hub, "gov", "verify")
    named = [line for line in verified.stderr.splitlines() if line.startswith("offset ")]
    assert verified.returncode == 1 and len(named) == 2, verified.stderr
    fresh = Hub(hub.settings)
    try:
        assert "intruder" not in fresh.governance.agencies_
        assert [s.reason for s in fresh.governance.skipped] == ["malformed", "unknown_signer"]
    finally:
        fresh.close()
