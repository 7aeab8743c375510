"""A dataset's retention, applied: its topic keeps each event as long as the dataset declares and no longer;
the projection goes on from what the log still holds (chains there start after events retained away, not
with a gap); the audit says how many records were retained away, holds checkpoints of retained-away events
as such, and finds a deletion from a dataset kept for ever. Against the real broker and worker.

Kafka deletes a topic's oldest segments under its retention; DeleteRecords moves a partition's start the
same way, at an offset the test chooses, so most tests use it (with the dataset's retention declared)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.api.app import create_app
from services.audit import audit_verify
from services.cli import gov_commands
from services.governance_bootstrap import issue_credential, load
from services.hub import Hub
from services.operations import Operations
from sharehub.kafka import KafkaAccess, TopicSpec, align_retention, client_config, reader_config
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.kafka_helpers import Worker, hub_env, sharehub, wait_until
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"
CONSUMER = "dongthap-ppc"
DAY_MS = 24 * 3600 * 1000


def _hub(tmp_path: Path, bootstrap: str, retention_ms: int) -> Hub:
    """A demo hub whose party-members keeps its events ``retention_ms`` (-1: for ever)."""
    spec = demo_spec()
    datasets = [
        d.model_copy(update={"retention_ms": retention_ms}) if d.id == DATASET else d for d in spec.datasets
    ]
    home = tmp_path / "home"
    settings = Settings(home=home, kafka_bootstrap=bootstrap, master_key=None, read_model_url=None)
    hub = Hub(settings)
    load(hub.governance_desk(), spec.model_copy(update={"datasets": datasets}))
    return hub


@pytest.fixture
def retaining_hub(tmp_path: Path, kafka_bootstrap: str) -> Any:
    hub = _hub(tmp_path, kafka_bootstrap, DAY_MS)
    yield hub
    hub.close()


def _configs(admin: KafkaAccess, topic: str) -> dict[str, str]:
    client = AdminClient(client_config(admin))
    [future] = client.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return {name: entry.value for name, entry in future.result(timeout=10).items()}


def _ends(hub: Hub, topic: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer(reader_config(hub.kafka_admin))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
    finally:
        consumer.close()


def _delete_before(admin: KafkaAccess, topic: str, offsets: dict[int, int]) -> None:
    """Every record of ``topic`` before ``offsets`` (partition → offset) deleted, as retention deletes."""
    client = AdminClient(client_config(admin))
    asked = [TopicPartition(topic, p, offset) for p, offset in offsets.items() if offset > 0]
    for future in client.delete_records(asked, request_timeout=10).values():
        future.result(timeout=15)


def _published(hub: Hub, count: int, *, seed: int) -> str:
    """``count`` members published by their owner to party-members; its topic."""
    publisher = hub.publisher("coc", DATASET)
    publisher.publish_records(list(generate_party_members(count, seed=seed)))
    publisher.close()
    return hub.governance.dataset(DATASET).topic


def _audit(hub: Hub) -> tuple[int, dict[str, Any]]:
    done = sharehub(hub, "audit", "verify", "--json")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_dataset_topic_keeps_its_events_as_long_as_the_dataset_declares(
    retaining_hub: Hub, kafka_admin: KafkaAccess
) -> None:
    hub = retaining_hub
    topic = hub.governance.dataset(DATASET).topic
    held = _configs(kafka_admin, topic)
    assert (held["retention.ms"], held["segment.ms"]) == (str(DAY_MS), str(DAY_MS))
    kept = _configs(kafka_admin, hub.governance.dataset("handbook-activities").topic)
    assert kept["retention.ms"] == "-1"
    assert _configs(kafka_admin, f"{hub.anchors.topic_prefix}-governance")["retention.ms"] == "-1"

    # A topic whose retention differs from its dataset's (made before, or changed on the broker) is set
    # back by governance's next provisioning.
    client = AdminClient(client_config(kafka_admin))
    entry = ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in client.incremental_alter_configs([resource]).values():
        future.result(timeout=10)
    assert _configs(kafka_admin, topic)["retention.ms"] == "-1"
    hub.governance_desk().provision()
    assert _configs(kafka_admin, topic)["retention.ms"] == str(DAY_MS)
    # Nothing to align (a hub with no dataset yet), or topics not made yet: nothing is asked or changed.
    assert align_retention(hub.kafka_admin, []) == []
    assert align_retention(hub.kafka_admin, [TopicSpec(f"{topic}.none", 1, DAY_MS)]) == []
    assert align_retention(hub.kafka_admin, [TopicSpec(topic, 3, DAY_MS)]) == []  # already as declared


def test_events_retained_away_leave_the_projection_and_the_audit_clean(
    retaining_hub: Hub, kafka_admin: KafkaAccess
) -> None:
    hub = retaining_hub
    topic = hub.governance.dataset(DATASET).topic
    members = list(generate_party_members(100, seed=61))
    publisher = hub.publisher("coc", DATASET)
    publisher.publish_records(members[:60])
    first_batch_ends = {p: high for p, (_, high) in _ends(hub, topic).items()}
    publisher.publish_records(members[60:])
    publisher.close()
    _delete_before(kafka_admin, topic, first_batch_ends)
    retained = sum(first_batch_ends.values())
    assert retained == 60 and {low for low, _ in _ends(hub, topic).values()} - {0}

    worker = Worker(hub)
    worker.start()
    try:
        store = hub.store(CONSUMER)
        wait_until(lambda: store.count(DATASET) == 40, timeout=120, what="the 40 events held", log=worker.log)
        time.sleep(1)  # nothing more comes, and nothing is quarantined
        assert store.count(DATASET) == 40
        operations = Operations(governance=hub, read_models=hub, kafka=hub.kafka)
        assert operations.status()["quarantined"] == {}
    finally:
        worker.stop()
    # The read model is what the log (as it stands) gives.
    audited = sharehub(hub, "audit", "state-hash", "--consumer", CONSUMER, "--live")
    assert audited.returncode == 0, audited.stdout + audited.stderr

    code, report = _audit(hub)
    assert code == 0 and report["findings"] == 0, report["results"]
    summary = report["topics"][topic]
    assert (summary["records"], summary["retained_away"]) == (40, 60)
    assert "60 records retained away" in summary["note"]
    checkpoint_topic = hub.governance.checkpoint_topic("coc")
    assert report["topics"][checkpoint_topic]["findings"] == 0
    # The same, audited by worker processes over parts of each lane.
    parts = sharehub(hub, "audit", "verify", "--json", "--workers", "2", "--part-size", "7")
    assert parts.returncode == 0, parts.stderr
    assert json.loads(parts.stdout)["topics"][topic]["retained_away"] == 60


def test_records_deleted_from_a_dataset_kept_for_ever_are_a_finding(
    tmp_path: Path, kafka_bootstrap: str, kafka_admin: KafkaAccess
) -> None:
    hub = _hub(tmp_path, kafka_bootstrap, -1)
    try:
        topic = _published(hub, 30, seed=62)
        ends = _ends(hub, topic)
        _delete_before(kafka_admin, topic, {p: high // 2 for p, (_, high) in ends.items()})
        code, report = _audit(hub)
    finally:
        hub.close()
    assert code == 1
    deleted = [r for r in report["results"] if r["reason"] == "deleted_records"]
    assert {r["partition"] for r in deleted} == {p for p, (_, high) in ends.items() if high // 2}
    assert all("keeps its events for ever" in r["detail"] for r in deleted)
    assert report["topics"][topic]["retained_away"] == 0


def test_kafka_deletes_a_dataset_topics_events_past_their_retention(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Real retention: two seconds, on the test broker that checks retention every five."""
    hub = _hub(tmp_path, kafka_bootstrap, 2_000)
    try:
        topic = _published(hub, 20, seed=63)
        wait_until(
            lambda: all(low == high for low, high in _ends(hub, topic).values()),
            timeout=60,
            what="the events deleted past their retention",
        )
        code, report = _audit(hub)
    finally:
        hub.close()
    assert code == 0, report["results"]
    assert report["topics"][topic]["retained_away"] == 20


