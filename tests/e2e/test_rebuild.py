"""Rebuilding a read model from the log, and its state hash an auditor recomputes: real broker, real
worker process, the real command line."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.hub import Hub
from services.operations import Operations
from tests.kafka_helpers import Worker, sharehub, wait_until
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"
CONSUMER = "dongthap-ppc"


def lag(operations: Operations) -> int:
    models = operations.status()["read_models"]
    [model] = [m for m in models if (m["consumer"], m["dataset"]) == (CONSUMER, DATASET)]
    return int(model["lag_events"])


def test_rebuild_restores_a_damaged_read_model_to_the_hash_the_log_gives(hub: Hub, worker: Worker) -> None:
    members = list(generate_party_members(150, seed=21))
    publisher = hub.publisher("coc", DATASET)
    publisher.publish_records(members)
    publisher.publish_records(members[:40])  # a second version of some records
    publisher.close()
    operations = Operations(governance=hub, read_models=hub, kafka=hub.kafka)
    assert lag(operations) == 190, "before the worker runs, every event is lag"
    worker.start()
    store = hub.store(CONSUMER)
    wait_until(
        lambda: sum(store.versions(DATASET).values()) == 190, timeout=120, what="190 events", log=worker.log
    )
    assert lag(operations) == 0

    refused = sharehub(hub, "project", "rebuild", "--consumer", CONSUMER)
    assert refused.returncode == 2 and "the projection worker is running" in refused.stderr
    worker.stop()
    healthy = store.state_hash()

    audited = sharehub(hub, "audit", "state-hash", "--consumer", CONSUMER, "--live")
    assert audited.returncode == 0, audited.stderr
    assert audited.stdout.splitlines() == [f"log\t{healthy}", f"live\t{healthy}"]

    victim = str(members[7]["member_id"])
    with store.engine.begin() as conn:  # someone edits the read model behind the hub's back
        conn.execute(text("DELETE FROM records WHERE record_key = :k"), {"k": victim})
        conn.execute(
            text("UPDATE records SET version = version + 1 WHERE record_key = :k"), {"k": "PM0000000001"}
        )
    damaged = sharehub(hub, "audit", "state-hash", "--consumer", CONSUMER, "--live")
    assert damaged.returncode == 1 and f"log\t{healthy}" in damaged.stdout

    rebuilt = sharehub(hub, "project", "rebuild", "--consumer", CONSUMER)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == f"{CONSUMER}\t{healthy}"
    assert "190 events replayed, 150 rows, 0 refused" in rebuilt.stderr
    assert store.get(DATASET, victim) is not None and store.state_hash() == healthy
    assert set(store.versions(DATASET).values()) == {1, 2}
