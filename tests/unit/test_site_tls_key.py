"""The site's TLS key for the broker is kept encrypted with the site's passphrase; every client is handed the
password with it, and an unencrypted key is refused with the way to re-issue it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.sdk import CLIENT_KEY_FILE, make_tls_request, site_tls
from connectors.site import AgencySite
from sharehub.errors import ConfigurationError, WrongSecret
from sharehub.keys import write_private

PASSPHRASE = b"the site's own passphrase"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    AgencySite.init(tmp_path / "coc", "coc", PASSPHRASE)
    make_tls_request(tmp_path / "coc", "sharehub", PASSPHRASE)
    return tmp_path / "coc"


def test_the_tls_key_is_owner_only_and_parses_only_with_the_passphrase(home: Path) -> None:
    key_file = home / CLIENT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(pem, password=None)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, password=b"another passphrase")
    assert isinstance(
        serialization.load_pem_private_key(pem, password=PASSPHRASE), ec.EllipticCurvePrivateKey
    )


def test_every_client_is_given_the_password_and_no_repr_shows_it(home: Path) -> None:
    tls = site_tls(home, PASSPHRASE)
    settings = tls.config()
    assert settings["ssl.key.location"] == str(home / CLIENT_KEY_FILE)
    assert settings["ssl.key.password"] == PASSPHRASE.decode()
    assert PASSPHRASE.decode() not in repr(tls)


def test_a_passphrase_that_is_not_the_sites_makes_no_tls_key(tmp_path: Path) -> None:
    AgencySite.init(tmp_path / "coc", "coc", PASSPHRASE)
    with pytest.raises(WrongSecret, match="does not open with this passphrase"):
        make_tls_request(tmp_path / "coc", "sharehub", b"a mistyped passphrase")
    assert not (tmp_path / "coc" / CLIENT_KEY_FILE).exists()


def test_an_unencrypted_tls_key_is_refused_with_how_to_reissue_it(home: Path) -> None:
    key = serialization.load_pem_private_key((home / CLIENT_KEY_FILE).read_bytes(), password=PASSPHRASE)
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(home / CLIENT_KEY_FILE, plain)
    with pytest.raises(ConfigurationError, match="stored unencrypted; refusing it: .*'sharehub agency csr"):
        site_tls(home, PASSPHRASE)


def test_a_wrong_or_missing_passphrase_opens_no_tls_key(home: Path) -> None:
    with pytest.raises(WrongSecret, match="does not open with this passphrase"):
        site_tls(home, b"not the site's passphrase")
    with pytest.raises(ConfigurationError, match="needs the site's passphrase"):
        site_tls(home, None)
