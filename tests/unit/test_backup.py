"""`sharehub backup`: what goes into a backup (and what never does), and every bad input refused with a clear
message and exit code, changing nothing. No broker: the hub's governance log is in memory; the restore onto
a fresh machine with the real broker is tests/e2e/test_backup_restore.py."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from services.backup_archive import MANIFEST
from services.cli import backup_commands
from services.hub import Hub
from sharehub import pki
from sharehub.kek import FileKek
from sharehub.kek_pkcs11 import Pkcs11Kek
from sharehub.keys import LocalKeyStore, load_master_key, subject_key_id
from tests.softhsm import SoftHsmToken

_UNSET = ("SHAREHUB_MASTER_KEY", "SHAREHUB_MASTER_KEY_FILE", "SHAREHUB_KEK", "SHAREHUB_READ_MODEL_URL")


def backup(home: Path, *args: str, **env: str) -> Result:
    root = typer.Typer()
    root.add_typer(backup_commands.app, name="backup")
    root.command()(lambda: None)
    environment: dict[str, str | None] = dict.fromkeys(_UNSET)
    environment |= {"SHAREHUB_HOME": str(home), "SHAREHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9", **env}
    return CliRunner().invoke(root, ["backup", *args], env=environment)


def refused(result: Result, code: int, *phrases: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit | None)
    for phrase in phrases:
        assert phrase in result.output


@pytest.fixture
def home(offline_hub: Hub) -> Path:
    """A hub's home with governance, keys (a subject key committed to the write-ahead log only), its CA and
    the API's certificate."""
    pki.server_certificate(
        pki.HubCA.open(offline_hub.settings.tls_dir), offline_hub.settings.tls_dir, "api", []
    )
    keys = offline_hub.keys
    keys.ensure_subject_keys("party-members", [b"\x01" * 16])
    assert (offline_hub.home / "keys.db-wal").stat().st_size > 0, "the last key is in the write-ahead log"
    return offline_hub.home


@pytest.fixture
def archive(home: Path, tmp_path: Path) -> Path:
    out = tmp_path / "hub.tar"
    made = backup(home, "create", str(out))
    assert made.exit_code == 0, made.output
    return out


@pytest.fixture
def vault(home: Path, tmp_path: Path) -> Path:
    """The master key, kept apart from the backup (as the operator keeps it)."""
    kept = tmp_path / "vault" / "master.key"
    kept.parent.mkdir()
    kept.write_bytes((home / "master.key").read_bytes())
    kept.chmod(0o600)
    return kept


def prefix(home: Path) -> str:
    return str(json.loads((home / "trust.json").read_text())["topic_prefix"])


def restore(archive: Path, home: Path, target: Path, vault: Path, *extra: str) -> Result:
    return backup(
        home, "restore", str(archive), "--home", str(target), "--topic-prefix", prefix(home),
        "--master-key-file", str(vault), *extra,
    )  # fmt: skip


def test_the_backup_holds_the_key_store_at_rest_and_the_anchors_and_ca_but_no_secret_in_clear(
    home: Path, archive: Path
) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    assert names[:2] == ["manifest.json", "manifest.seal"]
    assert set(names[2:]) == {"keys.db", "trust.json", "tls/ca.pem", "tls/ca.key", "tls/ca.passphrase",
                              "tls/api.pem", "tls/api.key"}  # fmt: skip
    assert {m["name"] for m in manifest["members"] if m["sealed"]} == {"tls/ca.passphrase", "tls/api.key"}
    assert manifest["topic_prefix"] == prefix(home) and manifest["kek_id"].startswith("file:")
    assert {"sharehub", "python", "sqlite"} <= set(manifest["versions"]) and manifest["created_at"]
    raw = archive.read_bytes()
    master = load_master_key(home, None).reveal()
    for secret in (master, base64.b64encode(master), (home / "tls" / "ca.passphrase").read_bytes().strip()):
        assert secret not in raw
    api_key = (home / "tls" / "api.key").read_bytes()
    assert b"PRIVATE KEY" in api_key and api_key not in raw and b"-----BEGIN PRIVATE KEY" not in raw


