"""The envelope: seal → open round trip, each refusal with its own error, and tamper evidence."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import fastavro
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.projector import LogMessage, Projector
from services.hub import Hub
from sharehub import envelope as envelope_module
from sharehub.avro import record_from_json
from sharehub.envelope import (
    ZERO_HASH,
    ChainPosition,
    Envelope,
    open_envelope,
    parse,
    pseudonym,
    seal,
    verify,
)
from sharehub.errors import (
    DatasetMismatch,
    DecryptionFailed,
    EnvelopeError,
    MalformedEnvelope,
    NotOwner,
    PayloadInvalid,
    SignatureInvalid,
    UnknownDataKey,
    UnknownSigner,
    UnsupportedEnvelopeVersion,
)
from sharehub.keys import SigningKey, subject_key_id
from tests.unit.test_avro import member
from tooling.synthetic.resolution_tasks import generate_resolution_tasks

DATASET = "party-members"
FIRST = ChainPosition(0, 1, ZERO_HASH)


def subject_of(hub: Hub, record_key: str, dataset: str = DATASET) -> str:
    """The subject key id of a record, created if new (as the publisher does before sealing)."""
    ref = pseudonym(hub.keys.routing_key(dataset), record_key)
    hub.keys.ensure_subject_keys(dataset, [ref])
    return subject_key_id(dataset, ref)


def sealed(
    hub: Hub,
    *,
    producer: str = "coc",
    signing_key: SigningKey | None = None,
    record: dict[str, Any] | None = None,
    position: ChainPosition = FIRST,
    dataset: str = DATASET,
    datum: dict[str, Any] | None = None,
    **overrides: Any,
) -> Envelope:
    """``record`` (JSON, a party member by default) validated, sealed and signed by ``producer``; or
    ``datum``, an Avro record of ``dataset`` sealed as it is, unvalidated (what faulty software could do)."""
    schema = hub.governance.current_schema(dataset)
    key_id = hub.keys.current_data_key_id(dataset)
    if datum is None:
        datum = record_from_json(schema, record or member())
    subject = subject_of(hub, datum[hub.governance.dataset(dataset).key_field], dataset)
    args: dict[str, Any] = dict(
        schema=schema,
        record=datum,
        producer=producer,
        dataset=dataset,
        event_type="UPSERTED",
        position=position,
        signing_key=signing_key or hub.keys.signing_key(producer),
        data_key_id=key_id,
        data_key=hub.keys.data_key(key_id),
        subject_key_id=subject,
        subject_key=hub.keys.subject_key(subject),
    )
    args.update(overrides)
    return seal(**args)


def opened(hub: Hub, raw: bytes, dataset: str = DATASET) -> Any:
    return open_envelope(raw, topic_dataset=dataset, signers=hub.governance, keys=hub.keys)


def test_round_trip(offline_hub: Hub) -> None:
    envelope = sealed(offline_hub)
    event = opened(offline_hub, envelope.raw)
    assert event.record["full_name"] == "Nguyễn Thị Lan"
    assert event.record["date_of_birth"] == dt.date(1980, 2, 29)
    assert event.header.producer == "coc"
    assert event.header.sequence == 1


@pytest.mark.parametrize("budget", [float("nan"), float("inf")])
def test_a_nan_or_an_infinity_sealed_by_the_owner_is_quarantined_as_an_invalid_payload(
    offline_hub: Hub, budget: float
) -> None:
    """The publisher refuses them (JSON has neither); an owner's software that seals one anyway gets its
    event quarantined, where a read model could not store it and an answer could not carry it."""
    dataset = "resolution-tasks"
    schema = offline_hub.governance.current_schema(dataset)
    task = record_from_json(schema, next(generate_resolution_tasks(1, seed=3)))
    task["budget_billion_vnd"] = budget
    envelope = sealed(offline_hub, producer="cpo", dataset=dataset, datum=task)
    with pytest.raises(PayloadInvalid, match="'budget_billion_vnd' holds a NaN or an infinity"):
        opened(offline_hub, envelope.raw, dataset)
    projector = Projector(offline_hub.governance, offline_hub.keys, {"go": offline_hub.store("go")})
    topic = offline_hub.governance.dataset(dataset).topic
    decision = projector.decide([LogMessage(topic, 0, 0, None, envelope.raw)])
    assert [q.reason for q in decision.quarantined] == ["payload_invalid"]
    assert decision.rows["go"] == []


def test_the_wire_form_is_the_avro_envelope_record(offline_hub: Hub) -> None:
    from sharehub.envelope import ENVELOPE_SCHEMA

    envelope = sealed(offline_hub)
    fields = ENVELOPE_SCHEMA.decode(envelope.raw[10:])
    assert fields["ciphertext"] == envelope.ciphertext
    assert fields["signature"] == envelope.signature
    assert fields["schema_fingerprint"] == offline_hub.governance.current_schema(DATASET).fingerprint


def test_the_payload_is_not_readable_on_the_wire(offline_hub: Hub) -> None:
    raw = sealed(offline_hub).raw
    for plaintext in ("Nguyễn Thị Lan".encode(), b"087180123456", b"0912345678", b"CB-28315-001"):
        assert plaintext not in raw


def test_signature_verifies_without_any_decryption_key(offline_hub: Hub) -> None:
    envelope = parse(sealed(offline_hub).raw)
    verify(envelope, offline_hub.governance)  # governance holds public keys only


def test_every_single_bit_flip_is_detected(offline_hub: Hub) -> None:
    raw = sealed(offline_hub).raw
    for position in range(len(raw)):
        for bit in range(8):
            tampered = bytearray(raw)
            tampered[position] ^= 1 << bit
            with pytest.raises(EnvelopeError):
                opened(offline_hub, bytes(tampered))


def test_truncated_and_garbage_input_is_malformed(offline_hub: Hub) -> None:
    raw = sealed(offline_hub).raw
    for bad in (b"", b"\xc3\x01", raw[:40], raw[:-1], raw + b"\x00", b"garbage" * 20):
        with pytest.raises((MalformedEnvelope, SignatureInvalid)):
            opened(offline_hub, bad)


def test_an_unknown_envelope_version_is_named(offline_hub: Hub) -> None:
    raw = sealed(offline_hub).raw
    with pytest.raises(UnsupportedEnvelopeVersion):
        parse(raw[:2] + b"\x00" * 8 + raw[10:])


def test_an_event_on_another_datasets_topic_is_refused(offline_hub: Hub) -> None:
    with pytest.raises(DatasetMismatch):
        opened(offline_hub, sealed(offline_hub).raw, dataset="documents")


def test_a_validly_signed_event_by_a_non_owner_is_refused(offline_hub: Hub) -> None:
    with pytest.raises(NotOwner, match="'go' signed an event of 'party-members'"):
        opened(offline_hub, sealed(offline_hub, producer="go").raw)


def test_a_forged_signature_is_refused(offline_hub: Hub) -> None:
    forged_key = SigningKey("coc/custody/1", Ed25519PrivateKey.generate())  # coc is in custody
    with pytest.raises(SignatureInvalid):
        opened(offline_hub, sealed(offline_hub, signing_key=forged_key).raw)


def test_an_unknown_signing_key_is_refused(offline_hub: Hub) -> None:
    stranger = SigningKey("coc/sign/99", Ed25519PrivateKey.generate())
    with pytest.raises(UnknownSigner, match="no signing key 'coc/sign/99'"):
        opened(offline_hub, sealed(offline_hub, signing_key=stranger).raw)


def test_an_event_signed_before_the_key_was_valid_is_refused(offline_hub: Hub) -> None:
    early = dt.datetime(2019, 12, 31, tzinfo=dt.UTC)
    with pytest.raises(UnknownSigner, match="was not valid"):
        opened(offline_hub, sealed(offline_hub, occurred_at=early).raw)


def test_an_unknown_data_key_is_refused(offline_hub: Hub) -> None:
    key_id = offline_hub.keys.current_data_key_id(DATASET)
    envelope = sealed(
        offline_hub, data_key_id="party-members/data/404", data_key=offline_hub.keys.data_key(key_id)
    )
    with pytest.raises(UnknownDataKey):
        opened(offline_hub, envelope.raw)


def test_the_wrong_data_key_fails_decryption(offline_hub: Hub) -> None:
    offline_hub.keys.create_data_key("other", "other/data/1")
    envelope = sealed(offline_hub, data_key=offline_hub.keys.data_key("other/data/1"))
    with pytest.raises(DecryptionFailed):
        opened(offline_hub, envelope.raw)


def test_an_oversized_envelope_is_refused_before_parsing(offline_hub: Hub) -> None:
    with pytest.raises(MalformedEnvelope, match="limit"):
        parse(b"\xc3\x01" + b"\x00" * (1024 * 1024 + 1))


def test_each_event_hash_chains_to_the_previous(offline_hub: Hub) -> None:
    first = sealed(offline_hub)
    second = sealed(offline_hub, position=ChainPosition(0, 2, first.hash))
    assert parse(second.raw).header.prev_hash == first.hash
    assert parse(second.raw).header.sequence == 2


def unsigned_batch(
    hub: Hub, count: int, event_type: str = "UPSERTED", occurred_at: dt.datetime | None = None
) -> list[Any]:
    """``count`` members sealed by coc in lane 0, chained, not yet signed."""
    from sharehub.envelope import seal_unsigned

    schema = hub.governance.current_schema(DATASET)
    key_id = hub.keys.current_data_key_id(DATASET)
    signing = hub.keys.signing_key("coc")
    prev, unsigned = ZERO_HASH, []
    for i in range(1, count + 1):
        datum = record_from_json(schema, member(member_id=f"PM{i:010d}"))
        subject = subject_of(hub, datum["member_id"])
        event = seal_unsigned(
            schema=schema,
            record=None if event_type == "ERASED" else datum,
            producer="coc",
            dataset=DATASET,
            event_type=event_type,
            position=ChainPosition(0, i, prev),
            signing_key_id=signing.key_id,
            data_key_id=key_id,
            data_key=hub.keys.data_key(key_id),
            subject_key_id=subject,
            subject_key=hub.keys.subject_key(subject),
            occurred_at=occurred_at,
        )
        prev = event.hash
        unsigned.append(event)
    return unsigned


def test_one_signature_covers_a_batch_and_each_event_still_verifies_alone(offline_hub: Hub) -> None:
    from sharehub.envelope import VerifiedRoots, sign_batch

    unsigned, signing = unsigned_batch(offline_hub, 5), offline_hub.keys.signing_key("coc")
    batch = sign_batch(unsigned, signing)
    assert len({e.signature for e in batch}) == 1 and {e.batch_size for e in batch} == {5}
    for i, envelope in enumerate(batch, start=1):  # an auditor holding one event alone can check it
        verify(parse(envelope.raw), offline_hub.governance)
        assert opened(offline_hub, envelope.raw).record["member_id"] == f"PM{i:010d}"
    swapped = parse(batch[0].raw[: batch[0].body_end] + batch[1].raw[batch[1].body_end :])
    with pytest.raises(SignatureInvalid):  # another event's place in the tree proves nothing for this one
        verify(swapped, offline_hub.governance)
    roots = VerifiedRoots()
    for envelope in batch:
        verify(parse(envelope.raw), offline_hub.governance, roots)
    assert len(roots) == 1  # the root was verified once for the whole batch


@pytest.mark.parametrize(
    "occurred_at",
    [
        None,
        dt.datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7))),
        dt.datetime(2026, 12, 6, 2, 30, 15, 654321),  # naive: UTC, as Avro's timestamp-micros reads it
    ],
)
@pytest.mark.parametrize("event_type", ["UPSERTED", "ERASED"])
def test_signing_gives_each_envelope_exactly_as_parsing_its_bytes_reads_it(
    offline_hub: Hub, occurred_at: dt.datetime | None, event_type: str
) -> None:
    """sign_batch builds the envelopes from what it sealed instead of parsing its own output: every field,
    times included, must be what a reader of the bytes gets."""
    from sharehub.envelope import sign_batch

    unsigned = unsigned_batch(offline_hub, 3, event_type, occurred_at)
    signing = offline_hub.keys.signing_key("coc")
    for envelope in sign_batch(unsigned, signing):
        read = parse(envelope.raw)
        assert read == envelope
        assert read.header.occurred_at.utcoffset() == envelope.header.occurred_at.utcoffset()


@pytest.mark.parametrize(
    ("index", "size", "path"), [(0, 1, []), (3, 5, [b"\x01" * 32] * 3), (200, 256, [b"\x02" * 32] * 8)]
)
def test_the_hand_written_proof_encoding_is_avro(index: int, size: int, path: list[bytes]) -> None:
    from sharehub.envelope import _PROOF_SCHEMA, _encode_proof

    expected = _PROOF_SCHEMA.encode({"batch_index": index, "batch_size": size, "batch_path": path})
    assert _encode_proof(index, size, path) == expected


@given(st.integers(-(2**63), 2**63 - 1) | st.integers(-10, 5000))
def test_the_proofs_varints_are_avros_encoding_of_a_long(n: int) -> None:
    """The parser checks each proof is in canonical Avro encoding by encoding it again: the varints it
    builds (from a table for small values) must be exactly the ones Avro writes."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "long", n)
    assert envelope_module._varint(n) == out.getvalue()
    if n >= 0:
        value = bytes(n % 300)
        assert envelope_module._avro_bytes_size(value) == len(envelope_module._avro_bytes(value))


