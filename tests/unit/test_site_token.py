"""An agency site whose signing key lives in a PKCS#11 token (SoftHSM2): made there, signing there, never
read out; what the token signs verifies with the public key governance registers, under any Ed25519
implementation. Skipped, with the reason, where SoftHSM2 is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from connectors.site import AgencySite, read_passphrase
from sharehub.errors import InputError, WrongSecret
from sharehub.gov.key_request import read_key_request
from sharehub.pkcs11_token import SOFTHSM_MODULE, libraries, log_in
from sharehub.token_signer import Pkcs11Token, TokenSigner
from tests.softhsm import SoftHsmToken


@pytest.fixture
def token(softhsm_token: SoftHsmToken) -> Pkcs11Token:
    return Pkcs11Token(SOFTHSM_MODULE, softhsm_token.label)


@pytest.fixture
def pin(softhsm_token: SoftHsmToken) -> bytes:
    return read_passphrase(softhsm_token.pin_file)


@pytest.fixture
def site(tmp_path: Path, token: Pkcs11Token, pin: bytes) -> Iterator[AgencySite]:
    made, _ = AgencySite.init(tmp_path / "coc", "coc", pin, token=token)
    yield made


def test_the_key_is_made_in_the_token_and_the_site_records_where_never_the_pin(
    tmp_path: Path, site: AgencySite, token: Pkcs11Token, pin: bytes
) -> None:
    described = (tmp_path / "coc" / "site.json").read_text()
    assert json.loads(described)["keys"] == [
        {
            "key_id": "coc/sign/1",
            "label": "1",
            "pkcs11": {"module": str(SOFTHSM_MODULE), "token": token.label},
        }
    ]
    assert pin.decode() not in described
    assert not (tmp_path / "coc" / "keys" / "1.pem").exists()  # no key file: the key is in the token
    request = read_key_request(site.request_path("1").read_text())
    assert request.proven() == request  # proof of possession, signed inside the token


def test_what_the_token_signs_verifies_with_cryptographys_ed25519_under_the_registered_key(
    site: AgencySite, pin: bytes
) -> None:
    request = read_key_request(site.request_path("1").read_text())
    registered = Ed25519PublicKey.from_public_bytes(bytes.fromhex(request.public_key))
    with TokenSigner.open(Pkcs11Token(SOFTHSM_MODULE, _label(site)).key("1"), pin, "coc/sign/1") as signer:
        signature = signer.sign(b"a batch's Merkle root")
        assert signer.public_key().public_bytes_raw() == registered.public_bytes_raw()
    registered.verify(signature, b"a batch's Merkle root")
    with pytest.raises(InvalidSignature):
        registered.verify(signature, b"another batch's Merkle root")


def test_the_private_key_cannot_be_read_out_of_the_token(
    site: AgencySite, token: Pkcs11Token, pin: bytes
) -> None:
    lib = libraries.acquire(SOFTHSM_MODULE, module_hint="test")
    try:
        with log_in(
            lib, SOFTHSM_MODULE, token.label, pin.decode(), pin_from="the PIN", label_hint=""
        ) as session:
            private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="1")
            with pytest.raises(AttributeSensitive):
                private[Attribute.VALUE]
            assert private[Attribute.SENSITIVE] and private[Attribute.ALWAYS_SENSITIVE]
            assert private[Attribute.EXTRACTABLE] is False and private[Attribute.NEVER_EXTRACTABLE]
            assert private[Attribute.TOKEN]  # a token object: it outlives the session
    finally:
        libraries.release(SOFTHSM_MODULE)


def test_a_wrong_pin_is_a_clear_error_that_never_shows_the_pin(
    tmp_path: Path, site: AgencySite, token: Pkcs11Token
) -> None:
    wrong = b"0" * 24
    with pytest.raises(WrongSecret, match="is not the user PIN of PKCS#11 token") as refused:
        site.signing_key(wrong)
    assert wrong.decode() not in str(refused.value)
    with pytest.raises(WrongSecret, match="is not the user PIN"):
        AgencySite.init(tmp_path / "go", "go", wrong, token=token)
    assert not AgencySite.is_site(tmp_path / "go")  # nothing half-made: init may be run again


def test_a_rotation_stays_in_the_token_and_a_label_it_holds_is_refused(
    tmp_path: Path, site: AgencySite, token: Pkcs11Token, pin: bytes
) -> None:
    second = site.new_key(pin, label="2", token=token)
    assert (second.key_id, second.replaces) == ("coc/sign/2", "coc/sign/1") and second.proven()
    signer = AgencySite(tmp_path / "coc").signing_key(pin)
    try:
        assert signer.key_id == "coc/sign/2"
        assert signer.public_key().public_bytes_raw().hex() == second.public_key
    finally:
        signer.close()
    with pytest.raises(InputError, match="already holds a private key labelled '1'"):
        AgencySite.init(tmp_path / "go", "go", pin, token=token)


def test_the_command_line_makes_a_token_site_and_refuses_a_wrong_pin_with_status_two(
    tmp_path: Path, softhsm_token: SoftHsmToken
) -> None:
    home = tmp_path / "coc"
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("not-the-pin-of-this-token")
    wrong.chmod(0o600)

    def agency(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREHUB_")}
        return subprocess.run([sys.executable, "-m", "services", "agency", *args, "--home", str(home)],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip

    token = ["--pkcs11-module", str(SOFTHSM_MODULE), "--token", softhsm_token.label]
    refused = agency("init", "coc", *token, "--passphrase-file", str(wrong))
    assert refused.returncode == 2 and "is not the user PIN of PKCS#11 token" in refused.stderr
    assert "Traceback" not in refused.stderr and not AgencySite.is_site(home)

    made = agency("init", "coc", *token, "--passphrase-file", str(softhsm_token.pin_file))
    assert made.returncode == 0, made.stderr
    assert read_key_request(Path(made.stdout.strip()).read_text()).proven()
    pin_file = str(softhsm_token.pin_file)
    rotated = agency("new-key", "--label", "2", "--passphrase-file", pin_file)  # in the same token
    assert rotated.returncode == 0, rotated.stderr
    shown = agency("show")
    assert f"coc/sign/2\ttoken {softhsm_token.label}" in shown.stdout
    wrong_rotation = agency("new-key", "--label", "3", "--passphrase-file", str(wrong))
    assert wrong_rotation.returncode == 2 and "is not the user PIN" in wrong_rotation.stderr


def _label(site: AgencySite) -> str:
    held_by = site.keys[0].token
    assert held_by is not None
    return held_by.label
