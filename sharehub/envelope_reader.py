"""The envelope's Avro record read straight from its bytes, for :func:`sharehub.envelope.parse`.

The audit parses every event of the log, and fastavro's generic reader (a dict of every field, then the
header built from it, then the proof encoded again to find where the body ends) was the largest part of
its work per event. This reads the fields of ``schemas/envelope.avsc`` in their order (:data:`LAYOUT`,
held against the schema by the tests) into the values the envelope needs, and where the body and the
header end. It is strict where Avro's encoding leaves room: a varint must be in its type's range and in
its shortest form, an enum index one of the symbols, a length within the bytes; so every envelope it
accepts has one encoding, the one fastavro writes. Anything else is a ``ValueError``."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

#: The envelope record's fields, in order, as this reader reads them (name, Avro type as read).
LAYOUT = (
    ("producer", "string"),
    ("dataset", "string"),
    ("event_type", "enum"),
    ("event_id", "string"),
    ("occurred_at", "timestamp-micros"),
    ("lane", "int"),
    ("sequence", "long"),
    ("prev_hash", "fixed32"),
    ("schema_fingerprint", "fixed8"),
    ("signer_key_id", "string"),
    ("data_key_id", "string"),
    ("subject_key_id", "string"),
    ("nonce", "fixed12"),
    ("personal_nonce", "fixed12"),
    ("ciphertext", "bytes"),
    ("personal_ciphertext", "bytes"),
    ("batch_index", "int"),
    ("batch_size", "int"),
    ("batch_path", "array of fixed32"),
    ("signature", "fixed64"),
)
EVENT_TYPES = ("UPSERTED", "CORRECTED", "ERASED")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT = 2**31
_LONG = 2**63


class EnvelopeFields(NamedTuple):
    """The envelope record's values, and where its header and its body end in the record."""

    #: The header's values, in :class:`~sharehub.envelope.Header`'s order.
    header: tuple[Any, ...]
    #: The rest, in :class:`~sharehub.envelope.Envelope`'s order: ciphertext, personal ciphertext, batch
    #: index, batch size, batch path, signature.
    rest: tuple[bytes, bytes, int, int, list[bytes], bytes]
    header_end: int
    body_end: int


class _Cursor:
    __slots__ = ("data", "at")

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def long(self, limit: int = _LONG) -> int:
        data, at = self.data, self.at
        byte = data[at]
        at += 1
        n, shift = byte & 0x7F, 7
        while byte & 0x80:
            if shift > 63:
                raise ValueError("a varint longer than a long's")
            byte = data[at]
            at += 1
            n |= (byte & 0x7F) << shift
            shift += 7
        if byte == 0 and shift > 7:
            raise ValueError("a varint not in its shortest form")
        self.at = at
        value = (n >> 1) ^ -(n & 1)
        if not -limit <= value < limit:
            raise ValueError(f"{value} is out of its type's range")
        return value

    def fixed(self, size: int) -> bytes:
        at = self.at
        end = at + size
        if size < 0 or end > len(self.data):
            raise ValueError("the record ends inside a value")
        self.at = end
        return self.data[at:end]

    def string(self) -> str:
        return self.fixed(self.long()).decode()


def read_envelope(record: bytes) -> EnvelopeFields:
    """The envelope record ``record`` (Avro binary, without the single-object prefix) read whole; a
    ValueError (or UnicodeDecodeError, one) when it is not one, or has bytes after it."""
    try:
        return _read(_Cursor(record), len(record))
    except IndexError:
        raise ValueError("the record ends inside a value") from None
    except OverflowError:
        raise ValueError("occurred_at is out of the datetime range") from None


def _read(c: _Cursor, size: int) -> EnvelopeFields:
    string, long, fixed = c.string, c.long, c.fixed
    producer, dataset = string(), string()
    kind = long()
    if not 0 <= kind < len(EVENT_TYPES):
        raise ValueError(f"event type {kind} is not one of the enum's symbols")
    event_id = string()
    occurred_at = _EPOCH + dt.timedelta(microseconds=long())
    lane, sequence = long(_INT), long()
    prev_hash, fingerprint = fixed(32), fixed(8)
    signer_key_id, data_key_id, subject_key_id = string(), string(), string()
    nonce, personal_nonce = fixed(12), fixed(12)
    header_end = c.at
    ciphertext = fixed(long())
    personal_ciphertext = fixed(long())
    body_end = c.at
    batch_index, batch_size = long(_INT), long(_INT)
    path: list[bytes] = []
    while (count := long()) != 0:
        if count < 0:  # a block that gives its size in bytes too
            count = -count
            long()
        path += [fixed(32) for _ in range(count)]
    signature = fixed(64)
    if c.at != size:
        raise ValueError(f"{size - c.at} trailing bytes after the envelope record")
    header = (
        producer, dataset, EVENT_TYPES[kind], event_id, occurred_at, lane, sequence, prev_hash, fingerprint,
        signer_key_id, data_key_id, subject_key_id, nonce, personal_nonce,
    )  # fmt: skip
    rest = (ciphertext, personal_ciphertext, batch_index, batch_size, path, signature)
    return EnvelopeFields(header, rest, header_end, body_end)
