"""End to end on the real broker: publish → Kafka → projection worker → read model → query API.

Every process is the real one (``sharehub project``, ``sharehub serve``); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.load import family
from projections.quarantine import decode_quarantined
from services import processes
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.envelope import parse
from sharehub.kafka import client_config
from tests.kafka_helpers import (
    KILLED_WORKER_SESSION_S,
    Worker,
    answers,
    free_port,
    https_client,
    hub_env,
    sharehub,
    topic_messages,
    wait_until,
)
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def publish(hub: Hub, records: list[dict[str, object]]) -> None:
    publisher = hub.publisher("coc", DATASET)
    report = publisher.publish_records(records)
    assert report.published == len(records) and not report.rejected


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def read_model_backend(request: pytest.FixtureRequest, hub: Hub) -> Iterator[Hub]:
    """The hub with its read models in SQLite (the default) or in the test PostgreSQL server."""
    if request.param == "sqlite":
        yield hub
        return
    url = os.environ.get("SHAREHUB_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("SHAREHUB_TEST_POSTGRES_URL is not set: run the suite with 'make test'")
    on_postgres = Hub(hub.settings.model_copy(update={"read_model_url": url}))
    yield on_postgres
    for consumer in on_postgres.consumers():
        on_postgres.store(consumer).drop()
    on_postgres.close()


def test_publish_project_and_query_end_to_end(read_model_backend: Hub, tmp_path: Path) -> None:
    hub = read_model_backend
    worker = Worker(hub)
    try:
        _publish_project_and_query(hub, worker, tmp_path)
    finally:
        worker.stop()


def _publish_project_and_query(hub: Hub, worker: Worker, tmp_path: Path) -> None:
    data = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(300, seed=7), data)
    published = sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(data))
    assert published.returncode == 0, published.stderr
    assert "published 300 events" in published.stderr

    worker.start()
    store = hub.store("dongthap-ppc")
    wait_until(
        lambda: store.count(DATASET) == 300, timeout=90, what="300 rows in the read model", log=worker.log
    )

    port = free_port()
    processes.start(hub.home, "api", ["serve", "--port", str(port)], env=hub_env(hub))
    try:
        base = f"https://127.0.0.1:{port}"
        wait_until(lambda: answers(hub, base + "/healthz"), timeout=30, what="the query API")
        with https_client(hub) as api:
            token = issue_credential(hub, "dongthap-ppc")
            headers = {"Authorization": f"Bearer {token}"}
            first = json.loads(data.read_text().splitlines()[0])
            url = f"{base}/v1/consumers/dongthap-ppc/datasets/{DATASET}/records/{first['member_id']}"
            purpose = {"purpose": "End-to-end check"}
            got = api.get(url, headers=headers, params=purpose, timeout=10)
            assert got.status_code == 200
            fields = got.json()["fields"]
            assert fields["full_name"] == first["full_name"]
            assert "national_id" not in fields and "phone" not in fields and "date_of_birth" not in fields

            other = api.get(
                f"{base}/v1/consumers/langson-ppc/datasets/{DATASET}/records",
                headers=headers,
                params=purpose,
                timeout=10,
            )
            assert other.status_code == 403
            page = api.get(
                f"{base}/v1/consumers/dongthap-ppc/datasets/{DATASET}/records",
                headers=headers,
                params={"limit": 1000, **purpose},
            )
            assert len(page.json()["items"]) == 300
    finally:
        processes.stop(hub.home, "api")


def test_a_flipped_byte_is_found_by_the_audit_and_never_applied(hub: Hub, worker: Worker) -> None:
    publish(hub, list(generate_party_members(20, seed=3)))
    topic = hub.governance.dataset(DATASET).topic
    partition, offset, value = next(topic_messages(hub, topic))
    tampered = bytearray(value)
    # A byte inside the ciphertext: structurally intact, so only the signature can catch it. (A flip in a
    # length prefix is caught too, as 'malformed': tests/unit/test_envelope.py flips every bit.)
    tampered[parse(value).header_end + 8] ^= 0x01
    producer = Producer(client_config(hub.kafka_as("coc")))
    producer.produce(topic, value=bytes(tampered), partition=partition)
    assert producer.flush(10) == 0
    bad_offset = _end_offset(hub, topic, partition) - 1

    audit = sharehub(hub, "audit", "verify", "--json")
    assert audit.returncode == 1
    report = json.loads(audit.stdout)
    assert report["events"] == 21 and report["findings"] == 1
    [finding] = [r for r in report["results"] if r["signature"] != "ok" or r["chain"] != "ok"]
    assert (finding["partition"], finding["offset"], finding["signature"]) == (
        partition,
        bad_offset,
        "bad_signature",
    )

    human = sharehub(hub, "audit", "verify")
    assert human.returncode == 1
    assert f"{bad_offset}" in human.stdout and "bad_signature" in human.stdout

    worker.start()
    store = hub.store("dongthap-ppc")
    wait_until(
        lambda: store.positions().get((topic, partition), 0) > bad_offset,
        timeout=90,
        what="the worker to pass the bad event",
        log=worker.log,
    )
    assert store.count(DATASET) == 20
    assert set(store.versions(DATASET).values()) == {1}  # the tampered copy was not applied on top
    quarantined = [decode_quarantined(v) for _, _, v in topic_messages(hub, hub.governance.quarantine_topic)]
    assert [(q["source_partition"], q["source_offset"], q["reason"]) for q in quarantined] == [
        (partition, bad_offset, "bad_signature")
    ]
    assert quarantined[0]["original_value"] == bytes(tampered)


class _VersionedStream:
    """Members published ``versions`` times over, and what langson-ppc's read model applied of them."""

    def __init__(self, hub: Hub, seed: int, members: int = 4000, versions: int = 3) -> None:
        self.hub = hub
        self.members = list(generate_party_members(members, seed=seed))
        self.versions = versions
        for _ in range(versions):
            publish(hub, self.members)
        self.total = versions * len(self.members)
        self.store = hub.store("langson-ppc")

    def applied(self) -> int:
        return sum(self.store.versions(DATASET).values())

    def wait_for_a_first_batch(self, worker: Worker) -> None:
        first = "the worker to apply a first batch"
        wait_until(lambda: self.applied() > 0, timeout=90, what=first, log=worker.log)

    def assert_every_record_applied_exactly_once(self, worker: Worker) -> None:
        wait_until(
            lambda: self.applied() >= self.total,
            timeout=180,
            what=f"{self.total} applied events",
            log=worker.log,
        )
        _settle(self.hub, self.store)
        assert self.applied() == self.total
        assert self.store.count(DATASET) == len(self.members)
        assert set(self.store.versions(DATASET).values()) == {self.versions}


