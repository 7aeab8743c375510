"""The backup archive of a hub's home: a tar file led by ``manifest.json`` and ``manifest.seal``.

The home is a hub's (:mod:`services.backup`) or an agency site's (:mod:`services.site_backup`). The manifest
names every other member with its SHA-256 and size and says whether it is *sealed* (its bytes wrapped under
the home's key-encryption key, because they are a secret in clear in the home: the hub's KEK, or at a site a
key derived from its passphrase); it also holds the kind of home, the hub's topic prefix, the agency (the
hub's operator, or the site's), the id of the KEK, when the backup was made, by which versions, and the
settings the hub ran with. ``manifest.seal`` is the manifest's SHA-256 wrapped under the same KEK
(AES-GCM): whoever lacks the KEK cannot make a manifest that passes, and a member altered after the backup
no longer has its hash.

Reading trusts nothing in the file: a member that is not a regular file, a name that is absolute, climbs
out (``..``), is not in the manifest or is there twice, is refused (:class:`BackupInvalid`) before any
byte is written anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
import re
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Literal

import sharehub
from sharehub.errors import BackupInvalid
from sharehub.kek import KeyEncryptionKey, UnwrapRefused
from sharehub.keys import write_private

FORMAT = "sharehub-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SEAL = "manifest.seal"
#: A member's name: a relative path of at most four plain parts (no ``..``, no leading dot or slash).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,3}")
_CHUNK = 1 << 20
#: A manifest larger than this is not one of ours.
_MANIFEST_LIMIT = 1 << 22


@dataclass(frozen=True)
class Member:
    name: str
    sha256: str
    size: int
    #: Its bytes are wrapped under the KEK (:func:`seal`); restoring unwraps them.
    sealed: bool


HomeKind = Literal["hub", "site"]


@dataclass(frozen=True)
class Manifest:
    created_at: str
    kind: HomeKind
    #: The hub's topic prefix ("" at a site not connected to a hub yet).
    topic_prefix: str
    #: The hub's operator, or the site's agency.
    agency: str
    versions: dict[str, str]
    #: The ``SHAREHUB_*`` settings the hub ran with that a restored hub needs again (no secret among them).
    settings: dict[str, str]
    #: The KEK that wraps the sealed members (and a hub's key store): its id, never the key.
    kek_id: str = ""
    members: tuple[Member, ...] = field(default=())

    @classmethod
    def about(cls, kind: HomeKind, topic_prefix: str, agency: str, settings: dict[str, str]) -> Manifest:
        """A manifest of a backup made now (its members and KEK are filled in as it is written)."""
        versions = {
            "sharehub": sharehub.__version__,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        }
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(now, kind, topic_prefix, agency, versions, settings)

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"

    @property
    def home_name(self) -> str:
        """What the backup was taken of, for messages: the hub 'prefix', or the site of 'agency'."""
        return f"the hub {self.topic_prefix!r}" if self.kind == "hub" else f"the site of {self.agency!r}"

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
            if body.get("format") != FORMAT:
                raise BackupInvalid(f"{MANIFEST} is not a sharehub backup's manifest")
            if body.get("format_version") != FORMAT_VERSION:
                raise BackupInvalid(f"backup format version {body.get('format_version')!r} is not known here")
            if body.get("kind") not in ("hub", "site"):
                raise BackupInvalid(f"{MANIFEST} names no kind of home it was taken of")
            members = tuple(Member(**m) for m in body["members"])
            manifest = cls(
                str(body["created_at"]), body["kind"], str(body["topic_prefix"]), str(body["agency"]),
                dict(body["versions"]), dict(body["settings"]), str(body["kek_id"]), members,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupInvalid(f"{MANIFEST} is malformed ({type(exc).__name__}: {exc})") from None
        for member in members:
            check_name(member.name)
        return manifest


def check_name(name: str) -> None:
    """Refuse a member name that could land outside the home it is restored into."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (MANIFEST, SEAL):
        raise BackupInvalid(f"member name {name!r} is not allowed (absolute, climbing out, or reserved)")


def _aad(topic_prefix: str, name: str) -> bytes:
    return b"sharehub-backup\x00" + topic_prefix.encode() + b"\x00" + name.encode()


def seal(kek: KeyEncryptionKey, topic_prefix: str, name: str, data: bytes) -> bytes:
    """``data`` wrapped under the KEK, bound to the hub and the member's name."""
    return kek.wrap(data, _aad(topic_prefix, name))


