"""Keys at rest: a master key that wraps every other key, and the local key store.

The master key (32 bytes) comes from ``SHAREHUB_MASTER_KEY`` (base64) or from ``<home>/master.key``, a file
that must be readable by its owner only; otherwise the hub refuses to start and says why. Every key the
store holds (agencies' Ed25519 signing keys, datasets' data-encryption and routing keys) is wrapped with
AES-256-GCM under the master key, its id and kind bound as associated data, so a wrapped key cannot be
swapped for another. :class:`KeyService` is the seam a real KMS implements.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharehub.errors import ConfigurationError, UnknownDataKey, UnknownReferenceError

KEY_SIZE = 32
NONCE_SIZE = 12
KeyKind = Literal["signing", "data", "routing"]


class SecretBytes:
    """Key material that never shows itself in a repr, a log line or an exception message."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "SecretBytes(<redacted>)"

    __str__ = __repr__


def load_master_key(home: Path, env_value: str | None, *, create: bool = False) -> SecretBytes:
    """The master key from the environment or ``home/master.key`` (created owner-only if ``create``)."""
    if env_value:
        try:
            raw = base64.b64decode(env_value, validate=True)
        except ValueError:
            raise ConfigurationError("SHAREHUB_MASTER_KEY is not valid base64") from None
        if len(raw) != KEY_SIZE:
            raise ConfigurationError(f"SHAREHUB_MASTER_KEY must decode to {KEY_SIZE} bytes, not {len(raw)}")
        return SecretBytes(raw)
    path = home / "master.key"
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"no master key: set SHAREHUB_MASTER_KEY or run 'sharehub gov load' to create {path}"
            )
        home.mkdir(parents=True, exist_ok=True)
        _write_private(path, base64.b64encode(secrets.token_bytes(KEY_SIZE)) + b"\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is readable or writable by others (mode {mode:o}); refusing to use it: chmod 600 {path}"
        )
    if path.stat().st_uid != os.geteuid():
        raise ConfigurationError(f"{path} belongs to another user; refusing to use it")
    try:
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        raise ConfigurationError(f"{path} does not hold a base64 key") from None
    if len(raw) != KEY_SIZE:
        raise ConfigurationError(f"{path} must hold {KEY_SIZE} bytes of key, not {len(raw)}")
    return SecretBytes(raw)


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically, readable by the owner only from the first byte on."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SigningKey:
    """An agency's private signing key, by id. Its repr shows the id only."""

    key_id: str
    private: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


class KeyService(Protocol):
    """What the envelope and its users need from key management."""

    def data_key(self, key_id: str) -> SecretBytes:
        """The data-encryption key with this id; UnknownDataKey if there is none."""

    def current_data_key_id(self, dataset: str) -> str:
        """The id of the key new events of ``dataset`` are encrypted with."""

    def routing_key(self, dataset: str) -> SecretBytes:
        """The key that turns record keys into pseudonymous Kafka message keys."""

    def signing_key(self, agency: str) -> SigningKey:
        """The agency's current private signing key."""


class LocalKeyStore:
    """Wrapped keys in one owner-only JSON file under the hub's home."""

    def __init__(self, path: Path, master: SecretBytes) -> None:
        self._path = path
        self._aead = AESGCM(master.reveal())
        self._entries: dict[str, dict[str, str]] = {}
        if path.exists():
            self._entries = json.loads(path.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return f"LocalKeyStore(path={str(self._path)!r}, keys={len(self._entries)})"

    # --- creating keys ---------------------------------------------------------------------------

    def create_signing_key(self, agency: str, key_id: str) -> bytes:
        """Generate an Ed25519 key for ``agency``; returns the raw public key (32 bytes)."""
        private = Ed25519PrivateKey.generate()
        self._put(key_id, "signing", agency, private.private_bytes_raw())
        self._entries[f"current-signing:{agency}"] = {"key_id": key_id}
        self._save()
        return private.public_key().public_bytes_raw()

    def create_data_key(self, dataset: str, key_id: str) -> None:
        self._put(key_id, "data", dataset, secrets.token_bytes(KEY_SIZE))
        self._entries[f"current-data:{dataset}"] = {"key_id": key_id}
        self._save()

    def ensure_routing_key(self, dataset: str) -> None:
        key_id = f"{dataset}/routing"
        if key_id not in self._entries:
            self._put(key_id, "routing", dataset, secrets.token_bytes(KEY_SIZE))
            self._save()

    def has(self, key_id: str) -> bool:
        return key_id in self._entries

    # --- KeyService ------------------------------------------------------------------------------

    def data_key(self, key_id: str) -> SecretBytes:
        entry = self._entries.get(key_id)
        if entry is None or entry.get("kind") != "data":
            raise UnknownDataKey(f"no data-encryption key {key_id!r}")
        return SecretBytes(self._unwrap(key_id, entry))

    def current_data_key_id(self, dataset: str) -> str:
        entry = self._entries.get(f"current-data:{dataset}")
        if entry is None:
            raise UnknownReferenceError(f"dataset {dataset!r} has no data-encryption key")
        return entry["key_id"]

    def routing_key(self, dataset: str) -> SecretBytes:
        key_id = f"{dataset}/routing"
        entry = self._entries.get(key_id)
        if entry is None:
            raise UnknownReferenceError(f"dataset {dataset!r} has no routing key")
        return SecretBytes(self._unwrap(key_id, entry))

    def signing_key(self, agency: str) -> SigningKey:
        current = self._entries.get(f"current-signing:{agency}")
        if current is None:
            raise UnknownReferenceError(f"this key store holds no signing key of agency {agency!r}")
        key_id = current["key_id"]
        raw = self._unwrap(key_id, self._entries[key_id])
        return SigningKey(key_id, Ed25519PrivateKey.from_private_bytes(raw))

    # --- wrapping --------------------------------------------------------------------------------

    def _put(self, key_id: str, kind: KeyKind, owner: str, material: bytes) -> None:
        nonce = secrets.token_bytes(NONCE_SIZE)
        wrapped = self._aead.encrypt(nonce, material, _aad(key_id, kind))
        self._entries[key_id] = {
            "kind": kind,
            "owner": owner,
            "wrapped": base64.b64encode(nonce + wrapped).decode(),
        }

    def _unwrap(self, key_id: str, entry: dict[str, str]) -> bytes:
        blob = base64.b64decode(entry["wrapped"])
        try:
            return self._aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], _aad(key_id, entry["kind"]))
        except InvalidTag:
            raise ConfigurationError(
                f"key {key_id!r} cannot be unwrapped: the master key is not the one this store was made with"
            ) from None

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self._path, json.dumps(self._entries, indent=1, sort_keys=True).encode())


def _aad(key_id: str, kind: str) -> bytes:
    return f"sharehub-key:{kind}:{key_id}".encode()
