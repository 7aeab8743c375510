"""The key-encryption key (KEK): what wraps every key the key store keeps.

A KEK wraps and unwraps key material under associated data (the key store binds each key's id and kind),
and names itself with a ``kek_id`` the key store records beside every key it wraps. Two KEKs:

- :class:`FileKek`, a 32-byte master key from ``SHAREHUB_MASTER_KEY`` or an owner-only file (by default
  ``<home>/master.key``); AES-256-GCM in this process;
- :class:`sharehub.kek_pkcs11.Pkcs11Kek`, an AES-256 key inside a PKCS#11 token (an HSM, or SoftHSM2),
  which wraps and unwraps inside the token: the key never leaves it.

Blobs have one layout whichever KEK made them: a 12-byte random nonce, then the AES-GCM ciphertext and
its 16-byte tag. ``SHAREHUB_KEK`` chooses the KEK (:func:`load_kek`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharehub.errors import ConfigurationError
from sharehub.keys import NONCE_SIZE, SecretBytes, UnwrapRefused, check_owner_only, load_master_key
from sharehub.settings import Settings

__all__ = ["FileKek", "KeyEncryptionKey", "UnwrapRefused", "load_kek", "master_key_path", "read_private_file"]


class KeyEncryptionKey(Protocol):
    """Wraps key material at rest. ``kek_id`` names the key (never shows it) and is recorded per blob."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, material: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """The material; :class:`UnwrapRefused` if the blob does not open under this key and ``aad``."""
        ...

    def close(self) -> None: ...


class FileKek:
    """A master key held in this process (from the environment or an owner-only file)."""

    def __init__(self, master: SecretBytes) -> None:
        self._aead = AESGCM(master.reveal())
        digest = hashlib.sha256(b"sharehub-kek-id\x00" + hashlib.sha256(master.reveal()).digest()).digest()
        self._kek_id = f"file:{digest[:8].hex()}"

    @property
    def kek_id(self) -> str:
        return self._kek_id

    def wrap(self, material: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, material, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
        except InvalidTag:
            raise UnwrapRefused from None

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"FileKek({self._kek_id})"


def master_key_path(settings: Settings, home: Path) -> Path:
    return settings.master_key_file or home / "master.key"


def load_kek(settings: Settings, home: Path, *, create: bool = False) -> KeyEncryptionKey:
    """The KEK ``SHAREHUB_KEK`` names. ``create``: make a missing master key file, or a missing key in the
    token (the first ``sharehub gov apply`` does); otherwise a missing one is a :class:`ConfigurationError`
    saying what to do."""
    if settings.kek == "pkcs11":
        from sharehub.kek_pkcs11 import Pkcs11Config, Pkcs11Kek

        return Pkcs11Kek.open(Pkcs11Config.from_settings(settings), create=create)
    path = master_key_path(settings, home)
    return FileKek(load_master_key(home, settings.master_key, create=create, path=path))


def read_private_file(path: Path, what: str) -> bytes:
    """The bytes of a file that only its owner, the user running the hub, may read or write."""
    try:
        check_owner_only(path, what)
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{what} {path} is unreadable ({exc.strerror})") from None