def test_sigkill_mid_stream_leaves_every_record_exactly_once(hub: Hub, worker: Worker) -> None:
    stream = _VersionedStream(hub, seed=11)
    # The killed worker's partitions are free once the broker stops waiting for its heartbeats.
    worker.start(SHAREHUB_WORKER_SESSION_TIMEOUT_S=str(KILLED_WORKER_SESSION_S))
    stream.wait_for_a_first_batch(worker)
    before_kill = stream.applied()
    assert worker.pid is not None
    engine = family(worker.pid)[1:]
    assert engine, "the worker runs its projection engine in a process of its own"
    os.kill(worker.pid, signal.SIGKILL)  # the worker alone: its engine process must not outlive it
    wait_until(lambda: not worker.alive(), timeout=10, what="the worker to die")
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in engine),
        timeout=10,
        what="the engine process to die with its worker",
    )
    assert before_kill < stream.total, "the worker finished before it could be killed mid-stream"

    worker.start()
    stream.assert_every_record_applied_exactly_once(worker)


def test_an_engine_that_dies_mid_stream_makes_the_worker_start_over_and_lose_nothing(
    hub: Hub, worker: Worker
) -> None:
    stream = _VersionedStream(hub, seed=13, versions=5)  # long enough to be killed mid-stream when busy
    worker.start()
    stream.wait_for_a_first_batch(worker)
    assert worker.pid is not None and worker.log is not None
    [engine] = _engine_processes(worker.pid)
    os.kill(engine, signal.SIGKILL)  # the engine alone, while batches are under way
    assert stream.applied() < stream.total, "the worker finished before its engine could be killed mid-stream"

    stream.assert_every_record_applied_exactly_once(worker)
    log = worker.log.read_text()
    # The batches under way and the reconcile timer learn of it at once; whichever reports first says why.
    why = r"starting over: (a batch|reconciling) failed \(EngineProcessError: the projection engine exited"
    told = [line for line in log.splitlines() if re.search(r"ERROR|WARNING|start|stop|Error|exit", line)]
    assert re.search(why, log), "\n".join(told[-60:])
    assert worker.alive() and processes.running_pid(hub.home, "projector") == worker.pid, "same process"
    assert _engine_processes(worker.pid) not in ([], [engine]), "a new engine process projects"


