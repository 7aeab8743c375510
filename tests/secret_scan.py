"""Find secrets and personal data in the files the hub wrote: every byte of every file, in one pass.

A needle is a labelled byte string; a key is looked for as its raw bytes, hex and base64 (standard and URL
alphabets), a text (a national id, a phone number) as its UTF-8 bytes, and only where it is not part of a
longer run of digits (``0912345678`` inside a timestamp is no finding). One Aho-Corasick automaton holds every
needle, so thousands of them cost one pass over each file (bytes are read as Latin-1: one character each).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ahocorasick

_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True)
class Finding:
    path: Path
    offset: int
    label: str

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}: {self.label}"


class Needles:
    def __init__(self) -> None:
        self._automaton = ahocorasick.Automaton()
        self.count = 0

    def add_key(self, label: str, material: bytes) -> None:
        """A key or password: its raw bytes and its usual printable spellings."""
        forms = {
            "raw": material,
            "hex": material.hex().encode(),
            "base64": base64.b64encode(material).rstrip(b"="),
            "base64url": base64.urlsafe_b64encode(material).rstrip(b"="),
        }
        for form, needle in forms.items():
            self._add(needle, f"{label} ({form})", bounded=False)

    def add_text(self, label: str, text: str) -> None:
        """A personal datum as it would be written in a log line or a JSON document."""
        self._add(text.encode(), label, bounded=True)

    def _add(self, needle: bytes, label: str, *, bounded: bool) -> None:
        if len(needle) < 8:
            raise ValueError(f"{label}: a needle of {len(needle)} bytes would match by chance")
        self._automaton.add_word(needle.decode("latin-1"), (len(needle), label, bounded))
        self.count += 1

    def scan(self, files: Iterable[Path]) -> list[Finding]:
        found: list[Finding] = []
        if not self.count:
            return found
        self._automaton.make_automaton()
        for path in files:
            data = path.read_bytes()
            for end, (size, label, bounded) in self._automaton.iter(data.decode("latin-1")):
                start = end - size + 1
                if bounded and _inside_a_longer_number(data, start, end):
                    continue
                found.append(Finding(path, start, label))
        return found


def _inside_a_longer_number(data: bytes, start: int, end: int) -> bool:
    before = data[start - 1] if start > 0 else None
    after = data[end + 1] if end + 1 < len(data) else None
    return (data[start] in _DIGITS and before in _DIGITS) or (data[end] in _DIGITS and after in _DIGITS)


def files_under(root: Path, *, except_: Iterable[Path] = ()) -> list[Path]:
    """Every regular file under ``root``, but the ones named (which hold a secret by design)."""
    skip = {p.resolve() for p in except_}
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.resolve() not in skip
    )
