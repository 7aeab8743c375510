"""The restore drill on the real broker and PostgreSQL: a hub with data projected into its read models is
backed up, its home and its read models are lost, its backup is restored into a fresh home (a fresh
machine) with the master key kept apart, and every read model rebuilt from the log hashes as before."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.journal import journal_paths, read_journal
from services.cli.hub_commands import replay_parts
from services.erasure import ErasureParts, erase_subject, verify_receipt
from services.hub import Hub
from services.operations import Operations
from services.rebuild import rebuild
from sharehub import pki
from tests.kafka_helpers import Worker, hub_env, wait_until
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
DATASET = "party-members"


@pytest.fixture
def on_postgres(hub: Hub) -> Iterator[Hub]:
    """The test hub with its read models in the test PostgreSQL server (schemas dropped afterwards)."""
    url = os.environ.get("SHAREHUB_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("SHAREHUB_TEST_POSTGRES_URL is not set: run the suite with 'make test'")
    hub.close()
    on_postgres = Hub(hub.settings.model_copy(update={"read_model_url": url}))
    consumers = on_postgres.consumers()
    yield on_postgres
    on_postgres.close()
    with Hub(on_postgres.settings) as cleanup:
        for consumer in consumers:
            cleanup.store(consumer).drop()


def run(hub: Hub, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line against ``hub``, with extra settings (the master key's file)."""
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        env=hub_env(hub, **env), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def hashes(lines: str) -> dict[str, str]:
    return dict(line.split("\t") for line in lines.splitlines())


def project_everything(hub: Hub) -> None:
    """Run the projection worker until every read model holds every event of the log, then stop it."""
    worker = Worker(hub)
    operations = Operations(governance=hub, read_models=hub, kafka=hub.kafka)
    worker.start()
    try:
        wait_until(
            lambda: all(m["lag_events"] == 0 for m in operations.status()["read_models"]),
            timeout=120, what="every read model caught up", log=worker.log,
        )  # fmt: skip
    finally:
        worker.stop()


def test_a_hub_restored_on_a_fresh_machine_rebuilds_every_read_model_to_the_hashes_it_had(
    on_postgres: Hub, tmp_path: Path
) -> None:
    hub = on_postgres
    ca = pki.HubCA.open(hub.settings.tls_dir)
    pki.server_certificate(ca, hub.settings.tls_dir, "api", [])
    members = tmp_path / "members.jsonl"
    write_jsonl(generate_party_members(120, seed=31), members)
    published = run(hub, "publish", "--as", "coc", "--dataset", DATASET, str(members))
    assert published.returncode == 0, published.stderr
    erased = "PM0000000007"
    erasure = ErasureParts(hub.governance, hub.keys, hub.publisher, receipts=hub.home / "erasures")
    receipt = erase_subject(
        erasure, dataset=DATASET, record_key=erased, requested_by="coc", approved_by="cpo"
    )
    assert receipt["event"]["signer_key_id"] == "coc/custody/1", "the owner's ERASED event is its request"
    verify_receipt(receipt, hub.governance)
    project_everything(hub)
    before = {consumer: hub.store(consumer).state_hash() for consumer in hub.consumers()}
    assert hub.store("dongthap-ppc").count(DATASET) == 119
    ca_pem, prefix = ca.pem, hub.anchors.topic_prefix

    vault = tmp_path / "vault" / "master.key"  # the operator keeps the master key apart from the backup
    vault.parent.mkdir()
    shutil.copy2(hub.home / "master.key", vault)
    archive = tmp_path / "offsite" / "hub.tar"
    archive.parent.mkdir()
    made = run(hub, "backup", "create", str(archive))
    assert made.returncode == 0, made.stderr
    names = [line.split()[1] for line in made.stdout.splitlines()]
    assert {"keys.db", "trust.json", "tls/ca.key", "tls/ca.passphrase", "tls/api.key"} <= set(names)
    assert any(n.startswith("erasures/") for n in names) and any(n.startswith("connectors/") for n in names)

    shutil.rmtree(hub.home)  # the machine is lost, and the read models' database with it
    for consumer in before:
        hub.store(consumer).drop()
    hub.close()

    fresh = Hub(hub.settings.model_copy(update={"home": tmp_path / "new-machine" / "home"}))
    key = {"SHAREHUB_MASTER_KEY_FILE": str(vault)}
    restore = ["backup", "restore", str(archive), "--home", str(fresh.home), "--topic-prefix", prefix]
    restored = run(fresh, *restore, "--master-key-file", str(vault))
    assert restored.returncode == 0, restored.stderr
    rebuilt = run(fresh, "project", "rebuild", "--all", **key)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert hashes(rebuilt.stdout) == before
    assert (fresh.home / "tls" / "ca.pem").read_bytes() == ca_pem

    [journal] = journal_paths(fresh.home)  # the file is done there: offered again, it sends nothing
    assert [(s.done, s.published) for s in read_journal(journal).values()] == [(True, 120)]
    with Hub(fresh.settings.model_copy(update={"master_key_file": vault})) as restored_hub:
        with restored_hub.publisher("coc", DATASET) as publisher:  # the restored keys seal, and open below
            assert publisher.publish_records(list(generate_party_members(125, seed=31))[120:]).published == 5
        done = rebuild(replay_parts(restored_hub), restored_hub, "dongthap-ppc")
        assert (done.rows, done.quarantined) == (124, 0)
        assert restored_hub.store("dongthap-ppc").get(DATASET, erased) is None, (
            "an erased subject stays erased"
        )
    audit = run(fresh, "audit", "verify", **key)
    assert audit.returncode == 0, audit.stdout + audit.stderr