def unseal(kek: KeyEncryptionKey, topic_prefix: str, name: str, blob: bytes) -> bytes:
    try:
        return kek.unwrap(blob, _aad(topic_prefix, name))
    except UnwrapRefused:
        raise BackupInvalid(
            f"{name}: its sealed bytes do not open under {kek.kek_id}: another key (a wrong master key or "
            "passphrase), or altered"
        ) from None


def write_archive(out: Path, manifest: Manifest, kek: KeyEncryptionKey, files: dict[str, Path]) -> None:
    """Write the archive to ``out`` (owner-only, atomically): manifest, its seal, then each member's file."""
    body = manifest.to_bytes()
    sealed = seal(kek, manifest.topic_prefix, MANIFEST, hashlib.sha256(body).digest())
    buffer = out.with_name(f".{out.name}.partial")
    write_private(buffer, b"")
    try:
        with tarfile.open(buffer, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, io.BytesIO(body), len(body))
            _add(tar, SEAL, io.BytesIO(sealed), len(sealed))
            for member in manifest.members:
                with files[member.name].open("rb") as data:
                    _add(tar, member.name, data, member.size)
        buffer.replace(out)
    finally:
        buffer.unlink(missing_ok=True)


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o600
    tar.addfile(info, data)


def digest_of(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks."""
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


class BackupReader:
    """An archive opened for reading: its members checked against the manifest before anything is read."""

    def __init__(self, path: Path) -> None:
        try:
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except (tarfile.TarError, OSError) as exc:
            raise BackupInvalid(
                f"{path} is not a sharehub backup (not a readable tar archive: {exc})"
            ) from None
        try:
            self._infos = self._check_members()
            self._manifest_bytes = self._read(MANIFEST, _MANIFEST_LIMIT)
            self.manifest = Manifest.from_bytes(self._manifest_bytes)
            self._check_listed()
        except BaseException:
            self._tar.close()
            raise

    def _check_members(self) -> dict[str, tarfile.TarInfo]:
        infos: dict[str, tarfile.TarInfo] = {}
        try:
            members = self._tar.getmembers()
        except (tarfile.TarError, OSError) as exc:
            raise BackupInvalid(f"the archive is damaged ({exc})") from None
        for info in members:
            if info.name not in (MANIFEST, SEAL):
                check_name(info.name)
            if not info.isreg():
                raise BackupInvalid(f"member {info.name!r} is not a regular file (a link or a device)")
            if info.name in infos:
                raise BackupInvalid(f"member {info.name!r} is in the archive twice")
            infos[info.name] = info
        for needed in (MANIFEST, SEAL):
            if needed not in infos:
                raise BackupInvalid(f"the archive has no {needed}: not a sharehub backup")
        return infos

    def _check_listed(self) -> None:
        listed = {m.name for m in self.manifest.members}
        present = set(self._infos) - {MANIFEST, SEAL}
        if listed != present:
            extra, missing = sorted(present - listed), sorted(listed - present)
            raise BackupInvalid(f"the archive does not match its manifest: extra {extra}, missing {missing}")

    def _stream(self, name: str) -> IO[bytes]:
        stream = self._tar.extractfile(self._infos[name])
        assert stream is not None  # a regular file, checked
        return stream

    def _read(self, name: str, limit: int) -> bytes:
        if self._infos[name].size > limit:
            raise BackupInvalid(f"{name} is too large to be what it claims")
        return self._stream(name).read()

    def check_seal(self, kek: KeyEncryptionKey) -> None:
        """The manifest is the one the holder of ``kek`` wrote (raises :class:`BackupInvalid` otherwise)."""
        opened = unseal(kek, self.manifest.topic_prefix, MANIFEST, self._read(SEAL, 1024))
        if opened != hashlib.sha256(self._manifest_bytes).digest():
            raise BackupInvalid(f"{MANIFEST} was altered: it does not match its seal")

    def chunks(self, member: Member) -> Iterator[bytes]:
        """The member's bytes in chunks; :class:`BackupInvalid` after the last if they are not what the
        manifest says (a caller writes them to a staging place it drops then)."""
        sha, size, stream = hashlib.sha256(), 0, self._stream(member.name)
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
            yield chunk
        if size != member.size or sha.hexdigest() != member.sha256:
            raise BackupInvalid(f"member {member.name} was altered: its SHA-256 is not the manifest's")

    def read(self, member: Member) -> bytes:
        return b"".join(self.chunks(member))

    def verify(self) -> None:
        """Every member's bytes hash as the manifest says."""
        for member in self.manifest.members:
            for _ in self.chunks(member):
                pass

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> BackupReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
