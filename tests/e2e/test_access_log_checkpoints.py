"""When an API instance checkpoints its access-log lane, on the real broker: after so many records, so many
seconds after its last checkpoint when it wrote records since, and on close; never when nothing was written
since its last one. Each checkpoint states the head of the lane as the log holds it."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from services.access_log import AccessLog, Checkpointing
from services.hub import Hub
from sharehub.access_records import open_access, open_lane_checkpoint
from sharehub.gov.verify import operator_key
from tests.kafka_helpers import topic_messages, wait_until

pytestmark = pytest.mark.kafka


def _access_log(hub: Hub, *, every: int, seconds: float) -> AccessLog:
    state = hub.governance
    checkpointing = Checkpointing(state.access_checkpoint_topic, state.operator, every, seconds)
    return AccessLog(hub.kafka, state.access_log_topic, hub.keys.signing_key(state.operator), checkpointing)


def _record(log: AccessLog, queries: int) -> None:
    async def answered() -> None:
        for n in range(queries):
            await log.record(consumer="dongthap-ppc", purpose=f"query {n}", operation="list_datasets")

    asyncio.run(answered())


def _stated(hub: Hub) -> list[tuple[str, int, bytes]]:
    """(instance, sequence, head hash) of each checkpoint of an access-log lane, in log order."""
    state = hub.governance
    keys = functools.partial(operator_key, state, state.trust)
    out = []
    for _, _, value in topic_messages(hub, state.access_checkpoint_topic):
        instance, checkpoint = open_lane_checkpoint(value, keys)
        out.append((instance, checkpoint.sequence, checkpoint.head_hash))
    return out


def _heads(hub: Hub) -> dict[int, bytes]:
    """Sequence -> hash of each access record in the log."""
    opened = (open_access(v) for _, _, v in topic_messages(hub, hub.governance.access_log_topic))
    return {o.link.sequence: o.link.hash for o in opened if o.link is not None}


def test_a_lane_is_checkpointed_after_every_n_records_and_on_close(hub: Hub) -> None:
    log = _access_log(hub, every=3, seconds=0)
    try:
        _record(log, 3)
        wait_until(lambda: len(_stated(hub)) == 1, timeout=10, what="the checkpoint after three records")
        _record(log, 1)
    finally:
        log.close()
    heads = _heads(hub)
    assert _stated(hub) == [(log.instance, 3, heads[3]), (log.instance, 4, heads[4])]


def test_a_lane_is_checkpointed_by_time_only_when_it_wrote_records_since(hub: Hub) -> None:
    log = _access_log(hub, every=1000, seconds=0.5)
    try:
        _record(log, 2)
        wait_until(lambda: len(_stated(hub)) == 1, timeout=10, what="the checkpoint by time")
        time.sleep(1.5)  # three periods without a record: no checkpoint
        assert len(_stated(hub)) == 1
    finally:
        log.close()  # nothing written since the last checkpoint: nothing to state
    assert _stated(hub) == [(log.instance, 2, _heads(hub)[2])]
