"""The envelope reader against fastavro, the reference: it reads every envelope record fastavro writes to
the same values, and never accepts bytes fastavro would not read, or reads to other values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharehub.envelope import ENVELOPE_SCHEMA, Header
from sharehub.envelope_reader import LAYOUT, EnvelopeFields, read_envelope

AVRO_INT = st.integers(-(2**31), 2**31 - 1)
AVRO_LONG = st.integers(-(2**63), 2**63 - 1)


def fixed(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


ENVELOPES = st.fixed_dictionaries(
    {
        "producer": st.text(max_size=20),
        "dataset": st.text(max_size=20),
        "event_type": st.sampled_from(["UPSERTED", "CORRECTED", "ERASED"]),
        "event_id": st.text(max_size=40),
        "occurred_at": st.datetimes(timezones=st.just(dt.UTC)),
        "lane": AVRO_INT,
        "sequence": AVRO_LONG,
        "prev_hash": fixed(32),
        "schema_fingerprint": fixed(8),
        "signer_key_id": st.text(max_size=20),
        "data_key_id": st.text(max_size=20),
        "subject_key_id": st.text(max_size=20),
        "nonce": fixed(12),
        "personal_nonce": fixed(12),
        "ciphertext": st.binary(max_size=300),
        "personal_ciphertext": st.binary(max_size=100),
        "batch_index": AVRO_INT,
        "batch_size": AVRO_INT,
        "batch_path": st.lists(fixed(32), max_size=12),
        "signature": fixed(64),
    }
)


def as_dict(read: EnvelopeFields) -> dict[str, Any]:
    rest = ("ciphertext", "personal_ciphertext", "batch_index", "batch_size", "batch_path", "signature")
    return {**Header._make(read.header)._asdict(), **dict(zip(rest, read.rest, strict=True))}


def test_its_layout_is_the_envelope_schemas() -> None:
    kinds = {"string": "string", "int": "int", "long": "long", "bytes": "bytes"}
    named = {"EventType": "enum", "Sha256": "fixed32", "Crc64Avro": "fixed8", "GcmNonce": "fixed12"}
    named |= {"Ed25519Signature": "fixed64"}

    def kind(avro: Any) -> str:
        if isinstance(avro, str):
            return kinds.get(avro) or named[avro]
        if avro["type"] == "array":
            return f"array of {kind(avro['items'])}"
        if avro.get("logicalType") == "timestamp-micros":
            return "timestamp-micros"
        if avro["type"] == "fixed":
            return f"fixed{avro['size']}"
        return str(avro["type"])

    assert [(f["name"], kind(f["type"])) for f in ENVELOPE_SCHEMA.raw["fields"]] == list(LAYOUT)


@given(ENVELOPES)
def test_it_reads_what_fastavro_writes_to_the_same_values(fields: dict[str, Any]) -> None:
    record = ENVELOPE_SCHEMA.encode(fields)
    read = read_envelope(record)
    assert as_dict(read) == ENVELOPE_SCHEMA.decode(record) == fields
    header = ENVELOPE_SCHEMA.encode({**fields, "ciphertext": b"", "personal_ciphertext": b""})
    assert record[: read.header_end] == header[: read.header_end]
    tail = len(record) - read.body_end
    assert record[read.body_end :] == header[len(header) - tail :]  # the proof and the signature


@given(ENVELOPES, st.data())
def test_bytes_it_accepts_fastavro_reads_to_the_same_values(
    fields: dict[str, Any], data: st.DataObject
) -> None:
    record = bytearray(ENVELOPE_SCHEMA.encode(fields))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(record)))
        change = data.draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        if change == "flip" and at < len(record):
            record[at] ^= data.draw(st.integers(1, 255))
        elif change == "cut":
            del record[at:]
        elif change == "insert":
            record[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        elif at < len(record):
            del record[at]
    try:
        read = read_envelope(bytes(record))
    except ValueError:
        return
    assert as_dict(read) == ENVELOPE_SCHEMA.decode(bytes(record))


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (b"", "ends inside"),
        (b"\x80\x00", "shortest form"),  # the producer's length, 0 written in two bytes
        (b"\xff" * 11, "longer than a long"),
    ],
)
def test_bytes_that_are_no_envelope_record_are_refused_with_a_reason(record: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        read_envelope(record)


def test_an_enum_index_out_of_its_symbols_and_trailing_bytes_are_refused() -> None:
    fields = ENVELOPE_SCHEMA.decode(ENVELOPE_SCHEMA.encode(_example()))
    record = ENVELOPE_SCHEMA.encode(fields)
    with pytest.raises(ValueError, match="trailing"):
        read_envelope(record + b"\x00")
    producer_and_dataset = 2 + len(fields["producer"]) + len(fields["dataset"])
    bad = record[:producer_and_dataset] + b"\x06" + record[producer_and_dataset + 1 :]  # index 3
    with pytest.raises(ValueError, match="not one of the enum's symbols"):
        read_envelope(bad)


def _example() -> dict[str, Any]:
    return {
        "producer": "coc", "dataset": "party-members", "event_type": "UPSERTED", "event_id": "e-1",
        "occurred_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "lane": 2, "sequence": 7,
        "prev_hash": bytes(32), "schema_fingerprint": bytes(8), "signer_key_id": "k1",
        "data_key_id": "d1", "subject_key_id": "", "nonce": bytes(12), "personal_nonce": bytes(12),
        "ciphertext": b"c", "personal_ciphertext": b"", "batch_index": 0, "batch_size": 1,
        "batch_path": [], "signature": bytes(64),
    }  # fmt: skip
