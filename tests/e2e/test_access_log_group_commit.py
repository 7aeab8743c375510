"""Group commit of the access log, on the real broker: the records of concurrent queries go to the broker
together, yet every record keeps its own signature and its place in the instance's lane, and the audit
verifies the lane whole. A broker that does not take a group's records refuses every query of the group:
no answer without its record."""

from __future__ import annotations

import asyncio

import pytest

from services.access_log import AccessLog, Checkpointing
from services.audit import audit_verify
from services.hub import Hub
from sharehub.access_records import open_access
from sharehub.errors import BrokerError
from tests.kafka_helpers import topic_messages

pytestmark = pytest.mark.kafka

QUERIES = 40


def _access_log(hub: Hub, topic: str) -> AccessLog:
    state = hub.governance
    checkpointing = Checkpointing(state.access_checkpoint_topic, state.operator, every=1000, seconds=0)
    return AccessLog(hub.kafka, topic, hub.keys.signing_key(state.operator), checkpointing)


def test_concurrent_queries_share_produce_requests_and_keep_one_signed_unbroken_lane(
    hub: Hub,
) -> None:
    topic = hub.governance.access_log_topic
    log = _access_log(hub, topic)

    async def concurrently() -> list[str]:
        queries = (
            log.record(consumer="dongthap-ppc", purpose=f"q {n}", operation="get_record")
            for n in range(QUERIES)
        )
        return list(await asyncio.gather(*queries))

    try:
        answered = asyncio.run(concurrently())
    finally:
        log.close()
    assert log.groups_sent < QUERIES / 4, "concurrent records went one produce request each"
    opened = [open_access(value) for _, _, value in topic_messages(hub, topic)]
    assert sorted(o.fields["request_id"] for o in opened) == sorted(answered)
    links = [o.link for o in opened if o.link is not None and o.fields["instance"] == log.instance]
    assert [link.sequence for link in links] == list(range(1, QUERIES + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(links, links[1:], strict=False))
    report = audit_verify(hub.kafka, hub.governance_state(refresh=True))
    assert report.findings == [] and report.topics[topic].verified == QUERIES


def test_no_query_of_a_group_is_answered_when_the_broker_refuses_the_group(hub: Hub) -> None:
    # The hub's services may read the governance topic but never write it: every record is refused.
    topic = hub.governance.governance_topic
    before = sum(1 for _ in topic_messages(hub, topic))
    log = _access_log(hub, topic)

    async def concurrently() -> list[str | BaseException]:
        queries = (
            log.record(consumer="dongthap-ppc", purpose=f"q {n}", operation="get_record") for n in range(8)
        )
        return list(await asyncio.gather(*queries, return_exceptions=True))

    try:
        outcomes = asyncio.run(concurrently())
    finally:
        log.close()
    # Whether the refusal came in the broker's answer to a group (the queries queued meanwhile go as the
    # next group, refused alike) or at once from the producer, once it knows the topic refuses it (each
    # query then goes alone), every query is refused and nothing reached the topic.
    assert all(isinstance(o, BrokerError) and "did not take" in str(o) for o in outcomes), outcomes
    assert sum(1 for _ in topic_messages(hub, topic)) == before
