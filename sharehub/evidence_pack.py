"""The evidence pack's format: a zip written canonically, so that any changed byte shows.

A pack (``sharehub audit pack``) holds, as members in this fixed order and under these names only::

    pack.json          what was asked (the scope), when the pack was made, the hub's pinned trust
    governance.jsonl   the whole governance log, every record as read (operator-signed, one hash chain)
    events.jsonl       dataset events: those in scope (``selected``) and, in each lane, the events that link
                       them to the owner's signed checkpoint (each envelope carries its Merkle inclusion
                       path and its batch's signature: it verifies alone, without the rest of its batch)
    checkpoints.jsonl  the owners' signed checkpoints that cover them
    access-log.jsonl   the access records in scope (operator-signed)
    report.json        what the offline check found, in stable keys (recomputed by ``verify-pack``)
    report.txt         the same for a reader
    manifest.json      SHA-256 of every member above

Each ``.jsonl`` line is one record as the broker held it: topic, partition, offset, whether it is in scope,
and its value (base64). Zip headers (times, comments, extra fields) are covered by no CRC, so the pack is
written one way only — stored, not compressed; fixed time, attributes and order; no extra field, no comment
— and :func:`read_pack` refuses a zip that is not byte for byte what :func:`write_pack` makes of its members.
Reading is bounded (size of the pack, of each member; member names and count) before anything is parsed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sharehub.errors import InputError, PackInvalid
from sharehub.gov.anchors import Anchors

FORMAT = "sharehub-evidence-pack-v1"
RECORD_MEMBERS = ("governance.jsonl", "events.jsonl", "checkpoints.jsonl", "access-log.jsonl")
REPORT_MEMBERS = ("report.json", "report.txt")
MANIFEST = "manifest.json"
MEMBERS = ("pack.json", *RECORD_MEMBERS, *REPORT_MEMBERS, MANIFEST)
#: Caps checked before any member is read: a pack past them is refused, not unpacked.
MAX_PACK_BYTES = 1 << 30
MAX_MEMBER_BYTES = 512 << 20
_SUBJECT_REF = re.compile(r"[0-9a-f]{32}")
#: A trust anchor as :func:`trust_fingerprint` gives it.
ANCHOR = re.compile(r"[0-9a-f]{64}")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16


class PackRecord(NamedTuple):
    """One record of a topic, as the broker held it; ``selected`` when it is in the pack's scope (else it
    is there to link a selected one to a checkpoint)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    selected: bool = True


