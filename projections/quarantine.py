"""Quarantine records: an event the projection refused, its coordinates and a machine-readable reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

from projections.projector import Quarantined
from sharehub.avro import load_schema, split_single_object
from sharehub.kafka import Record

QUARANTINE_SCHEMA = load_schema("quarantine")


def encode_quarantined(entry: Quarantined) -> tuple[bytes, bytes]:
    """(Kafka key, value) of a quarantine record. The key names the source, so replays dedupe on it."""
    message = entry.message
    value = QUARANTINE_SCHEMA.encode_single_object(
        {
            "source_topic": message.topic,
            "source_partition": message.partition,
            "source_offset": message.offset,
            "reason": entry.reason,
            "detail": entry.detail,
            "quarantined_at": dt.datetime.now(dt.UTC),
            "original_key": message.key,
            "original_value": message.value,
        }
    )
    return f"{message.topic}:{message.partition}:{message.offset}".encode(), value


def decode_quarantined(value: bytes) -> dict[str, Any]:
    fp, body = split_single_object(value)
    if fp != QUARANTINE_SCHEMA.fingerprint:
        raise ValueError("not a sharehub quarantine record")
    return QUARANTINE_SCHEMA.decode(body)


#: The reason a record on the quarantine topic that is not a quarantine record is listed and counted under
#: (as the audit reports it): whoever may write the topic may write junk, and junk halts nothing.
MALFORMED = "malformed"


def quarantine_entry(record: Record) -> dict[str, Any]:
    """The quarantine record ``record`` holds; a record that is not one is an entry of its own, reason
    MALFORMED, that points at itself (``source_topic`` is the quarantine topic)."""
    try:
        return decode_quarantined(record.value)
    except Exception as exc:  # noqa: BLE001 - garbage of any kind is one malformed record
        return {
            "source_topic": record.topic,
            "source_partition": record.partition,
            "source_offset": record.offset,
            "reason": MALFORMED,
            "detail": f"not a sharehub quarantine record ({type(exc).__name__})",
            "quarantined_at": dt.datetime.fromtimestamp(record.timestamp_ms / 1000, dt.UTC),
            "original_key": None,
            "original_value": b"",
        }
