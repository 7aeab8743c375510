"""The governance log outlives every release of the governance event schema: each event is read with the
schema that wrote it (its fingerprint says which) into today's form, and every release is kept."""

from __future__ import annotations

import io
import json
from importlib import resources
from typing import Any

import fastavro
import pytest

from sharehub.avro import SINGLE_OBJECT_MARKER, RecordSchema, split_single_object
from sharehub.errors import MalformedEnvelope
from sharehub.gov import events as ev
from sharehub.gov import fold
from sharehub.keys import SigningKey
from sharehub.schema_compat import check_compatible
from tests.gov_support import Clock, seeded, signing_key

HISTORY = resources.files("schemas").joinpath("history", "governance-event")


def kept_releases() -> dict[str, RecordSchema]:
    """The snapshot files themselves, by file name (without the current schema added)."""
    return {
        entry.name: RecordSchema.from_json("governance-event", json.loads(entry.read_text(encoding="utf-8")))
        for entry in HISTORY.iterdir()
        if entry.name.endswith(".avsc")
    }


def test_the_current_schema_is_kept_as_a_release() -> None:
    """Changing governance-event.avsc without keeping the new release would leave the next release unable
    to read what this one writes."""
    releases = kept_releases()
    assert f"{ev.EVENT_SCHEMA.fingerprint.hex()}.avsc" in releases, (
        "governance-event.avsc changed: keep it as schemas/history/governance-event/<fingerprint>.avsc"
    )


def test_each_release_is_named_by_its_own_fingerprint() -> None:
    for name, schema in kept_releases().items():
        assert name == f"{schema.fingerprint.hex()}.avsc"


def test_every_release_reads_into_the_current_schema() -> None:
    releases = list(kept_releases().values())
    assert len(releases) >= 2
    assert check_compatible(ev.EVENT_SCHEMA, releases) == []


def rewritten(raws: list[bytes], writer: RecordSchema, key: SigningKey) -> list[bytes]:
    """The same events, encoded with ``writer`` and signed again, each linked to the one rewritten before."""
    out: list[bytes] = []
    prev_hash = ev.ZERO_HASH
    for raw in raws:
        _, avro = split_single_object(raw[: -ev.SIGNATURE_SIZE])
        datum: dict[str, Any] = fastavro.schemaless_reader(
            io.BytesIO(avro), ev.EVENT_SCHEMA.parsed, None, return_record_name=True
        )
        datum["prev_hash"] = prev_hash
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer.parsed, datum)
        body = SINGLE_OBJECT_MARKER + writer.fingerprint + buf.getvalue()
        out.append(body + key.sign(body))
        prev_hash = ev.parse(out[-1]).hash
    return out


def first_release() -> RecordSchema:
    """The release before datasets had quality rules."""
    (first,) = [s for s in kept_releases().values() if "quality_rules" not in json.dumps(s.raw)]
    return first


def test_a_log_written_by_the_first_release_folds_into_todays_state() -> None:
    key = signing_key()
    svc = seeded(Clock(), key)
    raws = svc._log.read_all()
    old = rewritten(raws, first_release(), key)
    assert all(split_single_object(raw)[0] == first_release().fingerprint for raw in old)

    declared = [e.payload for e in map(ev.parse, old) if isinstance(e.payload, ev.DatasetDeclared)]
    assert declared and all(p.quality_rules == () for p in declared)  # the field it lacked, defaulted
    today = fold(raws, svc.state.trust, svc.state.topic_prefix)
    then = fold(old, svc.state.trust, svc.state.topic_prefix)
    # The same state; only the head's hash differs, as the bytes do.
    assert {**then.dump(), "head": None} == {**today.dump(), "head": None}
    assert then.head_sequence == today.head_sequence == len(raws)


def test_an_old_event_keeps_its_own_bytes_and_signature() -> None:
    """Read into today's form, an old event is still the bytes its signer signed: the chain and the
    signature are judged on them, never on a re-encoding."""
    key = signing_key()
    svc = seeded(Clock(), key)
    old = rewritten(svc._log.read_all(), first_release(), key)
    event = ev.parse(old[0])
    assert event.raw == old[0]
    key.private.public_key().verify(event.signature, event.body)


def test_a_schema_no_release_wrote_is_refused() -> None:
    key = signing_key()
    svc = seeded(Clock(), key)
    raw = svc._log.read_all()[0]
    body = bytearray(raw[: -ev.SIGNATURE_SIZE])
    body[2:10] = bytes(8)  # a fingerprint of no release
    with pytest.raises(MalformedEnvelope, match="not one of the governance event's releases"):
        ev.parse(bytes(body) + key.sign(bytes(body)))
