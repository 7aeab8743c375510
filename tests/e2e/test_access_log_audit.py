"""The access log is signed and chained: a real API process writes it, the auditor verifies it from its own
site (every deletion, alteration, reordering and duplicate found at its offset, legacy records counted apart)
and asks it who read a record, a consumer's data or a dataset, when (``audit access``). The API process
states its lane's head when it stops, and the auditor holds the log to that checkpoint (one that names a
missing record, another hash, another signer or another lane is a finding at its offset)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from services import processes
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.access_records import (
    LEGACY_SCHEMA,
    open_access,
    open_lane_checkpoint,
    record_hash,
    seal_access,
    seal_lane_checkpoint,
)
from sharehub.chain import ChainHead
from sharehub.checkpoints import seal_checkpoint
from sharehub.envelope import pseudonym
from sharehub.gov.verify import operator_key
from sharehub.kafka import client_config
from tests.e2e.test_auditor_site import _auditor_site
from tests.kafka_helpers import https_client, topic_messages
from tests.unit.test_avro import member
from tests.unit.test_projector import apply, messages, projector

pytestmark = pytest.mark.kafka

CONSUMER = "dongthap-ppc"
RECORDS = f"/v1/consumers/{CONSUMER}/datasets/party-members/records"
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _site_command(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }
    return subprocess.run(
        [sys.executable, "-m", "services", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _legacy(request_id: str) -> bytes:
    """An access record as the API wrote them before they were signed."""
    return LEGACY_SCHEMA.encode_single_object(
        {"request_id": request_id, "consumer": CONSUMER, "dataset": "party-members", "agreement": None,
         "purpose": "an old query", "operation": "list_records", "record_refs": [], "at": LONG_AGO}
    )  # fmt: skip


def _write(hub: Hub, partition: int, *values: bytes, topic: str | None = None) -> list[int]:
    """Append ``values`` to one partition of the access log (or of ``topic``) as someone with the broker's
    keys; their offsets."""
    topic = topic or hub.governance.access_log_topic
    start = 1 + max((o for p, o, _ in topic_messages(hub, topic) if p == partition), default=-1)
    producer = Producer(client_config(hub.kafka_admin))  # not idempotent: raw writes, as they come
    for value in values:
        producer.produce(topic, value=value, partition=partition)
    assert producer.flush(30) == 0
    return list(range(start, start + len(values)))


def _findings(home: Path, topic: str) -> set[tuple[int, int, str]]:
    done = _site_command(home, "verify", "--json", "--quiet")
    report = json.loads(done.stdout)
    assert done.returncode == (1 if report["findings"] else 0), done.stderr
    return {(r["partition"], r["offset"], r["reason"]) for r in report["results"] if r["topic"] == topic}


def _asked(home: Path, *criteria: str) -> list[dict[str, Any]]:
    done = _site_command(home, "access", *criteria)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_auditor_verifies_the_access_log_and_finds_every_tampering_at_its_offset(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    topic = hub.governance.access_log_topic
    legacy_offsets = [_write(hub, p, _legacy(f"legacy-{p}"))[0] for p in range(3)]
    apply(projector(hub), messages(hub, [member(member_id=f"PM{i:010d}") for i in range(1, 4)]))
    auth = {"Authorization": f"Bearer {issue_credential(hub, CONSUMER)}"}
    with https_client(hub) as c:
        asked = {"purpose": "Audit of cell 7", "filter": 'status == "OFFICIAL"', "limit": 2,
                 "as_of": "2030-01-01T00:00:00+07:00"}  # fmt: skip
        assert c.get(api + RECORDS, params=asked, headers=auth).status_code == 200
        one = {"purpose": "Check one member"}
        assert c.get(api + RECORDS + "/PM0000000003", params=one, headers=auth).status_code == 200

    # Signed, chained, with what was asked and under which agreement version.
    signed = [(p, o, open_access(v)) for p, o, v in topic_messages(hub, topic) if o not in legacy_offsets]
    assert [opened.link.sequence for _, _, opened in signed if opened.link] == [1, 2]
    (partition, _, first), (_, last_offset, second) = signed
    agreement = hub.governance_state(refresh=True).agreement(first.fields["agreement"])
    assert first.fields["agreement_version"] == second.fields["agreement_version"] == agreement.sequence
    assert first.fields["filter"] == 'status == "OFFICIAL"'
    assert first.fields["as_of"] == dt.datetime(2029, 12, 31, 17, tzinfo=dt.UTC)
    assert set(first.fields["fields_returned"]) == set(agreement.terms.fields)
    assert first.link is not None and second.link is not None
    assert second.link.prev_hash == first.link.hash

    home = _auditor_site(hub, tmp_path)
    assert _findings(home, topic) == set()  # the legacy records are no finding

    # Who read member 3? The owner hands the auditor its pseudonym; the auditor asks the log alone.
    ref = pseudonym(hub.keys.routing_key("party-members"), "PM0000000003").hex()
    by_subject = _asked(home, "--subject-ref", ref, "--dataset", "party-members")
    assert [(r["operation"], r["purpose"], r["agreement_version"]) for r in by_subject] == [
        ("get_record", "Check one member", agreement.sequence)
    ]
    assert len(_asked(home, "--consumer", CONSUMER)) == 5
    assert len(_asked(home, "--dataset", "party-members", "--from", "2021-01-01")) == 2
    assert {r["request_id"] for r in _asked(home, "--consumer", CONSUMER, "--to", "2021-01-01")} == {
        "legacy-0", "legacy-1", "legacy-2"
    }  # fmt: skip
    refused = _site_command(home, "access", "--subject-ref", "PM0000000003", "--dataset", "party-members")
    assert refused.returncode == 2 and "32 lower-case hex" in refused.stderr

    # Records of the API's lane after its head, sealed with the operator key, then written out of line.
    signer = hub.keys.signing_key(hub.governance.operator)
    head, forged = ChainHead(2, record_hash(_raw(hub, partition, last_offset))), []
    for n in range(3, 8):
        raw, head = seal_access({**second.fields, "request_id": f"r{n}"}, instance=second.fields["instance"],
                                head=head, signer=signer)  # fmt: skip
        forged.append(raw)
    r3, r4, r5, r6, r7 = forged
    altered = r7.replace(b"Check one member", b"Check one mimber")
    offsets = _write(hub, partition, _raw(hub, partition, last_offset), r4, r3, r6, altered, _legacy("late"))
    assert _findings(home, topic) == {
        (partition, offsets[0], "duplicate"),
        (partition, offsets[1], "gap"),  # r3 is not in its place: deleted there ...
        (partition, offsets[2], "out_of_order"),  # ... and found later: a reordering
        (partition, offsets[3], "gap"),  # r5 deleted
        (partition, offsets[4], "bad_signature"),  # r7 altered
        (partition, offsets[5], "unsigned"),  # an unsigned record after signed ones
    }


def _raw(hub: Hub, partition: int, offset: int) -> bytes:
    topic = hub.governance.access_log_topic
    return next(v for p, o, v in topic_messages(hub, topic) if (p, o) == (partition, offset))


def test_the_api_checkpoints_its_lane_when_it_stops_and_the_auditor_holds_the_log_to_it(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    apply(projector(hub), messages(hub, [member(member_id="PM0000000001")]))
    auth = {"Authorization": f"Bearer {issue_credential(hub, CONSUMER)}"}
    with https_client(hub) as c:
        for purpose in ("First look", "Second look"):
            answer = c.get(api + RECORDS + "/PM0000000001", params={"purpose": purpose}, headers=auth)
            assert answer.status_code == 200
    assert processes.stop(hub.home, "api")  # SIGTERM: a graceful stop

    state = hub.governance
    [_, (_, _, second)] = topic_messages(hub, state.access_log_topic)
    instance = open_access(second).fields["instance"]
    head = ChainHead(2, record_hash(second))
    keys = functools.partial(operator_key, state, state.trust)
    topic = state.access_checkpoint_topic
    stated = [open_lane_checkpoint(v, keys) for _, _, v in topic_messages(hub, topic)]
    assert (instance, head.sequence, head.hash) in {(i, c.sequence, c.head_hash) for i, c in stated}
    home = _auditor_site(hub, tmp_path)
    assert _findings(home, topic) == set() == _findings(home, state.access_log_topic)

    operator = hub.keys.signing_key(state.operator)
    honest = seal_lane_checkpoint(operator, state.operator, instance, head)
    flipped = bytearray(honest)
    flipped[-1] ^= 0x01
    offsets = _write(
        hub, 0,
        seal_lane_checkpoint(operator, state.operator, instance, ChainHead(1, record_hash(second))),
        seal_lane_checkpoint(operator, state.operator, instance, ChainHead(3, head.hash)),
        seal_lane_checkpoint(hub.keys.signing_key("coc"), "coc", instance, head),
        seal_lane_checkpoint(operator, "coc", instance, head),
        seal_checkpoint(operator, state.operator, "documents", 0, head),
        bytes(flipped),
        topic=topic,
    )  # fmt: skip
    assert _findings(home, topic) == {
        (0, offsets[0], "checkpoint_mismatch"),  # record 1 is not what it states
        (0, offsets[1], "truncated"),  # record 3 of the lane is not in the log
        (0, offsets[2], "unknown_signer"),  # not an operator key
        (0, offsets[3], "not_owner"),  # an operator key, naming another agency
        (0, offsets[4], "malformed"),  # a dataset lane's checkpoint
        (0, offsets[5], "bad_signature"),
    }
