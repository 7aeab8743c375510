"""The key service: an owner agency's site takes the keys it seals its datasets with from here.

Only a dataset's owner is answered, with the credential governance issued to it: the current data key and
the routing key (``GET /v1/keys/{dataset}``), an earlier epoch's data key, and its data subjects' keys in
batches (``POST /v1/keys/{dataset}/subjects``: created, durably, before the answer leaves, so no event is
ever sealed under a key the hub does not hold). Each release is first written to the access log (who, which
dataset, which keys by id; never a key's bytes), where ``sharehub audit access`` reads it, like every read.
The agency's SDK keeps what it received in memory only. A destroyed subject key is answered as ``null``.
"""

from __future__ import annotations

import base64
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from services.api.context import ApiContext, caller, context
from services.api.errors import RESPONSES
from sharehub.errors import Forbidden, SubjectErased, UnknownDataKey, UnknownReferenceError
from sharehub.keys import LocalKeyStore, SecretBytes, subject_key_id

#: Subjects one request may ask for (the SDK seals 512 records at a time).
MAX_SUBJECTS = 1024
PURPOSE = "sealing events as the dataset's owner"

router = APIRouter(prefix="/v1/keys/{dataset}", tags=["keys"], responses=RESPONSES)
#: The key store is one SQLite connection: one request at a time uses it.
_key_store_lock = threading.Lock()


class DatasetKeysOut(BaseModel):
    dataset: str
    data_key_id: str
    #: base64 of the 32-byte keys
    data_key: str
    routing_key: str


class DataKeyOut(BaseModel):
    key_id: str
    data_key: str


class SubjectKeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Subjects by their pseudonym (hex of the 16-byte keyed hash), as the SDK computes them.
    refs: list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] = Field(
        min_length=1, max_length=MAX_SUBJECTS
    )
    #: Create the keys of subjects that have none (publishing); false: only those that exist.
    create: bool = True


class SubjectKeysOut(BaseModel):
    #: key id -> base64 key; null: the subject was erased (or, without ``create``, has no key).
    keys: dict[str, str | None]


async def owned_dataset(
    dataset: Annotated[str, Path(description="Dataset id", max_length=200)],
    who: Annotated[str, Depends(caller)],
    ctx: Annotated[ApiContext, Depends(context)],
) -> str:
    """The dataset in the path if the caller owns it (404: there is none; 403: another agency owns it)."""
    owner = ctx.governance.dataset(dataset).owner
    if owner != who:
        raise Forbidden(f"{who!r} does not own {dataset!r}: only its owner receives its keys")
    return dataset


Owned = Annotated[str, Depends(owned_dataset)]
Ctx = Annotated[ApiContext, Depends(context)]


@router.get("", summary="The dataset's current data key and its routing key (owner only)")
async def dataset_keys(dataset: Owned, ctx: Ctx) -> DatasetKeysOut:
    keys = ctx.keys

    def read() -> tuple[str, SecretBytes, SecretBytes]:
        with _key_store_lock:
            key_id = keys.current_data_key_id(dataset)
            return key_id, keys.data_key(key_id), keys.routing_key(dataset)

    key_id, data_key, routing_key = await run_in_threadpool(read)
    await _record(ctx, dataset, "release_dataset_keys", [key_id, f"{dataset}/routing"])
    return DatasetKeysOut(
        dataset=dataset, data_key_id=key_id, data_key=_b64(data_key), routing_key=_b64(routing_key)
    )


@router.get("/data/{key_id:path}", summary="An earlier epoch's data key of the dataset (owner only)")
async def data_key(dataset: Owned, key_id: Annotated[str, Path(max_length=300)], ctx: Ctx) -> DataKeyOut:
    if not key_id.startswith(f"{dataset}/data/"):
        raise UnknownReferenceError(f"{key_id!r} is not a data key of {dataset!r}")
    keys = ctx.keys

    def read() -> SecretBytes:
        with _key_store_lock:
            try:
                return keys.data_key(key_id)
            except UnknownDataKey as exc:
                raise UnknownReferenceError(str(exc)) from None

    found = await run_in_threadpool(read)
    await _record(ctx, dataset, "release_data_key", [key_id])
    return DataKeyOut(key_id=key_id, data_key=_b64(found))


@router.post("/subjects", summary="Data subjects' keys, created first if need be (owner only)")
async def subject_keys(dataset: Owned, body: SubjectKeysIn, ctx: Ctx) -> SubjectKeysOut:
    refs = [bytes.fromhex(r) for r in dict.fromkeys(body.refs)]
    key_ids = [subject_key_id(dataset, ref) for ref in refs]
    await _record(ctx, dataset, "release_subject_keys", key_ids)  # before any key exists or leaves
    found = await run_in_threadpool(_subject_keys, ctx.keys, dataset, refs, key_ids, body.create)
    return SubjectKeysOut(keys=found)


def _subject_keys(
    keys: LocalKeyStore, dataset: str, refs: list[bytes], key_ids: list[str], create: bool
) -> dict[str, str | None]:
    with _key_store_lock:
        if create:
            keys.ensure_subject_keys(dataset, refs)  # committed before it returns
        keys.prefetch_subject_keys(key_ids)
        answer: dict[str, str | None] = {}
        for key_id in key_ids:
            try:
                answer[key_id] = _b64(keys.subject_key(key_id))
            except (SubjectErased, UnknownDataKey):
                answer[key_id] = None
        return answer


async def _record(ctx: ApiContext, dataset: str, operation: str, key_ids: list[str]) -> None:
    owner = ctx.governance.dataset(dataset).owner
    await ctx.access.record(
        consumer=owner, purpose=PURPOSE, operation=operation, dataset=dataset, record_refs=key_ids
    )


def _b64(key: SecretBytes) -> str:
    return base64.b64encode(key.reveal()).decode()
