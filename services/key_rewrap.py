"""Moving a hub's key store to another key-encryption key (``sharehub keys rewrap``).

The target KEK is opened (a new master key file made owner-only if missing; a missing key generated in
the token), every live key is rewrapped under it in one transaction (:meth:`LocalKeyStore.rewrap`), and the
hub must be configured with the new KEK before it starts again: :func:`configure_hint` says how.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sharehub.errors import ConfigurationError, InputError
from sharehub.kek import FileKek, KeyEncryptionKey
from sharehub.kek_pkcs11 import Pkcs11Config, Pkcs11Kek
from sharehub.keys import LocalKeyStore, Rewrapped, load_master_key

KekKind = Literal["file", "pkcs11"]


@dataclass(frozen=True)
class RewrapTarget:
    """The KEK to move to: a master key file, or a key in a PKCS#11 token."""

    kind: KekKind
    master_key_file: Path | None = None
    pkcs11: Pkcs11Config | None = None

    def open(self, home: Path) -> KeyEncryptionKey:
        if self.kind == "pkcs11":
            assert self.pkcs11 is not None
            return Pkcs11Kek.open(self.pkcs11, create=True)
        if self.master_key_file is None:
            raise InputError("--to file needs --new-master-key-file PATH (made owner-only when missing)")
        return FileKek(load_master_key(home, None, create=True, path=self.master_key_file))


def rewrap_keys(home: Path, open_store: Callable[[], LocalKeyStore], target: RewrapTarget) -> Rewrapped:
    """Every key of the store in ``home`` (``open_store`` opens it with the current KEK) rewrapped under
    ``target``; nothing changed if anything fails."""
    if not (home / "keys.db").exists():
        raise ConfigurationError(f"no key store in {home} (SHAREHUB_HOME): nothing to rewrap")
    store = open_store()  # the current KEK first: a hub that cannot load it stops before the target is made
    new_file = target.master_key_file if target.kind == "file" else None
    made = new_file is not None and not new_file.exists()
    kek = target.open(home)
    try:
        return store.rewrap(kek)
    except BaseException:
        kek.close()
        if made and new_file is not None:  # a key that wraps nothing is not left behind
            new_file.unlink(missing_ok=True)
        raise


def configure_hint(target: RewrapTarget) -> str:
    """What the hub's environment must say from now on for the store to open."""
    if target.kind == "file":
        return f"SHAREHUB_KEK=file SHAREHUB_MASTER_KEY_FILE={target.master_key_file}, no SHAREHUB_MASTER_KEY"
    assert target.pkcs11 is not None
    config = target.pkcs11
    return (
        f"SHAREHUB_KEK=pkcs11 SHAREHUB_PKCS11_MODULE={config.module} SHAREHUB_PKCS11_TOKEN={config.token}"
        f" SHAREHUB_PKCS11_PIN_FILE={config.pin_file} SHAREHUB_PKCS11_KEY_LABEL={config.key_label}"
    )
