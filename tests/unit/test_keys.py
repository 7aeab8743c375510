"""Keys at rest: the master key's sources and permissions, wrapping, and no key material in sight."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from services.hub import Hub
from sharehub.errors import ConfigurationError, SubjectErased, UnknownDataKey
from sharehub.kek import FileKek
from sharehub.keys import LocalKeyStore, SecretBytes, load_master_key, subject_key_id


def test_the_master_key_file_is_created_owner_only(tmp_path: Path) -> None:
    load_master_key(tmp_path, None, create=True)
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600


def test_a_master_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_master_key(tmp_path, None, create=True)
    os.chmod(tmp_path / "master.key", 0o644)
    with pytest.raises(ConfigurationError, match="readable or writable by others"):
        load_master_key(tmp_path, None)


def test_a_missing_master_key_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="set SHAREHUB_MASTER_KEY"):
        load_master_key(tmp_path, None)


@pytest.mark.parametrize(("value", "message"), [("not base64!", "not valid base64"), ("AAAA", "32 bytes")])
def test_a_bad_master_key_from_the_environment_is_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_master_key(tmp_path, value)


def test_the_environment_master_key_wins(tmp_path: Path) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    assert load_master_key(tmp_path, key).reveal() == b"k" * 32
    assert not (tmp_path / "master.key").exists()


def test_no_key_material_is_stored_in_the_clear(offline_hub: Hub) -> None:
    offline_hub.keys.close()  # checkpoint the write-ahead log into the file
    store_file = (offline_hub.home / "keys.db").read_bytes()
    assert (offline_hub.home / "keys.db").stat().st_mode & 0o777 == 0o600
    keys = Hub(offline_hub.settings).keys
    signing = keys.signing_key("coc").private.private_bytes_raw()
    data = keys.data_key(keys.current_data_key_id("party-members")).reveal()
    for secret in (signing, data):
        assert secret not in store_file
        assert base64.b64encode(secret) not in store_file
        assert secret.hex().encode() not in store_file


def test_another_master_key_cannot_unwrap_the_store(offline_hub: Hub) -> None:
    other = LocalKeyStore(offline_hub.home / "keys.db", FileKek(SecretBytes(b"x" * 32)))
    with pytest.raises(ConfigurationError, match="not the one this store was made with"):
        other.signing_key("coc")


def test_reprs_never_show_key_material(offline_hub: Hub) -> None:
    data = offline_hub.keys.data_key(offline_hub.keys.current_data_key_id("party-members"))
    signing = offline_hub.keys.signing_key("coc")
    assert data.reveal().hex() not in repr(data) and "redacted" in repr(data)
    assert repr(signing) == "SigningKey(key_id='coc/custody/1')"
    assert repr(offline_hub.keys).startswith("LocalKeyStore(path=")


def test_an_unknown_data_key_is_an_error_not_a_crash(offline_hub: Hub) -> None:
    with pytest.raises(UnknownDataKey, match="no data-encryption key 'nope'"):
        offline_hub.keys.data_key("nope")


def test_subject_keys_are_made_once_and_a_new_one_is_what_another_store_reads(offline_hub: Hub) -> None:
    keys, dataset = offline_hub.keys, "party-members"
    refs = [bytes([n]) * 16 for n in range(1, 6)]
    keys.ensure_subject_keys(dataset, refs[:3])
    other = LocalKeyStore(offline_hub.home / "keys.db", offline_hub.keys._kek)  # nothing cached there
    made = {subject_key_id(dataset, ref): keys.subject_key(subject_key_id(dataset, ref)) for ref in refs[:3]}
    assert {k: other.subject_key(k).reveal() for k in made} == {k: v.reveal() for k, v in made.items()}

    changes = keys._db.total_changes
    keys.ensure_subject_keys(dataset, refs[:3])  # known already: nothing written
    other.ensure_subject_keys(dataset, refs[:3])
    assert keys._db.total_changes == changes
    first = subject_key_id(dataset, refs[0])
    assert other.subject_key(first).reveal() == made[first].reveal()

    other.ensure_subject_keys(dataset, refs)  # two new ones, made by the other process
    for ref in refs[3:]:
        assert (
            keys.subject_key(subject_key_id(dataset, ref)).reveal()
            == other.subject_key(subject_key_id(dataset, ref)).reveal()
        )


def test_an_erased_subject_stays_erased_when_its_key_is_asked_to_be_made(offline_hub: Hub) -> None:
    keys, dataset, ref = offline_hub.keys, "party-members", b"\x07" * 16
    key_id = subject_key_id(dataset, ref)
    keys.ensure_subject_keys(dataset, [ref])
    keys.destroy_subject_key(key_id)
    keys.ensure_subject_keys(dataset, [ref])
    with pytest.raises(SubjectErased):
        keys.subject_key(key_id)
    fresh = LocalKeyStore(offline_hub.home / "keys.db", offline_hub.keys._kek)
    with pytest.raises(SubjectErased):
        fresh.subject_key(key_id)
