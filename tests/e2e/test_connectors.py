"""Connectors at an agency's site publish exactly once, across a kill -9 in the middle of a file: `sharehub
publish` and the file-drop connector (`sharehub connect files`), against the real broker, the real key
service and a real site. Each record is counted on the topic by opening every envelope.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from connectors.journal import journal_path, read_journal
from services.hub import Hub
from services.rebuild import ReplayParts, rebuild
from sharehub.errors import ConfigurationError
from tests.e2e.test_agency_sdk import PASSPHRASE, _site
from tests.kafka_helpers import free_port, topic_messages, wait_until
from tests.process_helpers import kill_when
from tooling.synthetic import generate_party_members, write_jsonl

pytestmark = pytest.mark.kafka

DATASET = "party-members"
#: A consumer of every party member (no row filter): its read model shows each record once, or not.
READER = "dongthap-ppc"


def _connected_site(hub: Hub, tmp_path: Path, api: str) -> tuple[Path, dict[str, str]]:
    home = _site(hub, tmp_path, api)
    secret = home / "signing.passphrase"
    secret.write_bytes(PASSPHRASE)
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")} | {
        "SHAREHUB_HOME": str(home)
    }
    return home, env


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "services", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services", *args], env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip


def _kill_mid_file(process: subprocess.Popen[str], journal: Path, at_least: int) -> int:
    """SIGKILL ``process`` once its journal says ``at_least`` lines are acknowledged; the position then."""

    def acked() -> int:
        try:
            return max((s.acked for s in read_journal(journal).values()), default=0)
        except ConfigurationError:  # stopped inside a write of its journal, holding its lock
            return 0

    kill_when(process, lambda: acked() >= at_least)
    return acked()


def _events_per_member(hub: Hub) -> collections.Counter[str]:
    codec = hub.codec(DATASET)
    topic = hub.governance_state(refresh=True).dataset(DATASET).topic
    opened = codec.open_many([(p, raw) for p, _, raw in topic_messages(hub, topic)])
    return collections.Counter(str(getattr(o, "record_key", None)) for o in opened)


def _in_the_read_model(hub: Hub) -> dict[str, int]:
    """The log projected by the real projector into a read model of every member (Dong Thap's agreement has
    no row filter): record key -> events applied to it."""
    parts = ReplayParts(governance=hub, keys=hub.keys, kafka=hub.kafka, settings=hub.settings)
    rebuild(parts, hub, READER)
    return hub.store(READER).versions(DATASET)


def test_publish_killed_mid_file_resumes_and_every_record_is_on_the_topic_once(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home, env = _connected_site(hub, tmp_path, api)
    members = list(generate_party_members(4000, seed=21))
    data = tmp_path / "members.jsonl"
    write_jsonl(members, data)
    args = ("publish", "--as", "coc", "--dataset", DATASET, str(data), "--checkpoint-every", "40")
    killed_at = _kill_mid_file(_start(env, *args, "--quiet"), journal_path(home, DATASET),
                               400)  # fmt: skip
    assert 400 <= killed_at < 4000

    resumed = _run(env, *args)
    assert resumed.returncode == 0, resumed.stderr
    skipped = int(resumed.stderr.split("skipped ")[1].split()[0])
    assert skipped >= killed_at, "what the journal vouched for was not sent again"
    counts = _events_per_member(hub)
    assert set(counts) == {m["member_id"] for m in members}
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1][:5]
    applied = _in_the_read_model(hub)
    assert set(applied) == set(counts) and set(applied.values()) == {1}, "each record in the read model once"

    again = _run(env, *args)
    assert again.returncode == 0 and "was published before: nothing sent again" in again.stderr
    assert sum(_events_per_member(hub).values()) == 4000


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_the_file_drop_connector_killed_mid_file_publishes_each_row_once(
    hub: Hub, api: str, tmp_path: Path
) -> None:
    home, env = _connected_site(hub, tmp_path, api)
    drop = tmp_path / "drop"
    drop.mkdir()
    members: list[dict[str, object]] = list(generate_party_members(3000, seed=31))
    members[9]["date_of_birth"] = "1990-13-01"  # line 11 (the header is line 1)
    members[99]["gender"] = "X"  # line 101
    _write_csv(drop / "members.csv", members)
    with (drop / "members.csv").open("a", encoding="utf-8") as out:
        out.write("too,few,cells\n")  # line 3002
    extra = list(generate_party_members(3010, seed=31))[3000:]
    write_jsonl(extra, drop / ".extra.jsonl")
    (drop / ".extra.jsonl").rename(drop / "extra.jsonl")
    (drop / "still-writing.jsonl.part").write_text("{}\n")

    common = (
        "connect",
        "files",
        str(drop),
        "--dataset",
        DATASET,
        "--settle",
        "0",
        "--checkpoint-every",
        "40",
    )
    journal = journal_path(home, DATASET)
    _kill_mid_file(_start(env, *common, "--once", "--quiet"), journal, 400)

    port = free_port()
    watching = _start(env, *common, "--metrics-port", str(port), "--poll", "0.2")
    wait_until(lambda: not (drop / "members.csv").exists() and not (drop / "extra.jsonl").exists()
               or watching.poll() is not None, timeout=120, what="both files done")  # fmt: skip
    metrics = _metrics(port)
    watching.send_signal(signal.SIGTERM)
    _, stderr = watching.communicate(timeout=30)
    assert watching.returncode == 0, stderr
    assert 'sharehub_connector_rejects{dataset="party-members",file="members.csv"} 3.0' in metrics
    assert 'sharehub_connector_lines_pending{dataset="party-members",file="extra.jsonl"} 0.0' in metrics

    assert sorted(p.name for p in (drop / "done").iterdir()) == ["extra.jsonl", "members.csv"]
    assert (drop / "still-writing.jsonl.part").exists(), "a file not yet renamed into place is left alone"
    rejects = [
        json.loads(line) for line in (drop / "rejects" / "members.csv.rejects.jsonl").read_text().splitlines()
    ]
    assert [r["line"] for r in rejects] == [11, 101, 3002]
    assert "date_of_birth" in rejects[0]["reason"] and "gender" in rejects[1]["reason"]
    assert "3 cells where the header names 13 columns" in rejects[2]["reason"]

    counts = _events_per_member(hub)
    expected = {str(m["member_id"]) for m in members + extra} - {
        members[9]["member_id"],
        members[99]["member_id"],
    }
    assert set(counts) == expected and set(counts.values()) == {1}
    applied = _in_the_read_model(hub)
    assert set(applied) == expected and set(applied.values()) == {1}, "each row in the read model once"

    status = _run(env, "connect", "status")
    assert status.returncode == 0, status.stderr
    row = next((line for line in status.stdout.splitlines() if "members.csv" in line), status.stdout)
    assert "done" in row and "3002" in row and " 3 " in row