def test_a_restore_gives_a_home_whose_keys_open_with_the_same_master_key(
    home: Path, archive: Path, vault: Path, tmp_path: Path
) -> None:
    target = tmp_path / "fresh" / "home"
    done = restore(archive, home, target, vault)
    assert done.exit_code == 0, done.output
    assert "project rebuild --all" in done.output
    kek = FileKek(load_master_key(target, None, path=vault))
    store = LocalKeyStore(target / "keys.db", kek)
    try:  # the key that was only in the write-ahead log came along: a consistent copy, not a file copy
        assert store.has(subject_key_id("party-members", b"\x01" * 16), "subject")
        assert store.signing_key("cpo").key_id == "cpo/sign/1"
    finally:
        store.close()
    assert pki.HubCA.load(target / "tls").cert == pki.HubCA.load(home / "tls").cert
    assert (target / "tls" / "api.key").read_bytes() == (home / "tls" / "api.key").read_bytes()
    assert f"SHAREHUB_MASTER_KEY_FILE={vault}" in (target / "settings.env").read_text()
    assert not (target / "master.key").exists()
    assert backup(home, "verify", str(archive), "--topic-prefix", prefix(home)).exit_code == 0


def test_what_is_not_an_archive_is_refused(home: Path, vault: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    refused(backup(home, "verify", str(junk)), 2, "not a sharehub backup")
    refused(restore(junk, home, tmp_path / "new", vault), 2, "not a sharehub backup")
    refused(backup(home, "verify", str(tmp_path / "absent.tar")), 2, "not a sharehub backup")
    assert not (tmp_path / "new").exists()


def rewrite(archive: Path, change: dict[str, bytes]) -> Path:
    """A copy of ``archive`` with some members' bytes replaced (or added)."""
    altered = archive.with_name(f"altered-{len(list(archive.parent.glob('altered-*')))}.tar")
    with tarfile.open(archive) as src, tarfile.open(altered, "w") as dst:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers()}  # type: ignore[union-attr]
        for name, data in {**members, **change}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return altered


def member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


def test_a_tampered_member_or_manifest_is_refused_and_the_restore_writes_nothing(
    home: Path, archive: Path, vault: Path, tmp_path: Path
) -> None:
    keys_db = bytearray(member(archive, "keys.db"))
    keys_db[-100] ^= 1
    tampered = rewrite(archive, {"keys.db": bytes(keys_db)})
    refused(backup(home, "verify", str(tampered)), 2, "keys.db was altered")
    target = tmp_path / "new"
    refused(restore(tampered, home, target, vault), 2, "keys.db was altered")
    assert not target.exists() and not list(tmp_path.glob(".new.restore-*"))

    manifest = json.loads(member(archive, MANIFEST))  # the manifest changed to match the altered member
    [entry] = [m for m in manifest["members"] if m["name"] == "keys.db"]
    entry["sha256"] = hashlib.sha256(keys_db).hexdigest()
    forged = rewrite(tampered, {MANIFEST: json.dumps(manifest).encode()})
    refused(backup(home, "verify", str(forged)), 2, "does not match its seal")
    refused(restore(forged, home, target, vault), 2, "does not match its seal")
    assert not target.exists()


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "tls/../../evil", ".hidden"])
def test_a_member_name_that_could_land_outside_the_home_is_refused(
    home: Path, archive: Path, vault: Path, tmp_path: Path, name: str
) -> None:
    manifest = json.loads(member(archive, MANIFEST))
    manifest["members"].append({"name": name, "sha256": "0" * 64, "size": 4, "sealed": False})
    for evil in (
        rewrite(archive, {name: b"evil"}),
        rewrite(archive, {MANIFEST: json.dumps(manifest).encode()}),
    ):
        refused(backup(home, "verify", str(evil)), 2, "is not allowed")
        refused(restore(evil, home, tmp_path / "new", vault), 2, "is not allowed")
    assert not (tmp_path / "new").exists() and not (tmp_path / "evil").exists()