_TEXT = st.text(max_size=80)
_HEADERS = st.fixed_dictionaries(
    {
        "producer": _TEXT,
        "dataset": _TEXT,
        "event_type": st.sampled_from(envelope_module.EVENT_TYPES),
        "event_id": _TEXT,
        "occurred_at": st.datetimes(
            min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()
        ),
        "lane": st.integers(0, 2**31 - 1),
        "sequence": st.integers(1, 2**63 - 1),
        "prev_hash": st.binary(min_size=32, max_size=32),
        "signing_key_id": _TEXT,
        "data_key_id": _TEXT,
        "subject_key_id": _TEXT,
    }
)


@settings(max_examples=50)
@given(fields=_HEADERS)
def test_the_header_laid_out_per_chunk_is_what_avro_writes_for_it(fields: dict[str, Any]) -> None:
    """The sealer writes each header from pieces made once per chunk (the fixed fields) and the event's own
    fields; the bytes must be exactly Avro's encoding of the header record, so that every reader, signature
    and audit sees the same envelope as before."""
    from sharehub.envelope import _HEADER_SCHEMA, _PREFIX, EventSealer
    from sharehub.keys import SecretBytes

    schema = envelope_module.load_schema("envelope")  # any schema: only its fingerprint is in the header
    sealer = EventSealer(
        schema=schema, producer=fields["producer"], dataset=fields["dataset"],
        event_type=fields["event_type"], signing_key_id=fields["signing_key_id"],
        data_key_id=fields["data_key_id"], data_key=SecretBytes(bytes(32)), expected=2,
    )  # fmt: skip
    position = ChainPosition(fields["lane"], fields["sequence"], fields["prev_hash"])
    header = sealer._header(
        None, position, fields["subject_key_id"], fields["event_id"] or None, fields["occurred_at"]
    )
    assert header.event_id == (fields["event_id"] or header.event_id)
    expected = _PREFIX + _HEADER_SCHEMA.encode(header._asdict())
    assert sealer._header_bytes(header) == expected
    assert _HEADER_SCHEMA.decode(expected[len(_PREFIX) :]) == header._asdict()


