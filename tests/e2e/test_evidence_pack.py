"""Evidence packs end to end: a real broker and API process; the auditor packs a consumer's data and one
subject's from its own site, then verifies each pack offline (no broker: the address points nowhere), with
the anchor ``audit pack`` printed and with its own site's trust. (Changed bytes, forgeries and bad input are
tests/unit/test_evidence_pack.py's, over a pack built once.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from projections.projector import LogMessage
from services.access_audit import AccessQuestion, answered
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.envelope import pseudonym
from tests.e2e.test_auditor_site import _auditor_site
from tests.kafka_helpers import https_client, sharehub, topic_messages
from tests.unit.test_projector import apply, projector
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka

DATASET = "party-members"
CONSUMER = "dongthap-ppc"
RECORDS = f"/v1/consumers/{CONSUMER}/datasets/{DATASET}/records"


def _run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``sharehub audit ...`` at the auditor's site, with nothing of the test's environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "services", "audit", *args],
        env=clean | {"SHAREHUB_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def _offline(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(home, "verify-pack", *args, SHAREHUB_KAFKA_BOOTSTRAP="127.0.0.1:1")


def _report(pack: Path) -> dict[str, object]:
    with zipfile.ZipFile(pack) as zf:
        report: dict[str, object] = json.loads(zf.read("report.json"))
        return report


def _asked(hub: Hub, **criteria: str) -> int:
    """How many access records ``audit access`` answers for these criteria."""
    return len(answered(hub.kafka, hub.governance.access_log_topic, AccessQuestion(**criteria)))


def test_the_auditor_packs_evidence_and_verifies_it_offline(hub: Hub, api: str, tmp_path: Path) -> None:
    members = list(generate_party_members(30, seed=20))
    with hub.publisher("coc", DATASET) as publisher:
        assert publisher.publish_records(members).published == 30
    topic = hub.governance.dataset(DATASET).topic
    apply(projector(hub), [LogMessage(topic, p, o, None, v) for p, o, v in topic_messages(hub, topic)])
    assert hub.store(CONSUMER).count(DATASET) == 30
    key = str(members[3]["member_id"])
    with https_client(hub) as c:
        auth = {"Authorization": f"Bearer {issue_credential(hub, CONSUMER)}"}
        assert c.get(api + RECORDS, params={"purpose": "Audit", "limit": 5}, headers=auth).status_code == 200
        assert c.get(f"{api}{RECORDS}/{key}", params={"purpose": "One"}, headers=auth).status_code == 200

    home = _auditor_site(hub, tmp_path)
    pack = tmp_path / "dongthap.zip"
    made = _run(home, "pack", "--consumer", CONSUMER, str(pack))
    assert made.returncode == 0, made.stderr
    anchor = made.stdout.split("anchor ")[1].split()[0]
    assert f"trust anchor {anchor}" in sharehub(hub, "gov", "verify").stdout  # the hub prints the same
    checked = _offline(home, str(pack), "--anchor", anchor)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "30 events in scope, 30 covered by a signed checkpoint; 0 findings" in checked.stdout
    report = _report(pack)
    assert report["events_in_scope"] == 30 and report["findings"] == []
    assert report["records"]["access-log"]["verified"] == _asked(hub, consumer=CONSUMER) >= 2  # type: ignore[index]

    # One subject: the owner tells the auditor its pseudonym.
    ref = pseudonym(hub.keys.routing_key(DATASET), key).hex()
    subject = tmp_path / "subject.zip"
    made = _run(home, "pack", "--dataset", DATASET, "--subject-ref", ref, str(subject))
    assert made.returncode == 0, made.stderr
    checked = _offline(home, str(subject))  # the anchor of the auditor's own trust.json
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 events in scope, 1 covered by a signed checkpoint; 0 findings" in checked.stdout
    in_scope = _asked(hub, dataset=DATASET, subject_ref=ref)
    assert _report(subject)["records"]["access-log"]["verified"] == in_scope >= 1  # type: ignore[index]
    assert _offline(home, str(subject), "--anchor", "0" * 64).returncode == 1  # another hub's anchor