def _engine_processes(worker_pid: int) -> list[int]:
    """The worker's engine process (a multiprocessing child), by its command line."""
    return [
        pid for pid in family(worker_pid)[1:] if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_publishing_continues_the_chain_across_runs(hub: Hub) -> None:
    publish(hub, list(generate_party_members(10, seed=1)))
    publish(hub, list(generate_party_members(10, seed=2, start_index=10)))
    audit = sharehub(hub, "audit", "verify", "--json")
    assert audit.returncode == 0, audit.stdout
    report = json.loads(audit.stdout)
    assert report["events"] == 20 and report["findings"] == 0 and report["checkpoints"] >= 2
    lanes: dict[int, list[int]] = {}
    topic = hub.governance_state(refresh=True).dataset("party-members").topic
    for result in report["results"]:  # the audit reports every topic: governance, checkpoints, access log too
        if result["topic"] == topic:
            lanes.setdefault(result["partition"], []).append(result["sequence"])
    assert sum(len(s) for s in lanes.values()) == 20
    for sequences in lanes.values():  # one unbroken chain per lane, across both runs
        assert sorted(sequences) == list(range(1, len(sequences) + 1))


def test_bad_lines_are_reported_and_good_lines_still_go(hub: Hub, tmp_path: Path) -> None:
    good = list(generate_party_members(3, seed=5))
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps(good[1]),
        json.dumps({**good[2], "gender": "X"}),
        "",
    ]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n")
    result = sharehub(hub, "publish", "--as", "coc", "--dataset", DATASET, str(data))
    assert result.returncode == 1
    assert f"{data}:2: not valid JSON" in result.stderr
    assert f"{data}:4: gender: 'X' is not one of MALE, FEMALE" in result.stderr
    assert "published 2 events" in result.stderr and "rejected 2 lines" in result.stderr
    assert "Traceback" not in result.stderr
    topic = hub.governance.dataset(DATASET).topic
    assert sum(1 for _ in topic_messages(hub, topic)) == 2


def test_only_the_owner_may_publish(hub: Hub, tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    write_jsonl(generate_party_members(1, seed=1), data)
    result = sharehub(hub, "publish", "--as", "go", "--dataset", DATASET, str(data))
    assert result.returncode == 2
    assert "'go' may not publish 'party-members': its owner is 'coc'" in result.stderr
    assert "Traceback" not in result.stderr


def _end_offset(hub: Hub, topic: str, partition: int) -> int:
    consumer = Consumer(client_config(hub.kafka_admin, **{"group.id": "sharehub-test-watermarks"}))
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])
    finally:
        consumer.close()


def _settle(hub: Hub, store: object) -> None:
    """Give a worker that would apply something twice the time to do it."""
    import time

    time.sleep(3)


def test_governance_creates_topics_that_keep_every_event(hub: Hub) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(client_config(hub.kafka_admin))
    for topic in (hub.governance.dataset(DATASET).topic, hub.governance.quarantine_topic):
        resource = ConfigResource("topic", topic)
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        assert config["retention.ms"].value == "-1", topic
        assert config["retention.bytes"].value == "-1", topic


def test_two_workers_share_the_partitions_and_a_rebalance_loses_and_duplicates_nothing(hub: Hub) -> None:
    members = list(generate_party_members(2000, seed=12))
    store = hub.store("dongthap-ppc")

    def applied() -> int:
        return sum(store.versions(DATASET).values())

    env = hub_env(hub)
    logs = [processes.start(hub.home, f"projector-{n}", ["project"], env=env)[1] for n in (1, 2)]
    try:
        for log in logs:  # both in the group, each with its share of the partitions
            wait_until(lambda log=log: "resuming" in log.read_text(errors="replace"), timeout=120,
                       what="a worker to be given partitions", log=log)  # fmt: skip
        publish(hub, members[:1000])
        wait_until(lambda: applied() > 0, timeout=60, what="the workers to apply", log=logs[0])
        processes.stop(hub.home, "projector-1")  # mid-stream: the group rebalances onto the second worker
        publish(hub, members[1000:])
        publish(hub, members)  # a second version of every record
        wait_until(lambda: applied() >= 4000, timeout=180, what="4000 applied events", log=logs[1])
        _settle(hub, store)
    finally:
        processes.stop(hub.home, "projector-1")
        processes.stop(hub.home, "projector-2")
    assert applied() == 4000
    assert store.count(DATASET) == len(members)
    assert set(store.versions(DATASET).values()) == {2}