def test_a_link_in_the_archive_is_refused(home: Path, archive: Path, vault: Path, tmp_path: Path) -> None:
    linked = archive.with_name("linked.tar")
    with tarfile.open(archive) as src, tarfile.open(linked, "w") as dst:
        for m in src.getmembers():
            if m.name != "trust.json":
                dst.addfile(m, src.extractfile(m))
        link = tarfile.TarInfo("trust.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        dst.addfile(link)
    refused(restore(linked, home, tmp_path / "new", vault), 2, "not a regular file")


def test_a_backup_of_another_hub_is_refused(home: Path, archive: Path, vault: Path, tmp_path: Path) -> None:
    result = backup(home, "restore", str(archive), "--home", str(tmp_path / "new"), "--topic-prefix",
                    "another", "--master-key-file", str(vault))  # fmt: skip
    refused(result, 2, f"is the backup of the hub '{prefix(home)}', not of the hub 'another'")
    refused(backup(home, "verify", str(archive), "--topic-prefix", "another"), 2, "not of the hub 'another'")
    assert not (tmp_path / "new").exists()


def test_a_home_that_is_not_empty_is_left_as_it_was(
    home: Path, archive: Path, vault: Path, tmp_path: Path
) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keys.db").write_bytes(b"someone's keys")
    refused(restore(archive, home, target, vault), 2, "is not empty")
    assert [p.name for p in target.iterdir()] == ["keys.db"] and (
        target / "keys.db"
    ).read_bytes() == b"someone's keys"


def test_another_master_key_or_none_is_refused_before_anything_is_written(
    home: Path, archive: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    other.chmod(0o600)
    refused(restore(archive, home, tmp_path / "new", other), 1, "wrapped under file:")
    unchecked = backup(home, "verify", str(archive), SHAREHUB_MASTER_KEY_FILE=str(other))
    assert unchecked.exit_code == 0 and "seal\tnot checked" in unchecked.output, unchecked.output
    without_key = backup(
        home, "restore", str(archive), "--home", str(tmp_path / "new"), "--topic-prefix", "p"
    )
    refused(without_key, 2, "--master-key-file")
    assert not (tmp_path / "new").exists()


def test_create_never_overwrites_and_needs_a_hub(home: Path, archive: Path, tmp_path: Path) -> None:
    refused(backup(home, "create", str(archive)), 2, "exists")
    refused(backup(tmp_path / "nothing", "create", str(tmp_path / "b.tar")), 2, "no governance")


def test_a_hub_whose_key_encryption_key_is_in_a_token_is_restored_with_the_token(
    home: Path, vault: Path, tmp_path: Path, softhsm_token: SoftHsmToken
) -> None:
    store = LocalKeyStore(home / "keys.db", FileKek(load_master_key(home, None)))
    try:
        store.rewrap(Pkcs11Kek.open(softhsm_token.config(), create=True))
    finally:
        store.close()
    archive, target = tmp_path / "hub.tar", tmp_path / "fresh"
    assert backup(home, "create", str(archive), **softhsm_token.env()).exit_code == 0
    refused(restore(archive, home, target, vault), 1, "wrapped under pkcs11:")
    done = backup(home, "restore", str(archive), "--home", str(target), "--topic-prefix", prefix(home),
                  **softhsm_token.env())  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "SHAREHUB_KEK=pkcs11" in (target / "settings.env").read_text()
    restored = LocalKeyStore(target / "keys.db", Pkcs11Kek.open(softhsm_token.config()))
    try:
        assert restored.signing_key("cpo").key_id == "cpo/sign/1"
    finally:
        restored.close()
