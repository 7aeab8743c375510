"""Keys at rest: the local key service, every key wrapped under one key-encryption key (KEK).

The KEK (:mod:`sharehub.kek`) is a master key (32 bytes) from ``SHAREHUB_MASTER_KEY`` (base64) or from an
owner-only file (``<home>/master.key``), or an AES key inside a PKCS#11 token; a master key file readable
by others is refused and the hub says why.

:class:`LocalKeyStore` keeps every other key in one SQLite file, wrapped with AES-256-GCM under the KEK, its
id and kind bound as associated data so a wrapped key cannot be swapped for another, and the id of the KEK
that wrapped it recorded beside it:

- agencies' Ed25519 **signing** keys;
- datasets' **data**-encryption keys, one per epoch: rotation starts a new epoch and never re-encrypts the
  log, old epochs stay readable;
- datasets' **routing** keys, which turn record keys into pseudonyms (Kafka message keys, subject refs);
- **subject** keys, one per data subject of a dataset, for the fields its schema tags as personal.
  Destroying one (crypto-shredding) leaves a tombstone: the key is gone, the fact that it existed is not.

:class:`LocalKeyStore` implements :class:`sharehub.codec.DatasetKeys`, the one seam the codec takes its keys
through, which a real KMS (e.g. Vault's transit engine) can implement instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import sqlite3
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sharehub.errors import ConfigurationError, SubjectErased, UnknownDataKey, UnknownReferenceError
from sharehub.sqlite_files import truncate_write_ahead_log

if TYPE_CHECKING:
    from sharehub.kek import KeyEncryptionKey

KEY_SIZE = 32
#: The random nonce in front of every wrapped key (AES-GCM's 96 bits), whichever KEK wrapped it.
NONCE_SIZE = 12
KeyKind = Literal["signing", "data", "routing", "subject", "broker", "console"]
_SUBJECT_CACHE = 100_000


class UnwrapRefused(Exception):
    """A key-encryption key's answer to a blob that does not open under it with the associated data given
    (another KEK wrapped it, or its bytes were altered). The key store turns it into a ConfigurationError."""


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


def load_master_key(
    home: Path, env_value: str | None, *, create: bool = False, path: Path | None = None
) -> SecretBytes:
    """The master key from the environment or ``path`` (default ``home/master.key``; created owner-only if
    ``create``)."""
    if env_value:
        try:
            raw = base64.b64decode(env_value, validate=True)
        except ValueError:
            raise ConfigurationError("SHAREHUB_MASTER_KEY is not valid base64") from None
        if len(raw) != KEY_SIZE:
            raise ConfigurationError(f"SHAREHUB_MASTER_KEY must decode to {KEY_SIZE} bytes, not {len(raw)}")
        return SecretBytes(raw)
    path = path or home / "master.key"
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"no master key: set SHAREHUB_MASTER_KEY or run 'sharehub gov load' to create {path}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, base64.b64encode(secrets.token_bytes(KEY_SIZE)) + b"\n")
    check_owner_only(path)
    try:
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        raise ConfigurationError(f"{path} does not hold a base64 key") from None
    if len(raw) != KEY_SIZE:
        raise ConfigurationError(f"{path} must hold {KEY_SIZE} bytes of key, not {len(raw)}")
    return SecretBytes(raw)


def check_owner_only(path: Path, what: str = "") -> None:
    """Refuse a file that others may read or write, or that another user owns (it holds a secret)."""
    named = f"{what} {path}" if what else str(path)
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{named} is readable or writable by others (mode {mode:o}); refusing to use it: chmod 600 {path}"
        )
    if info.st_uid != os.geteuid():
        raise ConfigurationError(f"{named} belongs to another user; refusing to use it")


def write_private(path: Path, data: bytes) -> None:
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


class Signer(Protocol):
    """What signs as an agency (events' batches, checkpoints, registration requests): the id of its key, an
    Ed25519 signature, and the public half governance registers. A :class:`SigningKey` in memory, or a key
    that never leaves a PKCS#11 token (:class:`sharehub.token_signer.TokenSigner`)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...

    def close(self) -> None:
        """Let go of what the signer holds (a token session); it signs no more."""


@dataclass(frozen=True)
class SigningKey:
    """An agency's private signing key in memory, by id (a :class:`Signer`). Its repr shows the id only."""

    key_id: str
    private: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def close(self) -> None:
        """Nothing to let go of: the key is an object of this process."""

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


def subject_key_id(dataset: str, subject_ref: bytes) -> str:
    """Id of a data subject's key: names the dataset and the subject's pseudonym, never the subject."""
    return f"{dataset}/subject/{subject_ref.hex()}"


_KEYS_TABLE = (
    "CREATE TABLE IF NOT EXISTS keys (key_id TEXT NOT NULL, kind TEXT NOT NULL, owner TEXT NOT NULL,"
    " wrapped BLOB, created_at TEXT NOT NULL, destroyed_at TEXT, kek_id TEXT, PRIMARY KEY (kind, key_id))"
)
#: Rows the key store rewraps per statement (``rewrap``).
_REWRAP_BATCH = 500


@dataclass(frozen=True)
class Shredded:
    """What destroying a subject key did on disk (the erasure receipt states it)."""

    #: A key was destroyed now (False: it was destroyed before, or never existed).
    destroyed: bool
    #: The wrapped key's bytes were overwritten with zeros in the database file (``secure_delete``).
    overwritten: bool
    #: The write-ahead log, which held earlier copies of the page, was emptied and truncated to 0 bytes.
    log_truncated: bool


@dataclass(frozen=True)
class Rewrapped:
    """What moving a store to another key-encryption key did (``LocalKeyStore.rewrap``)."""

    keys: int
    from_kek: str
    to_kek: str
    #: The write-ahead log, which held the blobs under the old KEK, was emptied and truncated to 0 bytes.
    log_truncated: bool


class LocalKeyStore:
    """The local key service: wrapped keys in one owner-only SQLite file under the hub's home.

    Key ids live in one namespace per kind (a signing key and a data key may not be confused, whatever
    their ids). Deleted or overwritten bytes are zeroed in the file (``PRAGMA secure_delete``), and a
    subject key's destruction also empties the write-ahead log, so no copy of a destroyed key survives on
    disk. Writes that belong to a governance change happen in :meth:`transaction`, which the caller
    closes only once the change is on the log."""

    def __init__(self, path: Path, kek: KeyEncryptionKey) -> None:
        """Open (or make) the store at ``path``; the store closes ``kek`` when it closes."""
        self._path = path
        self._kek = kek
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        if fresh:
            write_private(path, b"")
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA journal_mode=WAL")
        if not self._ready():  # only a new or older store is written to when opened
            with self._write():
                _migrate_key_ids_to_one_namespace_per_kind(self._db)
                self._db.execute(_KEYS_TABLE)
                self._record_kek_ids_of_older_rows()
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS current (name TEXT PRIMARY KEY, key_id TEXT NOT NULL)"
                )
        self._subjects: OrderedDict[str, SecretBytes] = OrderedDict()
        #: Data and routing keys, unwrapped once: a key id never names another key, and neither is destroyed.
        self._unwrapped: dict[str, SecretBytes] = {}

    def __repr__(self) -> str:
        return f"LocalKeyStore(path={str(self._path)!r})"

    def close(self) -> None:
        self._db.close()
        self._kek.close()

    @property
    def kek_id(self) -> str:
        """The id of the key-encryption key this store wraps with."""
        return self._kek.kek_id

    def _ready(self) -> bool:
        tables = dict(self._db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        keys = tables.get("keys", "")
        return "current" in tables and "PRIMARY KEY (kind, key_id)" in keys and "kek_id" in keys

    def _record_kek_ids_of_older_rows(self) -> None:
        """Stores made before KEK ids were recorded: every key there was wrapped by a master key (a file
        KEK). Its id is recorded when the KEK opening the store now unwraps one of them (else, unknown)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(keys)")}
        if "kek_id" not in columns:
            self._db.execute("ALTER TABLE keys ADD COLUMN kek_id TEXT")
        sample = self._db.execute(
            "SELECT key_id, kind, wrapped FROM keys WHERE wrapped IS NOT NULL AND kek_id IS NULL LIMIT 1"
        ).fetchone()
        if sample is None:
            return
        try:
            self._kek.unwrap(bytes(sample[2]), _aad(sample[0], sample[1]))
            kek_id = self._kek.kek_id
        except UnwrapRefused:
            kek_id = "file:unrecorded"
        self._db.execute("UPDATE keys SET kek_id = ? WHERE wrapped IS NOT NULL AND kek_id IS NULL", (kek_id,))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write inside is kept if the block completes, and none if it raises: a governance change
        stores its keys here and writes its event to the log inside, so a refused or failed change leaves
        no key behind, and a kept key always has its event."""
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[None]:
        if self._db.in_transaction:  # inside transaction(): its caller decides
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- creating and rotating ---------------------------------------------------------------------

    def create_signing_key(self, agency: str, key_id: str) -> bytes:
        """Generate an Ed25519 key for ``agency``, make it current; returns the raw public key (32 bytes)."""
        return self.add_signing_key(agency, key_id, Ed25519PrivateKey.generate())

    def add_signing_key(self, agency: str, key_id: str, private: Ed25519PrivateKey) -> bytes:
        """Keep ``private`` as ``agency``'s current signing key; returns the raw public key (32 bytes)."""
        with self._write():
            self._insert(key_id, "signing", agency, private.private_bytes_raw())
            self._set_current(f"signing:{agency}", key_id)
        return private.public_key().public_bytes_raw()

    def create_data_key(self, dataset: str, key_id: str) -> None:
        with self._write():
            self._insert(key_id, "data", dataset, secrets.token_bytes(KEY_SIZE))
            self._set_current(f"data:{dataset}", key_id)

    def ensure_dataset_keys(self, dataset: str) -> None:
        """A new dataset's first data-encryption key and its routing key, unless it has them."""
        with self._write():
            data_key = f"{dataset}/data/1"
            if not self.has(data_key, "data"):
                self.create_data_key(dataset, data_key)
            self.ensure_routing_key(dataset)

    def rotate_data_key(self, dataset: str) -> str:
        """Start a new epoch for ``dataset``: new events use a new key, earlier ones keep theirs."""
        with self._write():
            epoch = (
                1
                + self._db.execute(
                    "SELECT COUNT(*) FROM keys WHERE kind = 'data' AND owner = ?", (dataset,)
                ).fetchone()[0]
            )
            key_id = f"{dataset}/data/{epoch}"
            self.create_data_key(dataset, key_id)
        return key_id

    def ensure_routing_key(self, dataset: str) -> None:
        key_id = f"{dataset}/routing"
        with self._write():
            if not self.has(key_id, "routing"):
                self._insert(key_id, "routing", dataset, secrets.token_bytes(KEY_SIZE))

    def ensure_subject_keys(self, dataset: str, subject_refs: Iterable[bytes]) -> None:
        """Make the subjects' keys that do not exist yet (an erased subject's tombstone exists: it stays
        erased), durably, in one transaction. The new keys stay in this process's cache, so sealing with
        them reads nothing back; subjects known already cost a read and write nothing (those in the cache,
        not even the read)."""
        asked = {subject_key_id(dataset, ref) for ref in subject_refs}
        wanted = sorted(key_id for key_id in asked if key_id not in self._subjects)  # one look-up each
        if not wanted:
            return
        outer = self._db.in_transaction
        with self._write():  # one transaction: keys are durable before any event that needs them is sent
            made = [(key_id, secrets.token_bytes(KEY_SIZE)) for key_id in self._not_stored(wanted)]
            now, kek_id = _now(), self._kek.kek_id
            self._db.executemany(
                "INSERT INTO keys (key_id, kind, owner, wrapped, created_at, kek_id)"
                " VALUES (?, 'subject', ?, ?, ?, ?)",
                [
                    (key_id, dataset, self._wrap(key_id, "subject", key)[1], now, kek_id)
                    for key_id, key in made
                ],
            )
        if not outer:  # committed (inside a caller's transaction, a rollback may still undo them)
            for key_id, key in made:
                self._cache_subject(key_id, SecretBytes(key))

    def _not_stored(self, key_ids: list[str]) -> list[str]:
        """Those of ``key_ids`` the store holds no subject key (nor tombstone) for."""
        stored = {key_id for key_id, _ in self._subject_rows(key_ids, erased_too=True)}
        return [key_id for key_id in key_ids if key_id not in stored]

    def _subject_rows(self, key_ids: list[str], *, erased_too: bool) -> Iterator[tuple[str, bytes | None]]:
        """(key id, wrapped key) of the subject keys of ``key_ids`` the store holds, one query per 500;
        with ``erased_too``, erased subjects' tombstones too (their wrapped key None)."""
        held = "" if erased_too else " AND wrapped IS NOT NULL"
        for start in range(0, len(key_ids), 500):
            chunk = key_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT key_id, wrapped FROM keys WHERE kind = 'subject'{held} AND key_id IN ({marks})",
                chunk,
            ).fetchall()

    def _cache_subject(self, key_id: str, key: SecretBytes) -> None:
        """Keep a subject key in this process's cache, the least recently used going past its size."""
        self._subjects[key_id] = key
        while len(self._subjects) > _SUBJECT_CACHE:
            self._subjects.popitem(last=False)

    def destroy_subject_key(self, key_id: str) -> Shredded:
        """Crypto-shred: forget the key material, keep a tombstone. The wrapped key's bytes are zeroed in
        the file (secure_delete), then the write-ahead log, which held copies of the page, is emptied into
        the file and truncated to nothing, waiting a while for readers to let it."""
        self._subjects.pop(key_id, None)
        with self._write():
            cursor = self._db.execute(
                "UPDATE keys SET wrapped = NULL, destroyed_at = ? WHERE key_id = ? AND kind = 'subject'"
                " AND wrapped IS NOT NULL",
                (_now(), key_id),
            )
        overwritten = self._db.execute("PRAGMA secure_delete").fetchone()[0] == 1
        return Shredded(cursor.rowcount == 1, overwritten, truncate_write_ahead_log(self._db))

    def broker_password(self, principal: str) -> SecretBytes:
        """The SCRAM password of a broker principal, made on first use and kept wrapped like every key."""
        return self._made_once(f"kafka/{principal}", "broker", principal, secrets.token_urlsafe(32).encode)

    def console_session_key(self) -> SecretBytes:
        """The key the web console signs its session cookies with, made on first use and kept wrapped like
        every key: every API process of this hub reads the same one."""
        return self._made_once("console/session", "console", "hub", lambda: secrets.token_bytes(32))

    def _made_once(self, key_id: str, kind: KeyKind, owner: str, make: Callable[[], bytes]) -> SecretBytes:
        row = self._row(key_id, kind)
        if row is None:
            with self._write():
                if self._row(key_id, kind) is None:  # another process may have made it a moment ago
                    self._insert(key_id, kind, owner, make())
            row = self._row(key_id, kind)
            assert row is not None
        return SecretBytes(self._unwrap(key_id, kind, row))

    def forget_broker_password(self, principal: str) -> bool:
        """Delete the principal's SCRAM password from the store (secure_delete zeroes its bytes); whether
        there was one."""
        with self._write():
            cursor = self._db.execute(
                "DELETE FROM keys WHERE key_id = ? AND kind = 'broker'", (f"kafka/{principal}",)
            )
        return cursor.rowcount == 1

    def has(self, key_id: str, kind: KeyKind) -> bool:
        found = self._db.execute("SELECT 1 FROM keys WHERE kind = ? AND key_id = ?", (kind, key_id))
        return found.fetchone() is not None

    # --- DatasetKeys (sharehub.codec) and signing ---------------------------------------------------

    def data_key(self, key_id: str) -> SecretBytes:
        cached = self._unwrapped.get(key_id)
        if cached is not None:
            return cached
        row = self._row(key_id, "data")
        if row is None:
            raise UnknownDataKey(f"no data-encryption key {key_id!r}")
        key = self._unwrapped[key_id] = SecretBytes(self._unwrap(key_id, "data", row))
        return key

    def current_data_key_id(self, dataset: str) -> str:
        return self._current(f"data:{dataset}", f"dataset {dataset!r} has no data-encryption key")

    def routing_key(self, dataset: str) -> SecretBytes:
        key_id = f"{dataset}/routing"
        cached = self._unwrapped.get(key_id)
        if cached is not None:
            return cached
        row = self._row(key_id, "routing")
        if row is None:
            raise UnknownReferenceError(f"dataset {dataset!r} has no routing key")
        key = self._unwrapped[key_id] = SecretBytes(self._unwrap(key_id, "routing", row))
        return key

    def signing_key(self, agency: str) -> SigningKey:
        key_id = self._current(
            f"signing:{agency}", f"this key store holds no signing key of agency {agency!r}"
        )
        row = self._row(key_id, "signing")
        assert row is not None  # a current pointer always names a stored key
        return SigningKey(key_id, Ed25519PrivateKey.from_private_bytes(self._unwrap(key_id, "signing", row)))

    def subject_key(self, key_id: str) -> SecretBytes:
        cached = self._subjects.get(key_id)
        if cached is not None:
            self._subjects.move_to_end(key_id)
            return cached
        found = self._db.execute(
            "SELECT wrapped, destroyed_at FROM keys WHERE key_id = ? AND kind = 'subject'", (key_id,)
        ).fetchone()
        if found is None:
            raise UnknownDataKey(f"no subject key {key_id!r}")
        if found[0] is None:
            raise SubjectErased(f"the subject of {key_id!r} was erased on {found[1]}")
        key = SecretBytes(self._unwrap(key_id, "subject", found[0]))
        self._cache_subject(key_id, key)
        return key

    def prefetch_subject_keys(self, key_ids: Iterable[str]) -> None:
        """Load the subject keys of ``key_ids`` not in the cache with one query per 500 (a batch of events
        asks for many): :meth:`subject_key` then finds them. Destroyed or unknown keys are left out, for
        :meth:`subject_key` to refuse as it always does."""
        wanted = sorted({k for k in key_ids if k not in self._subjects})
        for key_id, wrapped in self._subject_rows(wanted, erased_too=False):
            assert wrapped is not None
            self._cache_subject(key_id, SecretBytes(self._unwrap(key_id, "subject", wrapped)))

    def forget_cached(self, key_id: str) -> None:
        """Drop a subject key from this process's cache (after another process destroyed it)."""
        self._subjects.pop(key_id, None)

    # --- storage and wrapping ----------------------------------------------------------------------

    def _insert(self, key_id: str, kind: KeyKind, owner: str, material: bytes) -> None:
        _, wrapped = self._wrap(key_id, kind, material)
        self._db.execute(
            "INSERT INTO keys (key_id, kind, owner, wrapped, created_at, kek_id) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, kind, owner, wrapped, _now(), self._kek.kek_id),
        )

    def _set_current(self, name: str, key_id: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO current (name, key_id) VALUES (?, ?)", (name, key_id))

    def _current(self, name: str, missing: str) -> str:
        row = self._db.execute("SELECT key_id FROM current WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownReferenceError(missing)
        return str(row[0])

    def _row(self, key_id: str, kind: KeyKind) -> bytes | None:
        row = self._db.execute(
            "SELECT wrapped FROM keys WHERE key_id = ? AND kind = ?", (key_id, kind)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def _wrap(self, key_id: str, kind: KeyKind, material: bytes) -> tuple[str, bytes]:
        return key_id, self._kek.wrap(material, _aad(key_id, kind))

    def _unwrap(self, key_id: str, kind: str, blob: bytes) -> bytes:
        try:
            return self._kek.unwrap(blob, _aad(key_id, kind))
        except UnwrapRefused:
            raise self._unwrap_refused(key_id, kind) from None

    def _unwrap_refused(self, key_id: str, kind: str) -> ConfigurationError:
        found = self._db.execute(
            "SELECT kek_id FROM keys WHERE key_id = ? AND kind = ?", (key_id, kind)
        ).fetchone()
        recorded, configured = (found[0] if found else None) or "an unrecorded key", self._kek.kek_id
        if recorded != configured:
            return ConfigurationError(
                f"key {key_id!r} cannot be unwrapped: it was wrapped by key-encryption key {recorded}, and"
                f" the hub is configured with {configured}, not the one this store was made with"
                " (see SHAREHUB_KEK, the master key, the PKCS#11 token)"
            )
        return ConfigurationError(
            f"key {key_id!r} cannot be unwrapped under {configured}, which wrapped it: its stored bytes were"
            " altered"
        )

    # --- moving to another key-encryption key -------------------------------------------------------

    def rewrap(self, target: KeyEncryptionKey) -> Rewrapped:
        """Unwrap every live key with this store's KEK and wrap it with ``target``, in one transaction (any
        failure leaves every row as it was); each new blob is checked to unwrap to the same key before it
        is written. Then the write-ahead log, which holds the old blobs, is emptied and truncated, and the
        file itself keeps none (``secure_delete``). From then on the store uses ``target`` (and closes it);
        the old KEK is closed. On failure ``target`` is left to the caller."""
        source = self._kek
        if target.kek_id == source.kek_id:
            raise ConfigurationError(f"the key store is already wrapped by {source.kek_id}")
        count = 0
        with self._write():
            after = ("", "")
            while True:
                rows = self._db.execute(
                    "SELECT kind, key_id, wrapped FROM keys WHERE wrapped IS NOT NULL"
                    " AND (kind, key_id) > (?, ?) ORDER BY kind, key_id LIMIT ?",
                    (*after, _REWRAP_BATCH),
                ).fetchall()
                if not rows:
                    break
                updates = [
                    (self._rewrap_one(target, key_id, kind, bytes(wrapped)), target.kek_id, kind, key_id)
                    for kind, key_id, wrapped in rows
                ]
                self._db.executemany(
                    "UPDATE keys SET wrapped = ?, kek_id = ? WHERE kind = ? AND key_id = ?", updates
                )
                count += len(rows)
                after = (rows[-1][0], rows[-1][1])
        self._kek = target
        source.close()
        return Rewrapped(count, source.kek_id, target.kek_id, truncate_write_ahead_log(self._db))

    def _rewrap_one(self, target: KeyEncryptionKey, key_id: str, kind: str, blob: bytes) -> bytes:
        material, aad = self._unwrap(key_id, kind, blob), _aad(key_id, kind)
        rewrapped = target.wrap(material, aad)
        if target.unwrap(rewrapped, aad) != material:
            raise ConfigurationError(f"{target.kek_id} does not give back the key {key_id!r} it wrapped")
        return rewrapped


def _migrate_key_ids_to_one_namespace_per_kind(db: sqlite3.Connection) -> None:
    """Stores made before key ids were scoped by kind had ``key_id`` alone as the primary key."""
    found = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'keys'").fetchone()
    if found is None or "PRIMARY KEY (kind, key_id)" in found[0]:
        return
    db.execute("ALTER TABLE keys RENAME TO keys_unscoped")
    db.execute(_KEYS_TABLE)
    db.execute(
        "INSERT INTO keys (key_id, kind, owner, wrapped, created_at, destroyed_at)"
        " SELECT key_id, kind, owner, wrapped, created_at, destroyed_at FROM keys_unscoped"
    )
    db.execute("DROP TABLE keys_unscoped")


def _aad(key_id: str, kind: str) -> bytes:
    return f"sharehub-key:{kind}:{key_id}".encode()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
