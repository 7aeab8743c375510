"""`sharehub keys rewrap`: every key moves to another key-encryption key in one transaction, identical, and
the old blobs leave the disk; a failure changes nothing. The PKCS#11 side is a real SoftHSM2 token."""

from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from services.cli import hub_commands
from services.hub import Hub
from sharehub.errors import ConfigurationError
from sharehub.kek import FileKek, KeyEncryptionKey
from sharehub.kek_pkcs11 import Pkcs11Kek
from sharehub.keys import LocalKeyStore, SecretBytes, _aad, load_master_key, subject_key_id
from sharehub.settings import Settings
from tests.softhsm import SoftHsmToken

Row = tuple[str, str]  # (kind, key id)
_UNSET = ("SHAREHUB_MASTER_KEY", "SHAREHUB_MASTER_KEY_FILE", "SHAREHUB_KEK", "SHAREHUB_PKCS11_MODULE",
          "SHAREHUB_PKCS11_TOKEN", "SHAREHUB_PKCS11_PIN_FILE", "SHAREHUB_PKCS11_KEY_LABEL")  # fmt: skip


def sharehub_keys(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    root = typer.Typer()
    root.add_typer(hub_commands.keys_app, name="keys")
    root.command()(lambda: None)
    environment: dict[str, str | None] = dict.fromkeys(_UNSET)
    environment |= {"SHAREHUB_HOME": str(home), "SHAREHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9", **(env or {})}
    return CliRunner().invoke(root, ["keys", *args], env=environment)


def stored(home: Path) -> dict[Row, tuple[bytes | None, str | None]]:
    """Every row of the key store as it is on disk: the wrapped bytes and the KEK id recorded."""
    with sqlite3.connect(home / "keys.db") as db:
        rows = db.execute("SELECT kind, key_id, wrapped, kek_id FROM keys").fetchall()
    return {(kind, key_id): (None if w is None else bytes(w), kek_id) for kind, key_id, w, kek_id in rows}


def unwrapped(home: Path, kek: KeyEncryptionKey) -> dict[Row, bytes]:
    """Every live key, unwrapped with ``kek`` (ConfigurationError if one does not open)."""
    store = LocalKeyStore(home / "keys.db", kek)
    try:
        return {
            row: store._unwrap(row[1], row[0], wrapped)
            for row, (wrapped, _) in stored(home).items()
            if wrapped is not None
        }
    finally:
        store.close()


def tombstones(rows: dict[Row, tuple[bytes | None, str | None]]) -> set[Row]:
    return {row for row, (wrapped, _) in rows.items() if wrapped is None}


def on_disk(home: Path) -> bytes:
    return b"".join(part.read_bytes() for part in sorted(home.glob("keys.db*")))


@pytest.fixture
def home(offline_hub: Hub) -> Path:
    """A hub's home with its governance keys, subject keys and one destroyed subject key."""
    keys = offline_hub.keys
    refs = [os.urandom(16) for _ in range(40)]
    keys.ensure_subject_keys("party-members", refs)
    keys.rotate_data_key("party-members")
    keys.destroy_subject_key(subject_key_id("party-members", refs[0]))
    offline_hub.close()
    return offline_hub.home


def old_master(home: Path) -> FileKek:
    return FileKek(load_master_key(home, None))


def test_file_to_pkcs11_to_file_keeps_keys(home: Path, softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    before = stored(home)
    keys = unwrapped(home, old_master(home))
    assert len(keys) > 40 and any(wrapped is None for wrapped, _ in before.values())
    assert all(wrapped in on_disk(home) for wrapped, _ in before.values() if wrapped)  # the search finds them

    to_token = sharehub_keys(home, "rewrap", "--to", "pkcs11", "--pkcs11-token", softhsm_token.label,
                             "--pkcs11-pin-file", str(softhsm_token.pin_file))  # fmt: skip
    assert to_token.exit_code == 0, to_token.output
    assert f"rewrapped {len(keys)} keys from file:" in to_token.output
    assert "SHAREHUB_KEK=pkcs11" in to_token.output
    assert str(softhsm_token.pin_file) in to_token.output
    assert softhsm_token.pin_file.read_text().strip() not in to_token.output

    in_token = stored(home)
    token_kek = Pkcs11Kek.open(softhsm_token.config())
    assert {kek_id for wrapped, kek_id in in_token.values() if wrapped} == {token_kek.kek_id}
    assert unwrapped(home, token_kek) == keys  # the store closes the KEK
    assert tombstones(in_token) == tombstones(before)
    with pytest.raises(ConfigurationError, match="wrapped by key-encryption key pkcs11:"):
        unwrapped(home, old_master(home))
    disk = on_disk(home)
    assert not [row for row, (wrapped, _) in before.items() if wrapped and wrapped in disk]

    new_key = tmp_path / "new-master.key"
    to_file = sharehub_keys(home, "rewrap", "--to", "file", "--new-master-key-file", str(new_key),
                            env=softhsm_token.env())  # fmt: skip
    assert to_file.exit_code == 0, to_file.output
    assert f"rewrapped {len(keys)} keys from pkcs11:" in to_file.output
    assert f"SHAREHUB_MASTER_KEY_FILE={new_key}" in to_file.output
    assert new_key.stat().st_mode & 0o777 == 0o600

    new_master = FileKek(load_master_key(home, None, path=new_key))
    assert unwrapped(home, new_master) == keys
    for gone in (old_master(home), Pkcs11Kek.open(softhsm_token.config())):
        with pytest.raises(ConfigurationError, match="cannot be unwrapped"):
            unwrapped(home, gone)
    disk = on_disk(home)
    assert not [row for row, (wrapped, _) in in_token.items() if wrapped and wrapped in disk]

    # The hub configured as the command said opens the store; moving it to the same key is refused.
    settings = Settings(home=home, kafka_bootstrap="127.0.0.1:9", master_key=None, master_key_file=new_key)
    with Hub(settings) as hub:
        assert hub.keys.signing_key("coc").key_id == "coc/custody/1"
    env = {"SHAREHUB_MASTER_KEY_FILE": str(new_key)}
    again = sharehub_keys(home, "rewrap", "--to", "file", "--new-master-key-file", str(new_key), env=env)
    assert again.exit_code == 1 and "already wrapped by file:" in again.output


def test_file_to_file_rotates_the_master_key(home: Path, tmp_path: Path) -> None:
    keys = unwrapped(home, old_master(home))
    rotated = sharehub_keys(
        home, "rewrap", "--to", "file", "--new-master-key-file", str(tmp_path / "next.key")
    )
    assert rotated.exit_code == 0, rotated.output
    assert unwrapped(home, FileKek(load_master_key(home, None, path=tmp_path / "next.key"))) == keys
    with pytest.raises(ConfigurationError, match="not the one this store was made with"):
        unwrapped(home, old_master(home))


def test_a_rewrap_that_fails_midway_changes_nothing(home: Path, softhsm_token: SoftHsmToken) -> None:
    before = stored(home)
    store = LocalKeyStore(home / "keys.db", old_master(home))
    target = TokenGoingAway(Pkcs11Kek.open(softhsm_token.config(), create=True), after=25)
    try:
        with pytest.raises(ConfigurationError, match="could not wrap"):
            store.rewrap(target)
        assert target.wrapped == 25  # the token really wrapped some keys before it went away
        assert store.kek_id == old_master(home).kek_id
    finally:
        store.close()
        target.close()
    assert stored(home) == before
    assert unwrapped(home, old_master(home))


def test_an_unavailable_token_changes_nothing(
    home: Path, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    before = stored(home)
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("999999")
    wrong.chmod(0o600)
    refused = sharehub_keys(home, "rewrap", "--to", "pkcs11", "--pkcs11-token", softhsm_token.label,
                            "--pkcs11-pin-file", str(wrong))  # fmt: skip
    assert refused.exit_code == 1
    assert "is not the user PIN of PKCS#11 token" in refused.output and "Traceback" not in refused.output
    absent = sharehub_keys(home, "rewrap", "--to", "pkcs11", "--pkcs11-token", "gone",
                           "--pkcs11-pin-file", str(softhsm_token.pin_file))  # fmt: skip
    assert absent.exit_code == 1 and "no PKCS#11 token labelled 'gone'" in absent.output
    assert stored(home) == before


def test_rewrap_to_a_file_needs_the_new_file(home: Path) -> None:
    refused = sharehub_keys(home, "rewrap", "--to", "file")
    assert refused.exit_code == 2 and "--new-master-key-file" in refused.output


def test_an_older_store_records_its_master_key_as_the_kek(tmp_path: Path) -> None:
    """Stores made before KEK ids were recorded get the column; their rows are the file KEK's."""
    master = FileKek(SecretBytes(os.urandom(32)))
    db = sqlite3.connect(tmp_path / "keys.db")
    db.execute(
        "CREATE TABLE keys (key_id TEXT NOT NULL, kind TEXT NOT NULL, owner TEXT NOT NULL, wrapped BLOB,"
        " created_at TEXT NOT NULL, destroyed_at TEXT, PRIMARY KEY (kind, key_id))"
    )
    db.execute("CREATE TABLE current (name TEXT PRIMARY KEY, key_id TEXT NOT NULL)")
    blob = master.wrap(b"d" * 32, _aad("ds/data/1", "data"))
    db.execute("INSERT INTO keys VALUES ('ds/data/1', 'data', 'ds', ?, 'then', NULL)", (blob,))
    db.commit()
    db.close()
    store = LocalKeyStore(tmp_path / "keys.db", master)
    try:
        assert store.data_key("ds/data/1").reveal() == b"d" * 32
    finally:
        store.close()
    assert stored(tmp_path) == {("data", "ds/data/1"): (blob, master.kek_id)}
    assert base64.b64encode(b"d" * 32) not in on_disk(tmp_path)


class TokenGoingAway:
    """The token's KEK, whose session is closed under it after ``after`` wraps: the token is gone."""

    def __init__(self, kek: Pkcs11Kek, after: int) -> None:
        self._kek = kek
        self._after = after
        self.wrapped = 0
        self.kek_id = kek.kek_id

    def wrap(self, material: bytes, aad: bytes) -> bytes:
        if self.wrapped == self._after:
            assert self._kek._session is not None
            self._kek._session.close()
        blob = self._kek.wrap(material, aad)
        self.wrapped += 1
        return blob

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        return self._kek.unwrap(blob, aad)

    def close(self) -> None:
        self._kek.close()


def test_a_home_without_a_key_store_has_nothing_to_rewrap(tmp_path: Path) -> None:
    refused = sharehub_keys(
        tmp_path, "rewrap", "--to", "file", "--new-master-key-file", str(tmp_path / "n.key")
    )
    assert refused.exit_code == 1 and "no key store in" in refused.output
    assert not (tmp_path / "keys.db").exists() and not (tmp_path / "n.key").exists()