@dataclass(frozen=True)
class Scope:
    """What a pack answers for: a consumer's data, or one subject (by pseudonym) of one dataset; events and
    access records of ``[start, end)`` (an event's signed ``occurred_at``, an access record's ``at``)."""

    consumer: str | None = None
    dataset: str | None = None
    subject_ref: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def holds_time(self, at: dt.datetime) -> bool:
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)

    def holds_access(self, record: Mapping[str, Any]) -> bool:
        """Whether an access record's fields are in scope."""
        return (
            (self.consumer is None or record["consumer"] == self.consumer)
            and (self.dataset is None or record["dataset"] == self.dataset)
            and (self.subject_ref is None or self.subject_ref in record["record_refs"])
            and self.holds_time(record["at"])
        )

    def to_json(self) -> dict[str, str | None]:
        return {
            "consumer": self.consumer,
            "dataset": self.dataset,
            "subject_ref": self.subject_ref,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
        }

    @classmethod
    def asked(
        cls,
        consumer: str | None,
        dataset: str | None,
        subject_ref: str | None,
        start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> Scope:
        """A scope as a command line gives it; InputError unless it is a consumer's data or one subject's
        (32 hex digits) of one dataset, over a time range that is one."""
        if (consumer is None) == (subject_ref is None) or (subject_ref is None) != (dataset is None):
            raise InputError("a pack is of a consumer's data (--consumer C) or of one subject (--dataset D "
                             "--subject-ref HEX), not both")  # fmt: skip
        if subject_ref is not None and not _SUBJECT_REF.fullmatch(subject_ref):
            raise InputError("--subject-ref: a record's pseudonym, 32 lower-case hex digits")
        if start is not None and end is not None and start >= end:
            raise InputError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
        return cls(consumer, dataset, subject_ref, start, end)

    @classmethod
    def from_json(cls, raw: Any) -> Scope:
        try:
            times = [None if raw[k] is None else _aware(raw[k]) for k in ("from", "to")]
            return cls(_text(raw["consumer"]), _text(raw["dataset"]), _text(raw["subject_ref"]), *times)
        except (KeyError, TypeError, ValueError) as exc:
            raise PackInvalid(f"pack.json: the scope is malformed ({exc})") from None


@dataclass(frozen=True)
class Evidence:
    """A pack's content: what was asked, the trust it claims, and the records."""

    scope: Scope
    trust: Anchors
    created_at: str
    governance: tuple[PackRecord, ...] = ()
    events: tuple[PackRecord, ...] = ()
    checkpoints: tuple[PackRecord, ...] = ()
    access: tuple[PackRecord, ...] = ()
    #: The two report members, as written (computed from the rest by :mod:`sharehub.evidence_check`).
    reports: tuple[bytes, bytes] = field(default=(b"", b""))

    def records(self) -> tuple[tuple[PackRecord, ...], ...]:
        """The record members' content, in :data:`RECORD_MEMBERS` order."""
        return self.governance, self.events, self.checkpoints, self.access


def trust_fingerprint(trust: Anchors) -> str:
    """The trust anchor an auditor holds apart from any pack: SHA-256 (hex) of the hub's pinned trust (the
    operator, its topic prefix and first public keys) in canonical JSON. ``audit pack`` prints it; the
    auditor's site has the same trust in its ``trust.json``."""
    return hashlib.sha256(_canonical(_trust_json(trust))).hexdigest()


def write_pack(evidence: Evidence) -> bytes:
    """The pack's bytes: its members in canonical form, then the manifest of their hashes."""
    members = [("pack.json", _canonical(_head(evidence)))]
    members += [(n, _jsonl(r)) for n, r in zip(RECORD_MEMBERS, evidence.records(), strict=True)]
    members += list(zip(REPORT_MEMBERS, evidence.reports, strict=True))
    members.append((MANIFEST, manifest(dict(members))))
    return canonical_zip(members)


def manifest(members: Mapping[str, bytes]) -> bytes:
    """The manifest member: the format and the SHA-256 of every other member."""
    hashes = {n: hashlib.sha256(members[n]).hexdigest() for n in MEMBERS if n != MANIFEST}
    return _canonical({"format": FORMAT, "sha256": hashes})


def canonical_zip(members: list[tuple[str, bytes]]) -> bytes:
    """The one way a pack's zip is written: stored, fixed time and mode, no extra field, no comment."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_STORED, 3, _FILE_MODE
            zf.writestr(info, data)
    return out.getvalue()


def read_pack_file(path: Path) -> bytes:
    """A pack file's bytes, refused before reading when it is past the cap; PackInvalid otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_PACK_BYTES:
            raise PackInvalid(f"{path}: {size:,} bytes; a pack is {MAX_PACK_BYTES:,} at most")
        return path.read_bytes()
    except OSError as exc:
        raise PackInvalid(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_members(data: bytes) -> dict[str, bytes]:
    """The members of a pack's zip, by name, after every bound is checked; PackInvalid otherwise. (Whether
    the zip is canonical is :mod:`sharehub.evidence_check`'s finding, not an error here.)"""
    if len(data) > MAX_PACK_BYTES:
        raise PackInvalid(f"the pack is {len(data):,} bytes; the limit is {MAX_PACK_BYTES:,}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            _check_names([i.filename for i in infos])
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > MAX_MEMBER_BYTES:
                    raise PackInvalid(
                        f"member {info.filename}: compressed or over {MAX_MEMBER_BYTES:,} bytes (a pack "
                        "stores its members as they are)"
                    )
            return {info.filename: zf.read(info) for info in infos}
    except PackInvalid:
        raise
    except Exception as exc:  # zipfile raises many kinds on a damaged zip; all mean the same here
        raise PackInvalid(f"not a readable zip: {type(exc).__name__}: {exc}") from None


def parse_members(members: Mapping[str, bytes]) -> Evidence:
    """The evidence the members hold; PackInvalid for a member that does not parse."""
    head = _json(members, "pack.json")
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise PackInvalid(f"pack.json: not a {FORMAT} pack")
    try:
        raw_trust = head["trust"]
        trust = Anchors(str(raw_trust["operator"]), str(raw_trust["topic_prefix"]), dict(raw_trust["keys"]))
        trust.trust  # noqa: B018 - every key must be a raw Ed25519 public key in hex
        created_at = str(head["created_at"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PackInvalid(f"pack.json: malformed ({exc})") from None
    governance, events, checkpoints, access = (_records(members, name) for name in RECORD_MEMBERS)
    return Evidence(
        Scope.from_json(head.get("scope")), trust, created_at, governance, events, checkpoints, access,
        reports=(members["report.json"], members["report.txt"]),
    )  # fmt: skip


def _check_names(names: list[str]) -> None:
    strange = [n for n in names if n.startswith("/") or ".." in n or "\\" in n or "/" in n]
    if strange:
        raise PackInvalid(f"member names with a path in them: {', '.join(map(repr, strange[:5]))}")
    if names != list(MEMBERS):
        missing, extra = set(MEMBERS) - set(names), [n for n in names if n not in MEMBERS]
        raise PackInvalid(
            f"the members are not a pack's ({len(names)} members; missing: {sorted(missing) or 'none'}; "
            f"unexpected: {extra[:5] or 'none'}; expected exactly {', '.join(MEMBERS)} in this order)"
        )


def _head(evidence: Evidence) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "created_at": evidence.created_at,
        "scope": evidence.scope.to_json(),
        "trust": _trust_json(evidence.trust),
        "anchor": trust_fingerprint(evidence.trust),
    }


def _trust_json(trust: Anchors) -> dict[str, Any]:
    return {"operator": trust.operator, "topic_prefix": trust.topic_prefix, "keys": dict(trust.keys)}


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _jsonl(records: tuple[PackRecord, ...]) -> bytes:
    return b"".join(
        _canonical(
            {
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "selected": r.selected,
                "value": base64.b64encode(r.value).decode(),
            }
        )
        for r in records
    )


def _json(members: Mapping[str, bytes], name: str) -> Any:
    try:
        return json.loads(members[name])
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackInvalid(f"{name}: not JSON ({exc})") from None


def _records(members: Mapping[str, bytes], name: str) -> tuple[PackRecord, ...]:
    out = []
    for number, line in enumerate(members[name].splitlines(), 1):
        try:
            raw = json.loads(line)
            record = PackRecord(
                raw["topic"], raw["partition"], raw["offset"], base64.b64decode(raw["value"], validate=True),
                raw["selected"],
            )  # fmt: skip
            types = (str, int, int, bytes, bool)
            if not all(type(v) is t for v, t in zip(record, types, strict=True)):
                raise TypeError("a field of the wrong type")
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise PackInvalid(f"{name} line {number}: not a pack record ({exc})") from None
        out.append(record)
    return tuple(out)


def _aware(text: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value
