"""The checkpoint of an access-log lane: the dataset lanes' checkpoint form, signed by an operator key, naming
its API instance; anything else is refused with the reason the audit reports."""

from __future__ import annotations

import functools

import pytest

from services.hub import Hub
from sharehub.access_records import ACCESS_LANE, open_lane_checkpoint, seal_lane_checkpoint
from sharehub.chain import ChainHead
from sharehub.checkpoints import seal_checkpoint
from sharehub.errors import EnvelopeError
from sharehub.gov.verify import operator_key
from sharehub.keys import Signer

HEAD = ChainHead(7, bytes(range(32)))
INSTANCE = "api-0123456789ab"


def _opened(hub: Hub, raw: bytes) -> tuple[str, int, bytes, str]:
    state = hub.governance
    instance, checkpoint = open_lane_checkpoint(raw, functools.partial(operator_key, state, state.trust))
    return instance, checkpoint.sequence, checkpoint.head_hash, checkpoint.producer


def _operator(hub: Hub) -> Signer:
    return hub.keys.signing_key(hub.governance.operator)


def test_a_lane_checkpoint_opens_under_the_operator_key_and_names_its_instance(offline_hub: Hub) -> None:
    operator = offline_hub.governance.operator
    raw = seal_lane_checkpoint(_operator(offline_hub), operator, INSTANCE, HEAD)
    assert _opened(offline_hub, raw) == (INSTANCE, HEAD.sequence, HEAD.hash, operator)


def _flipped(raw: bytes) -> bytes:
    out = bytearray(raw)
    out[-1] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("another agency's key", "unknown_signer"),
        ("a changed byte", "bad_signature"),
        ("a dataset lane's checkpoint", "malformed"),
        ("no instance", "malformed"),
        ("another lane than 0", "malformed"),
        ("junk", "malformed"),
    ],
)
def test_what_is_not_an_operator_signed_lane_checkpoint_is_refused_with_its_reason(
    offline_hub: Hub, case: str, reason: str
) -> None:
    operator, signer = offline_hub.governance.operator, _operator(offline_hub)
    raw = {
        "another agency's key": lambda: seal_lane_checkpoint(
            offline_hub.keys.signing_key("coc"), "coc", INSTANCE, HEAD
        ),
        "a changed byte": lambda: _flipped(seal_lane_checkpoint(signer, operator, INSTANCE, HEAD)),
        "a dataset lane's checkpoint": lambda: seal_checkpoint(signer, operator, "documents", 0, HEAD),
        "no instance": lambda: seal_checkpoint(signer, operator, ACCESS_LANE, 0, HEAD),
        "another lane than 0": lambda: seal_checkpoint(signer, operator, ACCESS_LANE + INSTANCE, 1, HEAD),
        "junk": lambda: b"\x00 not a checkpoint \xff" * 4,
    }[case]()
    with pytest.raises(EnvelopeError) as refused:
        _opened(offline_hub, raw)
    assert refused.value.reason == reason
