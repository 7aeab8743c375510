"""An agency's site: its keys are made and kept there, encrypted; its key request proves possession."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.site import AgencySite, read_passphrase
from sharehub.errors import ConfigurationError, ForgedKeyRequest, InputError, WrongSecret
from sharehub.gov.key_request import KeyRequest, make_key_request, read_key_request
from sharehub.keys import SigningKey

PASSPHRASE = b"correct horse battery staple"


def _raw(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def test_init_keeps_the_key_encrypted_and_owner_only_and_writes_a_request_that_proves_possession(
    tmp_path: Path,
) -> None:
    site, request = AgencySite.init(tmp_path / "coc", "coc", PASSPHRASE)
    assert (request.agency, request.key_id, request.replaces) == ("coc", "coc/sign/1", None)
    key = site.signing_key(PASSPHRASE)
    assert isinstance(key, SigningKey) and key.key_id == "coc/sign/1"
    assert key.public_key().public_bytes_raw().hex() == request.public_key
    key_file = tmp_path / "coc" / "keys" / "1.pem"
    text = key_file.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in text and _raw(key.private) not in text
    for path in (key_file, site.request_path("1"), tmp_path / "coc" / "site.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    written = read_key_request(site.request_path("1").read_text())
    assert written == request and written.proven() == request
    assert "PRIVATE" not in site.request_path("1").read_text()


def test_a_wrong_passphrase_opens_nothing_and_a_short_one_makes_nothing(tmp_path: Path) -> None:
    site, _ = AgencySite.init(tmp_path / "coc", "coc", PASSPHRASE)
    with pytest.raises(WrongSecret, match="does not open with this passphrase"):
        site.signing_key(b"not the passphrase at all")
    with pytest.raises(InputError, match="at least 12"):
        AgencySite.init(tmp_path / "go", "go", b"short")
    assert not (tmp_path / "go" / "keys").exists()


def test_a_second_init_and_a_label_that_is_a_path_are_refused_and_change_nothing(tmp_path: Path) -> None:
    home = tmp_path / "coc"
    site, _ = AgencySite.init(home, "coc", PASSPHRASE)
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match="already holds the site of 'coc'"):
        AgencySite.init(home, "coc", PASSPHRASE)
    with pytest.raises(InputError, match="key label"):
        site.new_key(PASSPHRASE, label="../../evil")
    with pytest.raises(InputError, match="already has a key labelled '1'"):
        site.new_key(PASSPHRASE, label="1")
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == before


def test_a_new_key_is_a_rotation_of_the_current_one_and_the_site_signs_with_it(tmp_path: Path) -> None:
    site, first = AgencySite.init(tmp_path / "coc", "coc", PASSPHRASE)
    second = site.new_key(PASSPHRASE, label="2026-12")
    assert (second.key_id, second.replaces) == ("coc/sign/2026-12", first.key_id)
    reopened = AgencySite(tmp_path / "coc")
    assert reopened.current == "coc/sign/2026-12"
    assert reopened.signing_key(PASSPHRASE).public_key().public_bytes_raw().hex() == second.public_key


@pytest.mark.parametrize(
    "change",
    [
        {"agency": "go"},
        {"key_id": "coc/sign/other"},
        {"valid_from": "2020-01-01T00:00:00Z"},
        {"replaces": "coc/sign/0"},
        {"public_key": Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()},
    ],
)
def test_a_request_altered_in_any_field_no_longer_proves_possession(change: dict[str, str]) -> None:
    request = make_key_request(
        SigningKey("coc/sign/1", Ed25519PrivateKey.generate()),
        agency="coc",
        valid_from=dt.datetime.now(dt.UTC),
    )
    body = json.loads(request.model_dump_json())
    body.update(change)
    with pytest.raises(ForgedKeyRequest, match="not signed by the key it registers"):
        KeyRequest.model_validate(body).proven()


def test_a_request_signed_by_another_key_is_forged() -> None:
    mine, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signer = SigningKey("coc/sign/1", theirs)
    request = make_key_request(signer, agency="coc", valid_from=dt.datetime.now(dt.UTC))
    claimed = request.model_copy(update={"public_key": mine.public_key().public_bytes_raw().hex()})
    with pytest.raises(ForgedKeyRequest):
        claimed.proven()


def test_bad_request_files_and_passphrase_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not JSON"):
        read_key_request("{")
    with pytest.raises(InputError, match="JSON object"):
        read_key_request("[]")
    loose = tmp_path / "passphrase"
    loose.write_bytes(PASSPHRASE + b"\n")
    loose.chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable or writable by others"):
        read_passphrase(loose)
    loose.chmod(0o600)
    assert read_passphrase(loose) == PASSPHRASE
