"""What a consumer's read model held at a past time, reconstructed from the log: real broker, real worker
process, the real command line. The live read model's hash taken at T1 is what ``audit reconstruct --at T1``
gives after a suspension, more events and an erasure; ``--at now`` gives the live hash."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from services.erasure import ErasureParts, erase_subject
from services.hub import Hub
from tests.kafka_helpers import Worker, sharehub, wait_until
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"
SUSPENDED = "langson-ppc"  # its agreement is suspended after T1
KEPT = "dongthap-ppc"  # keeps its agreement; one of its subjects is erased after T1


def publish(hub: Hub, records: list[dict[str, object]]) -> None:
    with hub.publisher("coc", DATASET) as publisher:
        assert publisher.publish_records(records).published == len(records)


def reconstructed(hub: Hub, consumer: str, at: str, *more: str) -> tuple[int, list[str], str]:
    done = sharehub(hub, "audit", "reconstruct", "--consumer", consumer, "--at", at, *more)
    return done.returncode, done.stdout.splitlines(), done.stderr


def test_reconstruct_at_a_past_time_gives_the_hash_the_read_model_had_then(hub: Hub, worker: Worker) -> None:
    members = list(generate_party_members(60, seed=33))
    publish(hub, members)
    worker.start()
    suspended, kept = hub.store(SUSPENDED), hub.store(KEPT)
    wait_until(
        lambda: suspended.count(DATASET) == kept.count(DATASET) == 60,
        timeout=120,
        what="60 rows in both read models",
        log=worker.log,
    )
    t1 = dt.datetime.now(dt.UTC)
    at_t1 = {SUSPENDED: suspended.state_hash(), KEPT: kept.state_hash()}
    time.sleep(0.01)  # every later event is stamped after T1

    with hub.governing() as gov:
        gov.suspend("cpo", f"{SUSPENDED}.party-members.1", "inspection")
    publish(hub, [*generate_party_members(30, seed=33, start_index=60), *members[:10]])
    wait_until(
        lambda: kept.count(DATASET) == 90 and suspended.count(DATASET) == 0,
        timeout=60,
        what="90 rows for one consumer, none for the suspended one",
        log=worker.log,
    )
    worker.stop()

    status, lines, stderr = reconstructed(hub, SUSPENDED, t1.isoformat())
    assert status == 0, stderr
    assert lines == [f"at\t{t1.isoformat()}", f"log\t{at_t1[SUSPENDED]}"]
    assert "60 events up to" in stderr and "(40 later left out), 60 rows" in stderr
    assert at_t1[SUSPENDED] != suspended.state_hash(), "the suspension emptied the live read model"

    status, lines, stderr = reconstructed(hub, SUSPENDED, "now", "--live")
    assert status == 0, stderr
    assert lines[1:] == [f"log\t{suspended.state_hash()}", f"live\t{suspended.state_hash()}"]

    assert reconstructed(hub, KEPT, t1.isoformat())[1][1] == f"log\t{at_t1[KEPT]}"
    parts = ErasureParts(hub.governance, hub.keys, hub.publisher, receipts=hub.home / "erasures")
    erase_subject(
        parts, dataset=DATASET, record_key=str(members[3]["member_id"]), requested_by="coc", approved_by="cpo"
    )
    status, lines, stderr = reconstructed(hub, KEPT, t1.isoformat())
    assert status == 0 and lines[1] != f"log\t{at_t1[KEPT]}", "a record of then can no longer be opened"
    assert "1 record(s) held then can no longer be opened" in stderr
    status, lines, stderr = reconstructed(hub, KEPT, "now", "--live")
    assert status == 1, "the worker is stopped: the live read model has not purged the erased subject yet"
    assert "can no longer be opened" not in stderr, "an erasure known by then is no unopenable record"


def test_reconstruct_refuses_bad_times_clearly(hub: Hub) -> None:
    status, _, stderr = reconstructed(hub, KEPT, "last tuesday")
    assert status == 2 and "not an ISO 8601 time" in stderr and "Traceback" not in stderr
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    status, _, stderr = reconstructed(hub, KEPT, future)
    assert status == 2 and "is in the future" in stderr
    status, _, stderr = reconstructed(hub, "nobody", "now")
    assert status == 2 and "nobody" in stderr
