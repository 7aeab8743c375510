"""``sharehub backup create``: what a hub cannot get back from its log, in one archive.

Every fact is on the broker (governance log, dataset topics, checkpoints, access log) and every read model
is a replay of it (:mod:`services.rebuild`). What the log cannot give back lives in the hub's home:

- the **key store** (``keys.db``), as it is at rest: every key wrapped under the key-encryption key (KEK).
  It is copied with SQLite's backup API, a consistent snapshot even while the hub writes; no key is
  unwrapped. The KEK itself (master key file, or the token and its PIN) is **not** in the backup: it is
  kept apart, and without it the archive opens nothing;
- the **governance anchors** (``trust.json``: operator, topic prefix, the operator's first public key);
- the **hub CA** and the HTTPS APIs' certificate; the CA's key is PKCS#8 encrypted under its passphrase,
  and the passphrase and the API's key, which the home holds in clear, are *sealed* in the archive
  (wrapped under the KEK, :func:`services.backup_archive.seal`);
- the **erasure receipts** the operator signed, and the **journals** of publishing from the hub (exactly
  once across a restore);
- the settings that matter (broker, KEK, read-model database without its password), in the manifest.

Not in it: read models (rebuilt), the local development broker and its data (the log is the cluster's, kept
by replication), logs and pid files, agency sites (each agency backs up its own: docs/agency-sites.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.engine import make_url

from services.backup_archive import Manifest, Member, digest_of, seal, write_archive
from sharehub.errors import ConfigurationError, InputError
from sharehub.gov import anchors
from sharehub.kek import KeyEncryptionKey
from sharehub.keys import write_private
from sharehub.settings import Settings

KEY_STORE = "keys.db"


@dataclass(frozen=True)
class Part:
    """One file (or a pattern of files) of the home that goes into a backup."""

    pattern: str
    #: A secret the home holds in clear: wrapped under the KEK in the archive.
    sealed: bool = False
    #: A SQLite database, perhaps in use: copied with SQLite's backup API (its write-ahead log included).
    database: bool = False


PARTS = (
    Part(KEY_STORE, database=True),
    Part(anchors.FILE_NAME),
    Part("tls/ca.pem"),
    Part("tls/ca.key"),
    Part("tls/ca.passphrase", sealed=True),
    Part("tls/api.pem"),
    Part("tls/api.key", sealed=True),
    Part("erasures/*.json"),
    Part("connectors/*.journal.db", database=True),
)

#: Settings a restored hub needs again, by field of :class:`~sharehub.settings.Settings`.
KEPT_SETTINGS = (
    "kafka_bootstrap", "kafka_mtls_bootstrap", "kafka_ca_file", "kafka_admin_user", "kafka_security", "kek",
    "pkcs11_module", "pkcs11_token", "pkcs11_pin_file", "pkcs11_key_label", "read_model_url", "history_days",
    "api_host", "api_port",
)  # fmt: skip


def kept_settings(settings: Settings) -> dict[str, str]:
    """The settings worth restoring, as ``SHAREHUB_*`` names; a database URL loses its password."""
    kept: dict[str, str] = {}
    for name in KEPT_SETTINGS:
        value = getattr(settings, name)
        if value is None or value == Settings.model_fields[name].default:
            continue
        if name == "read_model_url":
            value = make_url(str(value)).set(password=None).render_as_string(hide_password=False)
        kept[f"SHAREHUB_{name.upper()}"] = str(value)
    return kept


def files_of(home: Path, parts: Iterable[Part]) -> Iterator[tuple[str, Path, Part]]:
    """(member name, file, its part) of every part present in ``home``."""
    for part in parts:
        for path in sorted(home.glob(part.pattern)):
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(home).as_posix(), path, part


def create(settings: Settings, open_kek: Callable[[], KeyEncryptionKey], out: Path) -> Manifest:
    """Write the backup of the hub at ``settings.home`` to ``out`` (refused if ``out`` exists), sealing with
    the KEK ``open_kek`` opens once the home is found to hold a hub."""
    home = settings.home
    pinned = anchors.load(home)
    if not (home / KEY_STORE).is_file():
        raise InputError(f"there is no key store at {home / KEY_STORE}: nothing to back up")
    about = Manifest.about("hub", pinned.topic_prefix, pinned.operator, kept_settings(settings))
    kek = open_kek()
    try:
        return write_backup(home, PARTS, kek, about, out)
    finally:
        kek.close()


def write_backup(
    home: Path, parts: Iterable[Part], kek: KeyEncryptionKey, about: Manifest, out: Path
) -> Manifest:
    """Write ``home``'s ``parts`` to the archive ``out`` (never over a file), the secrets sealed under
    ``kek``; ``about`` says what the home is, its members and KEK are filled in."""
    if out.exists():
        raise InputError(f"{out} exists: a backup never overwrites a file")
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=home) as scratch:
        staged: dict[str, Path] = {}
        members: list[Member] = []
        for name, path, part in files_of(home, parts):
            copy = Path(scratch) / f"{len(staged)}"
            if part.database:
                _snapshot_database(path, copy)
                if name == KEY_STORE:
                    _check_wrapped_by(copy, kek.kek_id)
            else:
                data = path.read_bytes()
                write_private(copy, seal(kek, about.topic_prefix, name, data) if part.sealed else data)
            staged[name] = copy
            members.append(Member(name, *digest_of(copy), part.sealed))
        manifest = replace(about, kek_id=kek.kek_id, members=tuple(members))
        write_archive(out, manifest, kek, staged)
    return manifest


def _snapshot_database(source: Path, copy: Path) -> None:
    """A consistent copy of a live SQLite database (SQLite's backup API, never a copy of the file), as one
    file without a write-ahead log."""
    write_private(copy, b"")
    src = sqlite3.connect(source)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise ConfigurationError(f"{source} could not be copied: {exc}") from None
    finally:
        dst.close()
        src.close()


def _check_wrapped_by(key_store: Path, kek_id: str) -> None:
    """Refused if the key store's keys are wrapped under another KEK than the hub's."""
    with contextlib.closing(sqlite3.connect(key_store)) as db:
        rows = db.execute("SELECT DISTINCT kek_id FROM keys WHERE wrapped IS NOT NULL").fetchall()
    wrapped_by = {row[0] for row in rows}
    if wrapped_by - {kek_id}:
        raise ConfigurationError(
            f"the key store holds keys wrapped under {', '.join(sorted(map(str, wrapped_by)))}, not under "
            f"the hub's key-encryption key {kek_id}: configure the hub with the KEK that wraps them"
        )
