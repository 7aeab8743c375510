"""A corpus of malformed envelopes: each is refused with its own error from one hierarchy, never a crash.

Several entries are *correctly signed* by the owner but broken inside (the owner's software at fault), so
that each error is reached for its own reason and not because a signature happened to fail first.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.projector import LogMessage, Projector, parsed
from projections.read_model import ReadModelStore
from services.hub import Hub
from sharehub import errors, merkle
from sharehub.avro import SINGLE_OBJECT_MARKER
from sharehub.envelope import ENVELOPE_SCHEMA, SIGNATURE_SIZE, open_envelope, parse
from sharehub.keys import SigningKey
from tests.unit.test_avro import dates, member, names
from tests.unit.test_envelope import DATASET, opened, sealed
from tests.unit.test_projector import apply, messages, projector


def resigned(hub: Hub, raw: bytes, change: Callable[[dict[str, Any]], None], signer: str = "coc") -> bytes:
    """``raw`` with its fields changed, then signed again by ``signer`` as a batch of one: well-formed,
    honestly signed. Built by hand, so it also spells out the wire format."""
    fields = ENVELOPE_SCHEMA.decode(raw[10:])
    change(fields)
    fields.update(batch_index=0, batch_size=1, batch_path=[], signature=bytes(SIGNATURE_SIZE))
    encoded = SINGLE_OBJECT_MARKER + ENVELOPE_SCHEMA.fingerprint + ENVELOPE_SCHEMA.encode(fields)
    body = encoded[: -(SIGNATURE_SIZE + 3)]  # index 0, size 1 and an empty path take one byte each
    message = b"sharehub-batch-v1" + (1).to_bytes(4, "big") + merkle.leaf_hash(body)  # the root of one leaf
    key: SigningKey = hub.keys.signing_key(signer)
    return body + b"\x00\x02\x00" + key.sign(message)


def corpus(hub: Hub) -> dict[str, tuple[bytes, type[errors.EnvelopeError]]]:
    raw = sealed(hub).raw
    return {
        "garbage bytes": (b"\x00\xff garbage \x13\x37" * 7, errors.MalformedEnvelope),
        "empty": (b"", errors.MalformedEnvelope),
        "truncated message": (raw[:-10], errors.MalformedEnvelope),
        "trailing bytes": (raw + b"\x00", errors.MalformedEnvelope),
        "oversized": (raw[:10] + b"\x00" * (1024 * 1024), errors.MalformedEnvelope),
        "unknown envelope version": (raw[:2] + b"\x01" * 8 + raw[10:], errors.UnsupportedEnvelopeVersion),
        "signed by another agency's key": (
            resigned(hub, raw, lambda f: None, signer="go"),
            errors.SignatureInvalid,
        ),
        "unknown signing key id": (
            resigned(hub, raw, lambda f: f.update(signer_key_id="coc/sign/404")),
            errors.UnknownSigner,
        ),
        "not the owner": (
            resigned(hub, raw, lambda f: f.update(producer="go", signer_key_id="go/custody/1"), signer="go"),
            errors.NotOwner,
        ),
        "wrong data key id": (
            resigned(hub, raw, lambda f: f.update(data_key_id="party-members/data/404")),
            errors.UnknownDataKey,
        ),
        "truncated ciphertext": (
            resigned(hub, raw, lambda f: f.update(ciphertext=f["ciphertext"][:-1])),
            errors.DecryptionFailed,
        ),
        "personal ciphertext missing": (
            resigned(hub, raw, lambda f: f.update(personal_ciphertext=b"")),
            errors.DecryptionFailed,
        ),
        "unknown schema fingerprint": (
            resigned(hub, raw, lambda f: f.update(schema_fingerprint=b"\x00" * 8)),
            errors.UnknownSchema,
        ),
        "ciphertext swapped from another event": (
            resigned(hub, raw, lambda f: f.update(ciphertext=parse(sealed(hub).raw).ciphertext)),
            errors.DecryptionFailed,
        ),
    }


def test_every_malformed_envelope_has_its_own_error(offline_hub: Hub) -> None:
    for name, (raw, expected) in corpus(offline_hub).items():
        with pytest.raises(errors.EnvelopeError) as caught:
            opened(offline_hub, raw)
        assert type(caught.value) is expected, f"{name}: {type(caught.value).__name__}: {caught.value}"
        assert caught.value.reason == expected.reason


@pytest.mark.parametrize("parsed_by", ["projector", "worker"])
def test_the_projection_quarantines_the_whole_corpus_and_crashes_on_none(
    offline_hub: Hub, tmp_path: Path, parsed_by: str
) -> None:
    topic = offline_hub.governance.dataset(DATASET).topic
    for i, (name, (raw, expected)) in enumerate(corpus(offline_hub).items()):
        # The worker parses before the batch crosses the pipe to the engine: errors cross it too.
        envelope = pickle.loads(pickle.dumps(parsed(raw))) if parsed_by == "worker" else None
        # A fresh read model each: correctly signed entries all claim sequence 1, and a second one would
        # (rightly) be refused as a replay before its own fault is reached.
        stores = {"langson-ppc": ReadModelStore(f"sqlite:///{tmp_path}/{i}-{{consumer}}.db", "langson-ppc")}
        stores["langson-ppc"].create()
        p = Projector(offline_hub.governance, offline_hub.keys, stores)
        decision = apply(p, [LogMessage(topic, 0, 0, None, raw, envelope)])
        assert [q.reason for q in decision.quarantined] == [expected.reason], name
        assert decision.applied() == 0
        stores["langson-ppc"].close()


def test_a_replayed_sequence_is_refused_by_the_projection(offline_hub: Hub) -> None:
    first, second = messages(offline_hub, [member(), member(member_id="PM0000000002")])
    replay = LogMessage(first.topic, 0, 2, None, first.value)
    assert [q.reason for q in apply(projector(offline_hub), [first, second, replay]).quarantined] == [
        "replayed_sequence"
    ]


records = st.builds(
    lambda name, born, status, phone: member(
        full_name=name, date_of_birth=born.isoformat(), status=status, phone=phone
    ),
    names,
    dates,
    st.sampled_from(["PROBATIONARY", "OFFICIAL", "EXPELLED"]),
    st.none() | st.from_regex(r"0[35789][0-9]{8}", fullmatch=True),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records)
def test_any_record_survives_the_round_trip(offline_hub: Hub, record: dict[str, Any]) -> None:
    event = opened(offline_hub, sealed(offline_hub, record=record).raw)
    assert event.record is not None
    assert event.record["full_name"] == record["full_name"]
    assert event.record["phone"] == record["phone"]
    assert event.record["date_of_birth"].isoformat() == record["date_of_birth"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records, data=st.data())
def test_any_single_bit_flip_of_any_envelope_is_detected(
    offline_hub: Hub, record: dict[str, Any], data: Any
) -> None:
    raw = bytearray(sealed(offline_hub, record=record).raw)
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(errors.EnvelopeError):
        open_envelope(
            bytes(raw), topic_dataset=DATASET, signers=offline_hub.governance, keys=offline_hub.keys
        )
