"""``sharehub backup restore``: a hub's home back from its backup, on a fresh machine.

Everything is checked before the home is touched: the archive's members against its manifest, the manifest
against its seal (the hub's key-encryption key), the hub it belongs to (its topic prefix), and the KEK
given against the one that wrapped the keys. The members are written to a staging directory beside the
home; the key store is opened there with the KEK (the operator's signing key must unwrap and match the
pinned anchors), the CA key with its passphrase. Only then does the staging directory become the home, in
one rename. A refusal at any step removes the staging directory: the home stays as it was (absent, or
empty). The read models are then rebuilt from the log (``sharehub project rebuild --all``).

:func:`restore_into` is that sequence for any home; an agency site's restore (:mod:`services.site_backup`)
runs it with the site's own checks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from services.backup import KEY_STORE
from services.backup_archive import BackupReader, Manifest, unseal
from sharehub import pki
from sharehub.errors import BackupInvalid, ConfigurationError, InputError
from sharehub.gov import anchors
from sharehub.kek import KeyEncryptionKey
from sharehub.keys import LocalKeyStore, write_private

#: Written into the restored home: the settings the hub ran with, to be set again (``set -a; . FILE``).
SETTINGS_FILE = "settings.env"


def check_home_is_empty(home: Path) -> None:
    if home.is_symlink() or (home.exists() and (not home.is_dir() or any(home.iterdir()))):
        raise InputError(f"{home} is not empty: a backup is restored only into a new or empty home")


def restore(
    archive: Path,
    home: Path,
    topic_prefix: str,
    open_kek: Callable[[], KeyEncryptionKey],
    settings: dict[str, str] | None = None,
) -> Manifest:
    """Restore ``archive`` (a backup of the hub ``topic_prefix``) into ``home``, new or empty; ``settings``
    (where the master key is now) join the hub's in ``settings.env``."""

    def accept(manifest: Manifest) -> KeyEncryptionKey:
        if manifest.kind != "hub" or manifest.topic_prefix != topic_prefix:
            raise BackupInvalid(
                f"{archive} is the backup of {manifest.home_name}, not of the hub {topic_prefix!r}"
            )
        kek = open_kek()
        if kek.kek_id != manifest.kek_id:
            kek.close()
            raise ConfigurationError(
                f"the backup's keys are wrapped under {manifest.kek_id}, and the key-encryption key "
                f"given is {kek.kek_id}: give the master key (or token) the hub ran with"
            )
        return kek

    def check(staging: Path, manifest: Manifest) -> None:
        _check_hub(staging, manifest, open_kek)
        kept = manifest.settings | (settings or {})
        env = "".join(f"{name}={value}\n" for name, value in sorted(kept.items()))
        write_private(staging / SETTINGS_FILE, env.encode())

    return restore_into(archive, home, accept, check)


def restore_into(
    archive: Path,
    home: Path,
    accept: Callable[[Manifest], KeyEncryptionKey],
    check: Callable[[Path, Manifest], None],
) -> Manifest:
    """Restore ``archive`` into ``home`` (new or empty): ``accept`` refuses a backup of another home or
    gives the KEK that opens it; ``check`` refuses what was unpacked before it becomes the home."""
    check_home_is_empty(home)
    with BackupReader(archive) as reader:
        manifest = reader.manifest
        kek = accept(manifest)
        try:
            reader.check_seal(kek)
            home.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{home.name}.restore-", dir=home.parent))
            try:
                _unpack(reader, kek, staging)
            except BaseException:
                shutil.rmtree(staging)
                raise
        finally:
            kek.close()
    try:
        check(staging, manifest)
        check_home_is_empty(home)  # nothing appeared there meanwhile
        staging.replace(home)  # an empty directory is replaced in the same rename
    except BaseException:
        shutil.rmtree(staging)
        raise
    return manifest


def _unpack(reader: BackupReader, kek: KeyEncryptionKey, staging: Path) -> None:
    prefix = reader.manifest.topic_prefix
    for member in reader.manifest.members:
        target = staging / member.name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if member.sealed:
            write_private(target, unseal(kek, prefix, member.name, reader.read(member)))
            continue
        write_private(target, b"")
        with target.open("wb") as out:
            for chunk in reader.chunks(member):
                out.write(chunk)


def _check_hub(staging: Path, manifest: Manifest, open_kek: Callable[[], KeyEncryptionKey]) -> None:
    """The restored key store opens with the KEK (the operator's signing key unwraps and is the one the
    anchors pin, if it is still the first), and the CA key with its passphrase."""
    pinned = anchors.load(staging)
    if (pinned.topic_prefix, pinned.operator) != (manifest.topic_prefix, manifest.agency):
        raise BackupInvalid("the backup's trust.json names another hub than its manifest")
    if not (staging / KEY_STORE).is_file():
        raise BackupInvalid(f"the backup holds no {KEY_STORE}")
    store = LocalKeyStore(staging / KEY_STORE, open_kek())
    try:
        operator_key = store.signing_key(pinned.operator)
    finally:
        store.close()
    pinned_key = pinned.keys.get(operator_key.key_id)
    if pinned_key is not None and operator_key.public_key().public_bytes_raw().hex() != pinned_key:
        raise BackupInvalid(f"the key store's {operator_key.key_id} is not the key trust.json pins")
    if pki.HubCA.paths(staging / "tls")[0].exists():
        pki.HubCA.load(staging / "tls")
