"""Data-key epochs and crypto-shredding, at the envelope and projection level (real SQLite, no broker)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from projections.projector import LogMessage
from services.hub import Hub
from sharehub.avro import split_single_object
from sharehub.envelope import ChainPosition, authenticate, open_envelope, parse, pseudonym, seal
from sharehub.errors import SubjectErased, UnknownDataKey
from sharehub.keys import subject_key_id
from tests.unit.test_avro import member
from tests.unit.test_envelope import DATASET, opened, sealed, subject_of
from tests.unit.test_projector import apply, messages, projector


def test_rotation_starts_a_new_epoch_and_old_events_stay_readable(offline_hub: Hub) -> None:
    keys = offline_hub.keys
    before = sealed(offline_hub)
    first_epoch = keys.current_data_key_id(DATASET)
    new_epoch = keys.rotate_data_key(DATASET)
    assert (first_epoch, new_epoch) == ("party-members/data/1", "party-members/data/2")
    assert keys.current_data_key_id(DATASET) == new_epoch
    after = sealed(offline_hub, data_key_id=new_epoch, data_key=keys.data_key(new_epoch))
    assert parse(after.raw).header.data_key_id == new_epoch
    assert opened(offline_hub, before.raw).record == opened(offline_hub, after.raw).record
    assert keys.rotate_data_key(DATASET) == "party-members/data/3"


def test_personal_fields_are_not_under_the_dataset_key(offline_hub: Hub) -> None:
    envelope = parse(sealed(offline_hub).raw)
    header = envelope.header
    dataset_key = offline_hub.keys.data_key(header.data_key_id).reveal()
    shared = AESGCM(dataset_key).decrypt(
        header.nonce, envelope.ciphertext, envelope.raw[: envelope.header_end]
    )
    schema = offline_hub.governance.current_schema(DATASET)
    _, body = split_single_object(shared)
    fields = schema.shared_part.decode(body)
    assert set(schema.personal_fields) == {"full_name", "date_of_birth", "national_id", "phone"}
    assert not set(fields) & set(schema.personal_fields)
    assert fields["status"] == "OFFICIAL"


def test_subject_keys_are_created_once_and_never_resurrected(offline_hub: Hub) -> None:
    keys = offline_hub.keys
    key_id = subject_of(offline_hub, "PM0000000001")
    key = keys.subject_key(key_id).reveal()
    subject_of(offline_hub, "PM0000000001")
    assert keys.subject_key(key_id).reveal() == key  # ensuring again keeps the key
    assert keys.destroy_subject_key(key_id).destroyed
    assert not keys.destroy_subject_key(key_id).destroyed
    subject_of(offline_hub, "PM0000000001")  # a tombstone is not replaced by a new key
    with pytest.raises(SubjectErased):
        keys.subject_key(key_id)
    with pytest.raises(UnknownDataKey):
        keys.subject_key(subject_key_id(DATASET, b"\x00" * 16))


def test_an_erased_subject_stays_verifiable_but_unreadable(offline_hub: Hub) -> None:
    raw = sealed(offline_hub).raw
    offline_hub.keys.destroy_subject_key(subject_of(offline_hub, "PM0000000001"))
    envelope = parse(raw)
    authenticate(envelope, topic_dataset=DATASET, signers=offline_hub.governance)  # signature still good
    with pytest.raises(SubjectErased):
        opened(offline_hub, raw)


def test_an_erased_event_purges_the_subject_from_every_read_model(offline_hub: Hub) -> None:
    p = projector(offline_hub)
    batch = messages(offline_hub, [member(), member(member_id="PM0000000002")])
    apply(p, batch)
    ref = pseudonym(offline_hub.keys.routing_key(DATASET), "PM0000000001")
    schema = offline_hub.governance.current_schema(DATASET)
    key_id = offline_hub.keys.current_data_key_id(DATASET)
    last = parse(batch[-1].value)
    erased = seal(
        schema=schema,
        record=None,
        producer="coc",
        dataset=DATASET,
        event_type="ERASED",
        position=ChainPosition(0, 3, last.hash),
        signing_key=offline_hub.keys.signing_key("coc"),
        data_key_id=key_id,
        data_key=offline_hub.keys.data_key(key_id),
        subject_key_id=subject_key_id(DATASET, ref),
    )
    assert (
        open_envelope(
            erased.raw, topic_dataset=DATASET, signers=offline_hub.governance, keys=offline_hub.keys
        ).record
        is None
    )
    apply(p, [LogMessage(batch[0].topic, 0, 2, None, erased.raw)])
    for consumer in ("dongthap-ppc", "langson-ppc"):
        assert offline_hub.store(consumer).get(DATASET, "PM0000000001") is None
        assert offline_hub.store(consumer).get(DATASET, "PM0000000002") is not None


def test_a_rebuild_after_erasure_never_brings_the_subject_back(offline_hub: Hub) -> None:
    batch = messages(offline_hub, [member(), member(member_id="PM0000000002"), member(status="EXPELLED")])
    offline_hub.keys.destroy_subject_key(subject_of(offline_hub, "PM0000000001"))
    decision = apply(projector(offline_hub), batch)  # a fresh read model replaying the whole log
    assert not decision.quarantined  # erasure is not an integrity failure
    store = offline_hub.store("dongthap-ppc")
    assert store.get(DATASET, "PM0000000001") is None
    assert store.get(DATASET, "PM0000000002") is not None
    assert store.positions()[(batch[0].topic, 0)] == 3


def test_records_of_erased_subjects_are_sealed_without_their_key(offline_hub: Hub) -> None:
    key_id = subject_of(offline_hub, "PM0000000001")
    offline_hub.keys.destroy_subject_key(key_id)
    with pytest.raises(SubjectErased):
        sealed(offline_hub)  # the publisher reports such a line instead of publishing it
