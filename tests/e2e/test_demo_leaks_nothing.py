"""`make demo` as a user runs it, then every file it wrote is searched for what must never be in clear.

The demo runs end to end with its own local broker (a home of its own, free ports): governance, 300 members
published, the worker and the API, a query with the printed credential, `audit verify`, `demo down`. Then
every byte of every file under its home (the broker's topic segments and logs, the worker's and the API's
logs, the read models, the key store) is searched for each member's national id and phone number (granted to
no consumer), each key's bytes from the key store, the master key, the broker's passwords and the
credential. Only the files that hold a secret by design are left out of the search for that secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from connectors.site import AgencySite, read_passphrase
from sharehub.gov.apply import read_spec
from sharehub.kek import FileKek
from sharehub.keys import LocalKeyStore, SigningKey, load_master_key
from tests.conftest import DEMO_SPEC
from tests.kafka_helpers import free_port
from tests.secret_scan import Needles, files_under
from tooling.synthetic import generate_party_members

MEMBERS = 300
SEED = 384


def _three_free_ports() -> int:
    """A port whose next two are free too (the local broker's client, controller and mutual-TLS
    listeners)."""
    for _ in range(50):
        port = free_port()
        if port < 65000 and _free(port + 1) and _free(port + 2):
            return port
    raise AssertionError("no two consecutive free ports")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _run(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A demo that ran and was stopped (so the broker's files are closed and trimmed): its home, the
    credential it printed, its environment."""
    home = tmp_path_factory.mktemp("demo") / ".sharehub"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
    env |= {
        "SHAREHUB_HOME": str(home),
        "SHAREHUB_LOCAL_KAFKA_PORT": str(_three_free_ports()),
        "SHAREHUB_API_PORT": str(free_port()),
    }
    try:
        up = _run(env, "demo", "up", "--members", str(MEMBERS), "--seed", str(SEED), timeout=420)
        assert up.returncode == 0, up.stdout + up.stderr
        token = re.search(r"Bearer (shc_[A-Za-z0-9_-]+)", up.stdout)
        url = re.search(r"--cacert '([^']+)' -H '[^']+' '(https://[^']+)'", up.stdout)
        assert token and url, up.stdout
        with httpx.Client(verify=ssl.create_default_context(cafile=url.group(1)), timeout=30) as api:
            answer = api.get(url.group(2), headers={"Authorization": f"Bearer {token.group(1)}"})
            assert answer.status_code == 200 and len(answer.json()["items"]) == 3
            assert "national_id" not in answer.json()["items"][0]["fields"]
            refused = api.get(url.group(2), headers={"Authorization": "Bearer shc_wrong"})
            assert refused.status_code == 401
        audit = _run(env, "audit", "verify", timeout=300)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        # The auditor, from its own site: its certificate, the pinned operator key, nothing of the hub's.
        auditor = {k: v for k, v in env.items() if k != "SHAREHUB_HOME"} | {
            "SHAREHUB_HOME": str(home / "sites/cic")
        }
        assert not {"master.key", "keys.db"} & {p.name for p in (home / "sites/cic").rglob("*")}
        audit = _run(auditor, "audit", "verify", "--json", timeout=300)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout)["events"] == MEMBERS
    finally:
        down = _run(env, "demo", "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    yield home, token.group(1), env  # stopped: every file is as the demo left it


def _needles(home: Path, credential: str) -> Needles:
    needles = Needles()
    for member in generate_party_members(MEMBERS, SEED):
        needles.add_text(f"national id of {member['member_id']}", member["national_id"])
        if member["phone"]:
            needles.add_text(f"phone of {member['member_id']}", member["phone"])
    copy = home.parent / "keys-copy"
    copy.mkdir()
    for part in home.glob("keys.db*"):
        shutil.copy(part, copy / part.name)
    keys = LocalKeyStore(copy / "keys.db", FileKek(master := load_master_key(home, None)))
    try:
        for key_id, kind, wrapped in keys._db.execute(
            "SELECT key_id, kind, wrapped FROM keys WHERE wrapped IS NOT NULL"
        ):
            needles.add_key(f"{kind} key {key_id}", keys._unwrap(key_id, kind, bytes(wrapped)))
    finally:
        keys.close()
        shutil.rmtree(copy)
    needles.add_key("master key", master.reveal())
    for name in ("admin.password", "controller.password"):
        needles.add_key(f"broker {name}", (home / "kafka" / name).read_text().strip().encode())
    needles.add_key("hub CA passphrase", (home / "tls" / "ca.passphrase").read_text().strip().encode())
    needles.add_key("credential", credential.encode())
    return needles


def _by_design(home: Path) -> list[Path]:
    """Files that hold a secret because that is their job: the master key, the broker's own passwords and
    TLS key (and its configuration, which hands them to its listeners), the hub CA's passphrase, the API's
    TLS key."""
    kafka, tls = home / "kafka", home / "tls"
    # Each agency's site holds its own TLS key and API credential: its, by design, and no one else's.
    logins = [p for site in (home / "sites").iterdir() for p in (site / "client.key", site / "credential")]
    return [
        home / "master.key",
        kafka / "admin.password",
        kafka / "controller.password",
        kafka / "broker.key",
        kafka / "server.properties",
        tls / "ca.passphrase",
        tls / "api.key",
        *logins,
    ]


def test_no_personal_datum_key_or_password_is_in_any_file_the_demo_wrote(
    demo: tuple[Path, str, dict[str, str]],
) -> None:
    home, credential, _ = demo
    needles = _needles(home, credential)
    files = files_under(home, except_=_by_design(home))
    names = {str(p.relative_to(home)) for p in files}
    # The search covered what matters: the topic's segments, the broker's logs, the processes' logs.
    assert any(re.fullmatch(r"kafka/data/sharehub\.coc\.party-members-\d+/\d+\.log", n) for n in names)
    assert any(n.startswith("kafka/logs/") for n in names)
    assert {"run/projector.log", "run/api.log", "keys.db"} <= names
    assert needles.count > 2 * MEMBERS
    findings = needles.scan(files)
    assert findings == [], "\n".join(map(str, findings[:20]))


def test_the_search_finds_a_national_id_planted_in_a_log(demo: tuple[Path, str, dict[str, str]]) -> None:
    home, credential, _ = demo
    member = next(iter(generate_party_members(1, SEED)))
    log = home / "run" / "projector.log"
    with log.open("a") as out:
        out.write(f"applied member with national id {member['national_id']}\n")
    findings = _needles(home, credential).scan(files_under(home, except_=_by_design(home)))
    assert [(f.path, f.label) for f in findings] == [(log, f"national id of {member['member_id']}")]


def test_each_agency_key_stays_at_its_site_and_nothing_of_the_hub_holds_it(
    demo: tuple[Path, str, dict[str, str]],
) -> None:
    home, _, _ = demo
    sites = sorted(p for p in (home / "sites").iterdir() if p.is_dir())
    assert [s.name for s in sites] == sorted(read_spec(DEMO_SPEC).site_agencies)
    needles = Needles()
    for site_home in sites:
        site = AgencySite(site_home)
        key = site.signing_key(read_passphrase(site_home / "signing.passphrase"))
        assert isinstance(key, SigningKey)  # the demo's sites keep their keys in files
        raw = key.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        needles.add_key(f"private key {key.key_id}", raw)
        # The site holds only its own agency's keys.
        kept = {"site.json", "keys", "requests", "signing.passphrase"}
        # An owner's site publishes, the auditor's verifies: each logs in with its own certificate.
        connected = {
            "hub.json",
            "trust.json",
            "ca.pem",
            "credential",
            "client.key",
            "client.csr",
            "client.pem",
        }
        assert {p.name for p in site_home.iterdir()} <= kept | connected
    hub_files = [p for p in files_under(home, except_=[]) if not p.is_relative_to(home / "sites")]
    assert needles.scan(hub_files) == []
    copy = home.parent / "keys-copy-sites"
    copy.mkdir()
    for part in home.glob("keys.db*"):
        shutil.copy(part, copy / part.name)
    keys = LocalKeyStore(copy / "keys.db", FileKek(load_master_key(home, None)))
    try:
        signing = [k for (k,) in keys._db.execute("SELECT key_id FROM keys WHERE kind = 'signing'")]
    finally:
        keys.close()
        shutil.rmtree(copy)
    assert signing == ["cpo/sign/1"], "the hub's key store holds the operator's key, no agency's"
