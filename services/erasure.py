"""Erasure of a data subject by crypto-shredding, and its signed receipt.

The owner requests, central governance approves (a different agency: the hub's operator). Then:

1. the owner's ERASED event goes onto the dataset's log, so every read model purges the subject. That event
   is the owner's signed request: like every event of a dataset it is signed by a key of the owner (R1,
   checked by the projection and by ``sharehub audit verify``), at the owner's site or, for an owner in the
   hub's custody, with its custody key; the receipt names that key and :func:`verify_receipt` checks that
   it is the owner's;
2. the subject's key is destroyed, so no replay, rebuild or audit can ever read its personal fields again,
   while every signature and hash of the log still verifies. Its wrapped bytes are zeroed in the key store
   (``secure_delete``) and the store's write-ahead log, which held earlier copies, is emptied and truncated:
   a copy of the key store taken afterwards holds nothing to unwrap;
3. the operator signs a receipt saying what was erased, when, by whose request and approval, and what was
   done on disk.

Each read model purges the subject when the projection applies the ERASED event, zeroing the rows' bytes and
truncating its own write-ahead log on SQLite (see :mod:`projections.read_model`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from connectors.publisher import Publisher
from sharehub.errors import InputError, SignatureInvalid, UnknownSigner
from sharehub.gov.state import GovState
from sharehub.gov.views import GovernanceView
from sharehub.keys import LocalKeyStore


@dataclass(frozen=True)
class ErasureParts:
    """What an erasure takes: governance, the key store (the subject's key, the operator's signing key),
    a publisher of a dataset as an agency (``publisher(agency, dataset)``), and where receipts are kept."""

    governance: GovState
    keys: LocalKeyStore
    publisher: Callable[[str, str], Publisher]
    receipts: Path


def erase_subject(
    parts: ErasureParts, *, dataset: str, record_key: str, requested_by: str, approved_by: str
) -> dict[str, Any]:
    gov = parts.governance
    ds = gov.dataset(dataset)
    check_parties(gov, dataset, requested_by=requested_by, approved_by=approved_by)
    publisher = parts.publisher(ds.owner, dataset)
    event = publisher.erase(record_key)
    key_id = event.header.subject_key_id  # the subject's key, named by its pseudonym
    ref = key_id.rsplit("/", 1)[-1]
    keys = parts.keys
    shredded = keys.destroy_subject_key(key_id)
    body = {
        "receipt": "sharehub.erasure.v1",
        "dataset": dataset,
        "subject_ref": ref,
        "subject_key_id": key_id,
        "subject_key_destroyed": shredded.destroyed or _already_destroyed(keys, key_id),
        "key_store": {
            "wrapped_key_overwritten": shredded.overwritten,
            "write_ahead_log_truncated": shredded.log_truncated,
        },
        "requested_by": requested_by,
        "approved_by": approved_by,
        "erased_at": dt.datetime.now(dt.UTC).isoformat(),
        "event": {
            "topic": ds.topic,
            "lane": event.header.lane,
            "sequence": event.header.sequence,
            "event_id": event.header.event_id,
            "signer_key_id": event.header.signer_key_id,
        },
    }
    signer = keys.signing_key(approved_by)
    receipt = {**body, "signer_key_id": signer.key_id, "signature": signer.sign(_canonical(body)).hex()}
    parts.receipts.mkdir(parents=True, exist_ok=True)
    (parts.receipts / f"{event.header.event_id}.json").write_text(json.dumps(receipt, indent=1))
    return receipt


def check_parties(gov: GovState, dataset: str, *, requested_by: str, approved_by: str) -> None:
    """InputError unless the owner of ``dataset`` requests the erasure and the operator, another agency,
    approves it."""
    ds = gov.dataset(dataset)
    gov.agency(requested_by)
    gov.agency(approved_by)
    if requested_by != ds.owner:
        raise InputError(
            f"only {ds.owner!r}, the owner of {dataset!r}, may request an erasure, not {requested_by!r}"
        )
    if approved_by != gov.operator:
        raise InputError(f"erasures are approved centrally, by {gov.operator!r}, not by {approved_by!r}")
    if approved_by == requested_by:
        raise InputError("the agency that requests an erasure may not also approve it")


def verify_receipt(receipt: dict[str, Any], governance: GovernanceView) -> None:
    """SignatureInvalid unless the receipt is exactly what the approving operator signed, and the ERASED
    event it names was signed by a key of the owner that requested it (receipts from before they named the
    event's key are checked for the operator's signature only)."""
    body = {k: v for k, v in receipt.items() if k not in ("signature", "signer_key_id")}
    at = dt.datetime.fromisoformat(body["erased_at"])
    requested_with = body["event"].get("signer_key_id")
    if requested_with is not None:
        try:
            governance.signing_public_key(body["requested_by"], requested_with, at)
        except UnknownSigner as exc:
            raise SignatureInvalid(
                f"the erasure was not requested with a key of {body['requested_by']!r}: {exc}"
            ) from None
    public = governance.signing_public_key(body["approved_by"], receipt["signer_key_id"], at)
    try:
        public.verify(bytes.fromhex(receipt["signature"]), _canonical(body))
    except (InvalidSignature, ValueError):
        raise SignatureInvalid("the erasure receipt's signature does not verify") from None


def load_receipt(path: Path) -> dict[str, Any]:
    try:
        receipt: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable receipt ({exc})") from None
    return receipt


def _already_destroyed(keys: LocalKeyStore, key_id: str) -> bool:
    try:
        keys.subject_key(key_id)
    except Exception:  # SubjectErased (destroyed earlier) or UnknownDataKey (never had one)
        return True
    return False


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
