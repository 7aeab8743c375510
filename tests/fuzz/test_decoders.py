"""Hostile input at length: the decoders of what arrives from outside — dataset envelopes (structure, then
signature, decryption and the Avro payload), governance events, checkpoints (of dataset and access-log
lanes), quarantine records and row filters — given mutated and random input, answer with a value or with
their own error from :mod:`sharehub.errors`, never another exception, and in bounded time.

Inputs are mostly mutations of valid values (bytes flipped, cut, inserted, repeated), some of them signed
again by the owner so that the checks past the signature are reached. ``SHAREHUB_FUZZ_EXAMPLES`` inputs per
decoder (``make test``: a bounded run; ``make fuzz``: 1,000,000 each). A failing input hypothesis finds is
kept in ``tests/fuzz/regressions/`` and tried first in every later run.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from projections.quarantine import quarantine_entry
from services.governance_bootstrap import load
from services.hub import Hub
from sharehub import errors, merkle
from sharehub.access_records import open_lane_checkpoint, seal_lane_checkpoint
from sharehub.avro import load_schema
from sharehub.chain import ChainHead
from sharehub.checkpoints import open_checkpoint, seal_checkpoint
from sharehub.envelope import SIGNATURE_SIZE, open_envelope
from sharehub.gov import events
from sharehub.gov.log import MemoryLog
from sharehub.gov.verify import operator_key
from sharehub.kafka import Record
from sharehub.row_filter import compile_filter
from sharehub.settings import Settings
from tests.conftest import demo_spec
from tests.unit.test_envelope import DATASET, sealed
from tests.unit.test_malformed_envelopes import resigned

EXAMPLES = int(os.environ.get("SHAREHUB_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=DirectoryBasedExampleDatabase(str(Path(__file__).parent / "regressions")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    settings_ = Settings(
        home=tmp_path_factory.mktemp("fuzz") / "home",
        kafka_bootstrap="127.0.0.1:9",
        master_key=None,
        read_model_url=None,
    )
    made = Hub(settings_, log=MemoryLog())
    load(made.governance_desk(), demo_spec(), topics=False)
    yield made
    made.close()


@pytest.fixture(scope="module")
def samples(hub: Hub) -> dict[str, bytes]:
    log = hub.log
    assert isinstance(log, MemoryLog)
    return {
        "envelope": sealed(hub).raw,
        "signed envelope": resigned(hub, sealed(hub).raw, lambda _fields: None),
        "governance event": log.events[-1],
        "checkpoint": seal_checkpoint(
            hub.keys.signing_key("coc"), "coc", DATASET, 0, ChainHead(sequence=3, hash=bytes(32))
        ),
        "lane checkpoint": seal_lane_checkpoint(
            _operator(hub), hub.governance.operator, "api-0123456789ab", ChainHead(3, bytes(32))
        ),
    }


def _operator(hub: Hub) -> Any:
    return hub.keys.signing_key(hub.governance.operator)


def _mutated(data: st.DataObject, value: bytes) -> bytes:
    """``value`` after a few random edits: a bit flipped, a run cut out, bytes inserted, a slice repeated,
    the end cut off; or, now and then, random bytes alone."""
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(st.binary(max_size=512))
    out = bytearray(value)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(len(out) - 1, 0)))
        edit = data.draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate"]))
        if edit == "flip" and out:
            out[at] ^= 1 << data.draw(st.integers(0, 7))
        elif edit == "cut":
            del out[at : at + data.draw(st.integers(1, 16))]
        elif edit == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        elif edit == "repeat":
            out[at:at] = out[at : at + data.draw(st.integers(1, 64))]
        else:
            del out[at:]
    return bytes(out)


def _signed_again(hub: Hub, body: bytes) -> bytes:
    """``body`` signed by the owner as a batch of one (see ``resigned``): it passes the signature, so what
    comes after it (the header's sense, decryption, the payload's Avro) is what decides."""
    message = b"sharehub-batch-v1" + (1).to_bytes(4, "big") + merkle.leaf_hash(body)
    return body + b"\x00\x02\x00" + hub.keys.signing_key("coc").sign(message)


@FUZZ
@given(data=st.data())
def test_dataset_envelopes(hub: Hub, samples: dict[str, bytes], data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        raw = _mutated(data, samples["envelope"])
    else:
        body = samples["signed envelope"][: -(SIGNATURE_SIZE + 3)]
        raw = _signed_again(hub, _mutated(data, body))
    with contextlib.suppress(errors.EnvelopeError):
        open_envelope(raw, topic_dataset=DATASET, signers=hub.governance, keys=hub.keys)


@FUZZ
@given(data=st.data())
def test_governance_events(samples: dict[str, bytes], data: st.DataObject) -> None:
    with contextlib.suppress(errors.MalformedEnvelope):
        events.parse(_mutated(data, samples["governance event"]))


@FUZZ
@given(data=st.data())
def test_checkpoints(hub: Hub, samples: dict[str, bytes], data: st.DataObject) -> None:
    with contextlib.suppress(errors.EnvelopeError):
        open_checkpoint(_mutated(data, samples["checkpoint"]), hub.governance)


@FUZZ
@given(data=st.data())
def test_access_lane_checkpoints(hub: Hub, samples: dict[str, bytes], data: st.DataObject) -> None:
    raw = _mutated(data, samples["lane checkpoint"])
    if data.draw(st.booleans()):  # signed again by the operator: what comes after the signature decides
        body = raw[:-SIGNATURE_SIZE]
        raw = body + _operator(hub).sign(body)
    state = hub.governance
    with contextlib.suppress(errors.EnvelopeError):
        open_lane_checkpoint(raw, functools.partial(operator_key, state, state.trust))


@FUZZ
@given(data=st.data())
def test_quarantine_records(samples: dict[str, bytes], data: st.DataObject) -> None:
    entry: dict[str, Any] = quarantine_entry(Record("q", 0, 7, None, _mutated(data, samples["envelope"]), 0))
    assert {"source_topic", "reason", "detail", "original_value"} <= entry.keys()


FILTER_WORDS = ["province_code", "gender", "status", "==", "!=", "<", ">=", "in", "not", "and", "or", "(",
                ")", "[", "]", ",", "'75'", "'FEMALE'", "1", "null", "true", "'", "\\", "admission_date",
                "'2020-01-01'"]  # fmt: skip


@FUZZ
@given(text=st.text(max_size=200) | st.lists(st.sampled_from(FILTER_WORDS), max_size=24).map(" ".join))
def test_row_filters(text: str) -> None:
    with contextlib.suppress(errors.RowFilterError):
        compile_filter(text, PARTY_MEMBERS)


PARTY_MEMBERS = load_schema("party-members")
