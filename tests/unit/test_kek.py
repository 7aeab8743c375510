"""The key-encryption key: the master key file, and an AES key inside a real PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from services.governance_bootstrap import load
from services.hub import Hub
from sharehub.errors import ConfigurationError, SubjectErased
from sharehub.gov.log import MemoryLog
from sharehub.kek import FileKek, UnwrapRefused, load_kek
from sharehub.kek_pkcs11 import SOFTHSM_MODULE, Pkcs11Config, Pkcs11Kek
from sharehub.keys import SecretBytes, subject_key_id
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.softhsm import SoftHsmToken

AAD = b"sharehub-key:data:party-members/data/1"


@pytest.fixture
def token_kek(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11Kek]:
    kek = Pkcs11Kek.open(softhsm_token.config(), create=True)
    yield kek
    kek.close()


# --- the master key file ----------------------------------------------------------------------------------


def test_a_file_kek_is_named_by_a_hash_never_by_the_key() -> None:
    master = os.urandom(32)
    kek = FileKek(SecretBytes(master))
    assert kek.kek_id.startswith("file:") and len(kek.kek_id) == len("file:") + 16
    assert kek.kek_id == FileKek(SecretBytes(master)).kek_id != FileKek(SecretBytes(os.urandom(32))).kek_id
    assert master.hex()[:16] not in kek.kek_id
    assert hashlib.sha256(master).hexdigest()[:16] not in kek.kek_id
    assert master.hex() not in repr(kek)


def test_a_file_kek_round_trips_and_binds_the_associated_data() -> None:
    kek = FileKek(SecretBytes(os.urandom(32)))
    blob = kek.wrap(b"k" * 32, AAD)
    assert kek.unwrap(blob, AAD) == b"k" * 32
    with pytest.raises(UnwrapRefused):
        kek.unwrap(blob, AAD + b"x")


def test_the_master_key_file_may_live_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "hub.key"
    settings = Settings(home=tmp_path / "home", master_key=None, master_key_file=path)
    made = load_kek(settings, settings.home, create=True)
    assert path.stat().st_mode & 0o777 == 0o600 and not (settings.home / "master.key").exists()
    assert load_kek(settings, settings.home).kek_id == made.kek_id


# --- the key inside a PKCS#11 token -------------------------------------------------------------------------


def test_wrapping_happens_in_the_token_and_round_trips(token_kek: Pkcs11Kek) -> None:
    material = os.urandom(32)
    blob = token_kek.wrap(material, AAD)
    assert len(blob) == 12 + 32 + 16 and material not in blob
    assert token_kek.unwrap(blob, AAD) == material
    assert token_kek.wrap(material, AAD) != blob  # a fresh nonce every time
    assert token_kek.kek_id.startswith("pkcs11:sharehub-test/sharehub-kek/")


def test_a_blob_does_not_open_under_other_associated_data(token_kek: Pkcs11Kek) -> None:
    blob = token_kek.wrap(os.urandom(32), AAD)
    with pytest.raises(UnwrapRefused):
        token_kek.unwrap(blob, b"sharehub-key:data:party-members/data/2")
    with pytest.raises(UnwrapRefused):
        token_kek.unwrap(blob[:-1] + bytes([blob[-1] ^ 1]), AAD)


def test_the_token_key_cannot_be_read_out(token_kek: Pkcs11Kek, softhsm_token: SoftHsmToken) -> None:
    token_kek.close()  # the module is finalised: this test loads it on its own
    lib = pkcs11.lib(str(SOFTHSM_MODULE))
    try:
        token = lib.get_token(token_label=softhsm_token.label)
        with token.open(user_pin=softhsm_token.pin_file.read_text().strip()) as session:
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label="sharehub-kek")
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.TOKEN] is True
            with pytest.raises(AttributeSensitive):
                key[Attribute.VALUE]
    finally:
        lib.finalize()


def test_the_key_is_found_again_by_its_label(token_kek: Pkcs11Kek, softhsm_token: SoftHsmToken) -> None:
    blob = token_kek.wrap(b"s" * 32, AAD)
    token_kek.close()
    again = Pkcs11Kek.open(softhsm_token.config())
    try:
        assert again.kek_id == token_kek.kek_id
        assert again.unwrap(blob, AAD) == b"s" * 32
    finally:
        again.close()


def test_a_wrong_pin_is_a_clear_configuration_error(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("000000\n")
    wrong.chmod(0o600)
    config = Pkcs11Config(SOFTHSM_MODULE, softhsm_token.label, wrong)
    with pytest.raises(ConfigurationError, match="is not the user PIN of PKCS#11 token 'sharehub-test'") as e:
        Pkcs11Kek.open(config, create=True)
    assert "000000" not in str(e.value)


def test_a_pin_file_others_can_read_is_refused(softhsm_token: SoftHsmToken) -> None:
    softhsm_token.pin_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match="PIN file .* readable or writable by others"):
        Pkcs11Kek.open(softhsm_token.config(), create=True)


def test_a_missing_token_names_the_tokens_there(softhsm_token: SoftHsmToken) -> None:
    config = Pkcs11Config(SOFTHSM_MODULE, "nope", softhsm_token.pin_file)
    with pytest.raises(ConfigurationError, match="no PKCS#11 token labelled 'nope' .*'sharehub-test'"):
        Pkcs11Kek.open(config)


def test_a_missing_module_says_what_to_do(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    config = Pkcs11Config(tmp_path / "libnone.so", softhsm_token.label, softhsm_token.pin_file)
    with pytest.raises(ConfigurationError, match="libnone.so does not exist: point SHAREHUB_PKCS11_MODULE"):
        Pkcs11Kek.open(config)


def test_a_missing_key_is_made_only_when_asked(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(ConfigurationError, match="holds no key labelled 'sharehub-kek'"):
        Pkcs11Kek.open(softhsm_token.config())


def test_the_settings_choose_the_token(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kek="pkcs11", pkcs11_token=softhsm_token.label,
                        pkcs11_pin_file=softhsm_token.pin_file)  # fmt: skip
    kek = load_kek(settings, tmp_path, create=True)
    try:
        assert isinstance(kek, Pkcs11Kek)
    finally:
        kek.close()
    with pytest.raises(ConfigurationError, match="needs SHAREHUB_PKCS11_PIN_FILE"):
        load_kek(settings.model_copy(update={"pkcs11_pin_file": None}), tmp_path)


# --- the key store under the token's key -------------------------------------------------------------------


def test_the_key_store_works_end_to_end_under_the_token(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:9", master_key=None,
                        read_model_url=None, kek="pkcs11", pkcs11_token=softhsm_token.label,
                        pkcs11_pin_file=softhsm_token.pin_file)  # fmt: skip
    hub = Hub(settings, log=MemoryLog())
    load(hub.governance_desk(), demo_spec(), topics=False)  # the first apply generates the key in the token
    refs = [os.urandom(16) for _ in range(3)]
    try:
        assert not (settings.home / "master.key").exists()
        keys = hub.keys
        keys.ensure_dataset_keys("party-members")
        keys.ensure_subject_keys("party-members", refs)
        data_id = keys.rotate_data_key("party-members")
        data = keys.data_key(data_id).reveal()
        subjects = [keys.subject_key(subject_key_id("party-members", ref)).reveal() for ref in refs]
        shredded = keys.destroy_subject_key(subject_key_id("party-members", refs[0]))
        assert shredded.destroyed and shredded.overwritten and shredded.log_truncated
        recorded = {row[0] for row in keys._db.execute("SELECT kek_id FROM keys WHERE wrapped IS NOT NULL")}
        assert recorded == {keys.kek_id} and keys.kek_id.startswith("pkcs11:")
    finally:
        hub.close()

    again = Hub(settings, log=MemoryLog())
    try:
        keys = again.keys
        assert keys.data_key(data_id).reveal() == data
        assert keys.subject_key(subject_key_id("party-members", refs[1])).reveal() == subjects[1]
        with pytest.raises(SubjectErased):
            keys.subject_key(subject_key_id("party-members", refs[0]))
        assert keys.signing_key("coc").key_id == "coc/custody/1"
    finally:
        again.close()