def test_a_datasets_retention_changed_and_its_topic_follows(
    tmp_path: Path, kafka_bootstrap: str, kafka_admin: KafkaAccess
) -> None:
    """Kept for ever, records deleted (a finding, as above). The owner gives it a day over HTTP: the topic
    keeps a day at once, and the deletion is still a finding (no event of it can be a day old yet). The
    operator makes it a second from the command line: a retention that could have deleted them, so they
    are retained away. Kept for ever again: the topic too, and nothing comes back as a finding. The same
    retention twice, neither option or both, or one out of range are refused."""
    hub = _hub(tmp_path, kafka_bootstrap, -1)
    try:
        topic = _published(hub, 6, seed=64)
        _delete_before(kafka_admin, topic, {p: high for p, (_, high) in _ends(hub, topic).items()})

        def deleted() -> list[str]:
            report = audit_verify(hub.kafka, hub.governance_state(refresh=True), timeout=15)
            return [e.detail for e in report.findings if e.chain == "deleted_records"]

        client = TestClient(create_app(hub))
        auth = {"Authorization": f"Bearer {issue_credential(hub, 'coc')}"}

        def change(retention_ms: int) -> Any:
            body = {"dataset": DATASET, "retention_ms": retention_ms, "reason": "as the archive rules say"}
            return client.post("/v1/gov/set-dataset-retention", json=body, headers=auth)

        changed = change(DAY_MS)
        assert changed.status_code == 201, changed.text
        assert changed.json()["type"] == "DatasetRetentionChanged"
        held = _configs(kafka_admin, topic)
        assert (held["retention.ms"], held["segment.ms"]) == (str(DAY_MS), str(DAY_MS))
        found = deleted()
        assert found and all("no retention of it could delete one before" in d for d in found), found
        again = change(DAY_MS)
        assert again.status_code == 400 and "changes nothing" in again.json()["detail"]

        def cli(*options: str) -> Any:
            args = ["set-dataset-retention", DATASET, *options, "--reason", "r", "--as", "cpo"]
            return CliRunner().invoke(gov_commands.app, args, env=hub_env(hub))

        done = cli("--retention-ms", "1000")
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["type"] == "DatasetRetentionChanged"
        assert _configs(kafka_admin, topic)["retention.ms"] == "1000"
        assert deleted() == []
        assert change(-1).status_code == 201
        held = _configs(kafka_admin, topic)
        assert held["retention.ms"] == "-1" and held["segment.ms"] == str(7 * DAY_MS)  # the broker's default
        assert deleted() == []
        assert cli().exit_code == 2 and cli("--retention-ms", "5", "--keep-for-ever").exit_code == 2
        assert change(0).status_code == 400
    finally:
        hub.close()
