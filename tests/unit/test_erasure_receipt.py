"""An erasure is requested by its owner's own signature: the ERASED event on the dataset's log is signed by a
key of the owner (as every event of the dataset must be, R1), and the operator's receipt names that key,
which verify_receipt checks is the owner's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.erasure import verify_receipt
from sharehub.errors import SignatureInvalid
from sharehub.gov.service import GovernanceService
from tests.gov_support import T0, Clock, party_key_id, public_hex, seeded


@pytest.fixture
def svc() -> GovernanceService:
    service = seeded(Clock())
    service.add_key("cpo", "cpo", service.signing_key.key_id, public_hex(service.signing_key))
    return service


def receipt(svc: GovernanceService, requested_with: str | None) -> dict[str, Any]:
    """A receipt as erase_subject makes it, signed by the operator, naming the ERASED event's key."""
    event: dict[str, Any] = {"topic": "sharehub.coc.party-members", "lane": 0, "sequence": 8, "event_id": "e"}
    if requested_with is not None:
        event["signer_key_id"] = requested_with
    body = {
        "receipt": "sharehub.erasure.v1", "dataset": "party-members", "subject_ref": "r",
        "requested_by": "coc", "approved_by": "cpo", "erased_at": T0.isoformat(), "event": event,
    }  # fmt: skip
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    key = svc.signing_key
    return {**body, "signer_key_id": key.key_id, "signature": key.sign(signed).hex()}


def test_a_receipt_of_an_erasure_the_owner_signed_verifies(svc: GovernanceService) -> None:
    verify_receipt(receipt(svc, party_key_id("coc")), svc.state)
    verify_receipt(receipt(svc, None), svc.state)  # a receipt from before receipts named the key


def test_a_receipt_of_an_erasure_signed_by_another_agency_is_refused(svc: GovernanceService) -> None:
    with pytest.raises(SignatureInvalid, match="not requested with a key of 'coc'"):
        verify_receipt(receipt(svc, party_key_id("go")), svc.state)


def test_a_receipt_altered_after_the_operator_signed_it_is_refused(svc: GovernanceService) -> None:
    altered = {**receipt(svc, party_key_id("coc")), "requested_by": "go"}
    with pytest.raises(SignatureInvalid):
        verify_receipt(altered, svc.state)