@given(st.binary(min_size=16, max_size=16))
def test_event_ids_are_random_uuids_as_uuid4_writes_them(random16: bytes) -> None:
    import uuid

    from sharehub.envelope import uuid4_text

    assert uuid4_text(random16) == str(uuid.UUID(bytes=random16, version=4))


def test_events_sealed_in_one_chunk_draw_their_own_ids_and_nonces(offline_hub: Hub) -> None:
    """Randomness is drawn for many events at once: no two events share an id or a nonce, and a chunk
    longer than what was drawn draws again."""
    unsigned = unsigned_batch(offline_hub, 7)
    schema = offline_hub.governance.current_schema(DATASET)
    from sharehub.envelope import EventSealer

    key_id = offline_hub.keys.current_data_key_id(DATASET)
    sealer = EventSealer(
        schema=schema, producer="coc", dataset=DATASET, event_type="UPSERTED", signing_key_id="k",
        data_key_id=key_id, data_key=offline_hub.keys.data_key(key_id), expected=2,
    )  # fmt: skip
    datum = record_from_json(schema, member(member_id="PM0000000001"))
    subject = subject_of(offline_hub, "PM0000000001")
    more = [
        sealer.seal(datum, ChainPosition(0, i, ZERO_HASH), subject, offline_hub.keys.subject_key(subject))
        for i in range(1, 6)
    ]
    headers = [e.header for e in unsigned + more]
    assert len({h.event_id for h in headers}) == len(headers)
    nonces = [h.nonce for h in headers] + [h.personal_nonce for h in headers]
    assert len(set(nonces)) == len(nonces)
