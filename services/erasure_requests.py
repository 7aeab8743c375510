"""Erasure requests awaiting the operator's approval: the owner of a dataset asks for a subject's erasure, the
operator approves it (then :func:`services.erasure.erase_subject` erases, exactly as ``sharehub gov erase``)
or declines it.

A request names the dataset, the record's key, the requesting owner, when and why. It is kept, owner-only,
in ``<home>/erasures/pending/<id>.json`` until it is decided, and no longer. The record key is personal data:
the file holds it sealed (AES-256-GCM under the dataset's current data key from the hub's key store, bound
to the request's id and dataset), so neither the file nor the disk blocks it leaves behind hold it in clear,
and it stays in no log (the access log names the record by its pseudonym). Deciding a request first takes its
file away (a rename, which only one of two deciders at once wins), so a request is approved or declined once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharehub.errors import InputError, UnknownReferenceError
from sharehub.keys import SecretBytes, write_private

#: A record key, as the console takes it.
MAX_KEY_CHARS = 200
_ID_CHARS = 16
_NONCE_BYTES = 12


@dataclass(frozen=True)
class ErasureRequest:
    id: str
    dataset: str
    record_key: str
    requested_by: str
    reason: str
    requested_at: str


class DataKeys(Protocol):
    """The hub's data keys (:class:`sharehub.keys.LocalKeyStore`)."""

    def current_data_key_id(self, dataset: str) -> str: ...

    def data_key(self, key_id: str) -> SecretBytes: ...


class ErasureRequests:
    """The pending requests of the hub whose home is ``home``, record keys sealed under ``keys``."""

    def __init__(self, home: Path, keys: DataKeys) -> None:
        self.folder = home / "erasures" / "pending"
        self._keys = keys

    def add(self, dataset: str, record_key: str, requested_by: str, reason: str) -> ErasureRequest:
        if not record_key.strip() or len(record_key) > MAX_KEY_CHARS:
            raise InputError(f"the record's key: 1 to {MAX_KEY_CHARS} characters")
        if not reason.strip():
            raise InputError("an erasure request needs its reason")
        request = ErasureRequest(
            id=secrets.token_hex(_ID_CHARS // 2),
            dataset=dataset,
            record_key=record_key.strip(),
            requested_by=requested_by,
            reason=reason.strip(),
            requested_at=dt.datetime.now(dt.UTC).isoformat(),
        )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self._path(request.id), json.dumps(self._sealed(request)).encode())
        return request

    def withdraw(self, request_id: str) -> None:
        """Drop a request just made (its record could not be written)."""
        self._path(request_id).unlink(missing_ok=True)

    def pending(self) -> list[ErasureRequest]:
        """Every pending request, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [self._read(p) for p in self.folder.glob("*.json")]
        return sorted(found, key=lambda r: r.requested_at)

    @contextmanager
    def deciding(self, request_id: str) -> Iterator[ErasureRequest]:
        """The request, taken away from the pending ones while it is decided: gone once the block ends, back
        if the block raises. UnknownReferenceError if it is not pending (decided already, or never made)."""
        if len(request_id) != _ID_CHARS or not all(c in "0123456789abcdef" for c in request_id):
            raise UnknownReferenceError(f"no pending erasure request {request_id!r}")
        path, taken = self._path(request_id), self.folder / f"{request_id}.deciding"
        try:
            os.rename(path, taken)
        except FileNotFoundError:
            raise UnknownReferenceError(f"no pending erasure request {request_id!r}") from None
        try:
            yield self._read(taken)
        except BaseException:
            os.rename(taken, path)
            raise
        taken.unlink()

    def _path(self, request_id: str) -> Path:
        return self.folder / f"{request_id}.json"

    def _sealed(self, request: ErasureRequest) -> dict[str, str]:
        key_id = self._keys.current_data_key_id(request.dataset)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._keys.data_key(key_id).reveal()).encrypt(
            nonce, request.record_key.encode(), _bound_to(request.id, request.dataset)
        )
        kept = {k: v for k, v in asdict(request).items() if k != "record_key"}
        return {**kept, "data_key_id": key_id, "record_key_sealed": (nonce + sealed).hex()}

    def _read(self, path: Path) -> ErasureRequest:
        kept = json.loads(path.read_bytes())
        sealed = bytes.fromhex(kept.pop("record_key_sealed"))
        key = self._keys.data_key(kept.pop("data_key_id"))
        opened = AESGCM(key.reveal()).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _bound_to(kept["id"], kept["dataset"])
        )
        return ErasureRequest(**kept, record_key=opened.decode())


def _bound_to(request_id: str, dataset: str) -> bytes:
    return f"sharehub erasure request\x00{request_id}\x00{dataset}".encode()
