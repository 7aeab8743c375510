"""R6 on disk: once a member is erased, none of its plaintext and none of its key's bytes is in any file
the hub wrote, while the hub runs: not in the key store or its write-ahead log (a copy of ``keys.db`` taken
after the erasure holds nothing to unwrap), not in a read model or its write-ahead log, not in a topic
segment (the access log names records by pseudonym)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.governance_bootstrap import issue_credential
from services.hub import Hub
from sharehub.envelope import pseudonym
from sharehub.kek import load_kek
from sharehub.keys import LocalKeyStore, subject_key_id
from tests.kafka_helpers import Worker, sharehub, wait_until
from tests.secret_scan import Needles, files_under
from tooling.synthetic import generate_party_members

pytestmark = pytest.mark.kafka
DATASET = "party-members"


def _unique_member(members: list[dict[str, object]]) -> dict[str, object]:
    names = [m["full_name"] for m in members]
    return next(m for m in members if names.count(m["full_name"]) == 1 and m["phone"])


def _files(hub: Hub, kafka_data_dir: Path) -> list[Path]:
    """Every file of the hub's home, and every segment of its topics on the broker."""
    prefix = hub.anchors.topic_prefix
    topics = [
        d
        for d in kafka_data_dir.iterdir()
        if d.name.startswith(f"{prefix}.") or d.name.startswith(f"{prefix}-")
    ]
    assert topics, f"no topic of {prefix} under {kafka_data_dir}"
    return files_under(hub.home, except_=[hub.home / "master.key"]) + [
        f for d in topics for f in files_under(d)
    ]


def test_an_erased_member_leaves_no_plaintext_and_no_key_bytes_in_any_file(
    hub: Hub, worker: Worker, kafka_data_dir: Path, tmp_path: Path
) -> None:
    members = list(generate_party_members(40, seed=21))
    assert hub.publisher("coc", DATASET).publish_records(members).published == 40
    worker.start()
    stores = [hub.store("dongthap-ppc"), hub.store("langson-ppc")]
    wait_until(
        lambda: all(s.count(DATASET) == 40 for s in stores), timeout=90, what="40 rows", log=worker.log
    )
    subject = _unique_member(members)
    key = str(subject["member_id"])
    # Read through the API, as a consumer would: the access log records the query.
    api = TestClient(create_app(hub))
    auth = {"Authorization": f"Bearer {issue_credential(hub, 'dongthap-ppc')}"}
    url = f"/v1/consumers/dongthap-ppc/datasets/{DATASET}/records/{key}"
    assert api.get(url, params={"purpose": "Transfer of a member"}, headers=auth).status_code == 200

    ref = pseudonym(hub.keys.routing_key(DATASET), key)
    key_id = subject_key_id(DATASET, ref)
    raw_key = hub.keys.subject_key(key_id).reveal()
    wrapped = hub.keys._db.execute(
        "SELECT wrapped FROM keys WHERE kind = 'subject' AND key_id = ?", (key_id,)
    )
    needles = Needles()
    needles.add_text("member id", key)
    needles.add_text("full name", str(subject["full_name"]))
    needles.add_text("national id", str(subject["national_id"]))
    needles.add_text("phone", str(subject["phone"]))
    needles.add_key("subject key", raw_key)
    needles.add_key("wrapped subject key", bytes(wrapped.fetchone()[0]))
    # The search looks where the data is: before the erasure it finds the member in the read models.
    before = {f.label for f in needles.scan(_files(hub, kafka_data_dir))}
    assert {"member id", "full name"} <= before, before

    erased = sharehub(hub, "gov", "erase", "--dataset", DATASET, "--subject", key,
                      "--requested-by", "coc", "--approved-by", "cpo")  # fmt: skip
    assert erased.returncode == 0, erased.stderr
    receipt = json.loads(erased.stdout)
    assert receipt["key_store"] == {"wrapped_key_overwritten": True, "write_ahead_log_truncated": True}
    wait_until(lambda: all(s.get(DATASET, key) is None for s in stores), timeout=60, what="the purge",
               log=worker.log)  # fmt: skip
    # A copy of the key store taken now, with the master key, unwraps nothing of the subject.
    copy = tmp_path / "stolen"
    copy.mkdir()
    for part in hub.home.glob("keys.db*"):
        shutil.copy(part, copy / part.name)
    stolen = LocalKeyStore(copy / "keys.db", load_kek(hub.settings, hub.home))
    try:
        row = stolen._db.execute("SELECT wrapped FROM keys WHERE kind = 'subject' AND key_id = ?", (key_id,))
        assert row.fetchone()[0] is None
    finally:
        stolen.close()

    # While the worker, the API and this hub still have every store open:
    findings = needles.scan(_files(hub, kafka_data_dir))
    assert findings == [], "\n".join(map(str, findings))
    assert worker.alive()
