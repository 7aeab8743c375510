"""The auditor (the Central Inspection Commission) verifies the hub's log from its own site: its own client
certificate, the pinned operator key and the hub CA, and nothing else — no master key, no key store, no hub
password. The broker lets it read and nothing more. Against the real broker, through the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from connectors.sdk import BrokerLogin, HubAddress, SiteSession, connect, make_tls_request
from connectors.site import PASSPHRASE_BESIDE, AgencySite
from services.hub import Hub
from sharehub import pki
from sharehub.gov import anchors
from sharehub.kafka import KafkaAccess, client_config, producer_config
from sharehub.keys import write_private
from tests.kafka_helpers import topic_messages
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka

DATASET = "party-members"


PASSPHRASE = b"the auditor's own passphrase"


def _auditor_site(hub: Hub, tmp_path: Path, agency: str = "cic") -> Path:
    home = tmp_path / "sites" / agency
    AgencySite.init(home, agency, PASSPHRASE)
    write_private(
        home / PASSPHRASE_BESIDE, PASSPHRASE + b"\n"
    )  # what opens its TLS key, as the demo keeps it
    request = make_tls_request(home, hub.anchors.topic_prefix, PASSPHRASE)
    certificate = pki.HubCA.load(hub.settings.kafka_ca_path.parent).sign_csr(
        request.read_bytes(), hub.principal(agency)
    )
    connect(
        home,
        HubAddress("https://127.0.0.1:1", hub.settings.mtls_bootstrap),  # the audit needs no API
        trust=anchors.path(hub.home).read_bytes(),
        ca=hub.settings.kafka_ca_path.read_bytes(),
        credential="unused",
        login=BrokerLogin(certificate=certificate),
    )
    return home


def _audit(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }
    return subprocess.run(
        [sys.executable, "-m", "services", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_auditor_verifies_from_its_own_site_and_names_the_offset_of_a_tampered_event(
    hub: Hub, tmp_path: Path
) -> None:
    hub.publisher("coc", DATASET).publish_records(list(generate_party_members(20, seed=6)))
    home = _auditor_site(hub, tmp_path)
    assert not [p for p in home.rglob("*") if p.name in ("master.key", "keys.db", "admin.password")]

    clean = _audit(home)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    topic = hub.governance.dataset(DATASET).topic
    partition, _, original = next(iter(topic_messages(hub, topic)))
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    producer = Producer(producer_config(hub.kafka_admin))  # someone with the broker's keys rewrites an event
    producer.produce(topic, value=bytes(tampered), partition=partition)
    assert producer.flush(30) == 0
    offset = max(o for p, o, _ in topic_messages(hub, topic) if p == partition)

    found = _audit(home)
    assert found.returncode == 1, found.stdout + found.stderr
    line = next(row for row in found.stdout.splitlines() if f"\t{offset}\t" in row or f" {offset} " in row)
    assert line.startswith(f"{topic}\t{partition}\t{offset}\t")
    assert any(reason in line for reason in ("bad_signature", "malformed", "decryption_failed"))


def test_the_auditor_reads_and_writes_nothing(hub: Hub, tmp_path: Path) -> None:
    session = SiteSession(_auditor_site(hub, tmp_path), PASSPHRASE)
    assert session.governance().head_sequence == hub.governance_state(refresh=True).head_sequence
    auditor: KafkaAccess = session.kafka
    producer = Producer(client_config(auditor))  # not idempotent: the broker answers per topic
    failures: list[str] = []
    producer.produce(
        hub.governance.dataset(DATASET).topic, value=b"x", on_delivery=lambda e, _m: failures.append(str(e))
    )
    producer.flush(30)
    assert failures and "TOPIC_AUTHORIZATION_FAILED" in failures[0]


def test_an_agency_that_is_not_the_auditor_cannot_read_another_owners_dataset(
    hub: Hub, tmp_path: Path
) -> None:
    hub.publisher("coc", DATASET).publish_records(list(generate_party_members(2, seed=1)))
    session = SiteSession(_auditor_site(hub, tmp_path, "dongthap-ppc"), PASSPHRASE)
    from services.audit import audit_verify
    from sharehub.errors import BrokerError

    with pytest.raises(BrokerError):
        audit_verify(session.kafka, hub.governance, timeout=15)
