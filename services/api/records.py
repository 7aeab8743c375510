"""Consumers' routes: the datasets an agency is granted, its records, one record; each answer first in the
access log (R7).

Routes live under ``/v1/consumers/{consumer}/...`` so that a request for another agency's read model is
refused (403) rather than answered with an empty list. The stated purpose must be one the agreement that
grants the dataset names (for the list of datasets: one of the consumer's active agreements), else 403
``purpose_not_allowed`` with the allowed purposes; the refusal is access-logged too (operation
``purpose_refused``). Agreements of free-text purpose (proposed before governance's vocabulary) take any
stated purpose, as before (:func:`sharehub.gov.vocabulary.allowed_purposes`).

The request path is async: authentication and the agreement check are in-memory lookups, and the access log
is awaited without holding a thread. Read-model queries run in the thread pool, except a read by key from
an embedded SQLite read model, which takes microseconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from services.api.context import ApiContext, context, own_read_model
from services.api.errors import RESPONSES
from sharehub.avro import RecordSchema
from sharehub.errors import Forbidden, InputError, PurposeNotAllowed, RequestInvalid, UnknownReferenceError
from sharehub.gov.views import Agreement
from sharehub.gov.vocabulary import allowed_purposes
from sharehub.history import history_horizon
from sharehub.row_filter import compile_filter

FILTER_HELP = 'A row filter over granted fields, e.g. status == "OFFICIAL" and province_code in ["82"].'

router = APIRouter(prefix="/v1/consumers/{consumer}", tags=["records"], responses=RESPONSES)


class Record(BaseModel):
    key: str
    fields: dict[str, Any]


class RecordPage(BaseModel):
    items: list[Record]
    #: The next page: pass it as ``after`` (key order) or as ``offset`` (with ``sort``); null at the end.
    next: str | None


class GrantedDataset(BaseModel):
    dataset: str
    agreement: str
    fields: list[str]
    records: int


async def as_of_time(
    as_of: Annotated[
        str | None,
        Query(
            max_length=64,
            description="ISO 8601 time with its zone, e.g. 2026-03-01T00:00:00+07:00: the records as they "
            "stood then (by their events' times)",
        ),
    ] = None,
) -> dt.datetime | None:
    """``as_of`` as an aware time in UTC. Not an ISO 8601 time (a bare number, say): 422; a time without
    its zone, or out of range once in UTC: 400."""
    if as_of is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(as_of)
    except ValueError:
        raise RequestInvalid("as_of: not an ISO 8601 time, e.g. 2026-01-31T17:00:00+07:00") from None
    if moment.tzinfo is None:
        raise InputError("as_of: give the time zone, e.g. 2026-01-31T17:00:00+07:00 or ...Z")
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise InputError("as_of: out of range (years 1 to 9999, in UTC)") from None


async def stated_purpose(
    purpose: Annotated[
        str,
        Query(
            min_length=3,
            max_length=200,
            description="Why this query is made (3 to 200 characters, not only spaces): the id of one of "
            "the purposes the agreement names (any text under an agreement of free-text purpose); "
            "required, and recorded with it in the access log (R7).",
        ),
    ],
) -> str:
    text = purpose.strip()
    if len(text) < 3:
        raise RequestInvalid("purpose: state why this query is made, in at least 3 characters")
    return text


Consumer = Annotated[str, Depends(own_read_model)]
Context = Annotated[ApiContext, Depends(context)]
AsOf = Annotated[dt.datetime | None, Depends(as_of_time)]
Purpose = Annotated[str, Depends(stated_purpose)]
Sort = Annotated[
    str | None, Query(pattern=r"^-?[a-z_][a-z0-9_]*$", description="A granted field; -field: descending")
]


@router.get("/datasets")
async def datasets(consumer: Consumer, purpose: Purpose, ctx: Context) -> list[GrantedDataset]:
    now = dt.datetime.now(dt.UTC)
    granted_now = []
    for ds in ctx.governance.datasets():
        agreement = ctx.governance.active_agreement(consumer, ds.id, now)
        if agreement is not None:
            granted_now.append((ds.id, agreement))
    await _purpose_named(ctx, consumer, purpose, [agreement for _, agreement in granted_now])
    counts = await run_in_threadpool(lambda: [ctx.stores(consumer).count(ds) for ds, _ in granted_now])
    out = [
        GrantedDataset(dataset=ds, agreement=agreement.id, fields=list(agreement.fields), records=n)
        for (ds, agreement), n in zip(granted_now, counts, strict=True)
    ]
    await ctx.access.record(consumer=consumer, purpose=purpose, operation="list_datasets")
    return out


@router.get("/datasets/{dataset}/records")
async def list_records(
    consumer: Consumer,
    dataset: str,
    purpose: Purpose,
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(description="Key after which the page starts (key order)")] = None,
    filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
    sort: Sort = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="With sort: rows to skip")] = 0,
    as_of: AsOf = None,
) -> RecordPage:
    agreement = _granted(ctx, consumer, dataset)
    await _purpose_named(ctx, consumer, purpose, [agreement], dataset)
    schema = ctx.governance.current_schema(dataset)
    where = compile_filter(filter, schema, allowed_fields=agreement.fields) if filter else None
    order = None
    if sort is not None:
        name = sort.lstrip("-")
        if name not in agreement.fields:
            raise InputError(f"sort: {name!r} is not a field {consumer!r} is granted")
        order = (name, _sample(schema, name), sort.startswith("-"))
    moment = _within_history(ctx, dataset, as_of)
    items = await run_in_threadpool(
        lambda: ctx.stores(consumer).page(
            dataset, limit=limit, after_key=after, where=where, sort=order, offset=offset, as_of=moment
        )
    )
    full = len(items) == limit
    next_key = (str(offset + limit) if order else items[-1]["key"]) if full else None
    await ctx.access.record(
        consumer=consumer, purpose=purpose, operation="list_records", dataset=dataset,
        agreement=agreement.id, agreement_version=_version(ctx, agreement),
        record_refs=_refs(ctx, dataset, [i["key"] for i in items]),
        fields_returned=agreement.fields if items else (),
        row_filter=where.masked(schema.personal_fields) if where else None, as_of=moment,
    )  # fmt: skip
    return RecordPage(items=[Record(**i) for i in items], next=next_key)


@router.get("/datasets/{dataset}/records/{key}")
async def get_record(
    consumer: Consumer, dataset: str, key: str, purpose: Purpose, ctx: Context, as_of: AsOf = None
) -> Record:
    agreement = _granted(ctx, consumer, dataset)
    await _purpose_named(ctx, consumer, purpose, [agreement], dataset)
    moment = _within_history(ctx, dataset, as_of)
    read_model = ctx.stores(consumer)
    if read_model.embedded and moment is None:  # an index lookup in a local file: no thread hop
        found = read_model.get(dataset, key)
    else:
        found = await run_in_threadpool(lambda: read_model.get(dataset, key, as_of=moment))
    await ctx.access.record(
        consumer=consumer, purpose=purpose, operation="get_record", dataset=dataset,
        agreement=agreement.id, agreement_version=_version(ctx, agreement),
        record_refs=_refs(ctx, dataset, [key] if found is not None else []),
        fields_returned=agreement.fields if found is not None else (), as_of=moment,
    )  # fmt: skip
    if found is None:
        raise UnknownReferenceError(f"no record {key!r} in {consumer!r}'s read model of {dataset!r}")
    return Record(**found)


def _granted(ctx: ApiContext, consumer: str, dataset: str) -> Agreement:
    """The consumer's active agreement for ``dataset``; 404 or 403 otherwise."""
    ctx.governance.dataset_owner(dataset)  # 404 for a dataset that does not exist
    agreement = ctx.governance.active_agreement(consumer, dataset, dt.datetime.now(dt.UTC))
    if agreement is None:
        raise Forbidden(f"{consumer!r} holds no active agreement for {dataset!r}")
    return agreement


async def _purpose_named(
    ctx: ApiContext, consumer: str, purpose: str, agreements: list[Agreement], dataset: str | None = None
) -> None:
    """Return if one of ``agreements`` (those the query would be answered under) allows ``purpose``: names
    it, or is of free-text purpose; with no agreement there is nothing to answer and nothing to check.
    Otherwise the refusal goes to the access log and PurposeNotAllowed lists the purposes that are."""
    named: list[str] = []
    for agreement in agreements:
        allowed = allowed_purposes(agreement)
        if allowed is None or purpose in allowed:
            return
        named += [p for p in allowed if p not in named]
    if not agreements:
        return
    await ctx.access.record(
        consumer=consumer, purpose=purpose, operation="purpose_refused", dataset=dataset,
        agreement=agreements[0].id if dataset is not None else None,
        agreement_version=_version(ctx, agreements[0]) if dataset is not None else None,
    )  # fmt: skip
    vocabulary = ctx.governance.purposes_
    terms = tuple(vocabulary[p].json() for p in sorted(named) if p in vocabulary)
    where = f"{dataset!r} under agreement {agreements[0].id!r}" if dataset else "its datasets"
    listed = ", ".join(sorted(named))
    raise PurposeNotAllowed(
        f"purpose {purpose!r} is not one {consumer!r} may query {where} for; state one of: {listed}", terms
    )


def _version(ctx: ApiContext, agreement: Agreement) -> int:
    """The agreement's version: the governance sequence of its last change."""
    return ctx.governance.agreement(agreement.id).sequence


def _within_history(ctx: ApiContext, dataset: str, as_of: dt.datetime | None) -> dt.datetime | None:
    """``as_of`` checked against the history the read models keep of ``dataset``: the hub's history days or
    the dataset's retention, whichever is shorter (:mod:`sharehub.history`)."""
    if as_of is None:
        return None
    horizon = history_horizon(ctx.settings, ctx.governance.dataset(dataset), dt.datetime.now(dt.UTC))
    if horizon is not None and as_of < horizon.at:
        since = horizon.at.isoformat(timespec="seconds")
        raise InputError(
            f"as_of: {horizon.kept}, so the history of {dataset!r} starts at {since}; the read models keep "
            "no earlier state: ask for a time from then on"
        )
    return as_of


def _refs(ctx: ApiContext, dataset: str, keys: list[str]) -> list[str]:
    """The records' pseudonyms, as on the dataset's topic: the access log never holds a record key."""
    codec = ctx.codecs(dataset)
    return [codec.pseudonym(key).hex() for key in keys]


def _sample(schema: RecordSchema, name: str) -> Any:
    """A value of the field's JSON type, which is how the read model compares and orders it."""
    kind = schema.fields[name].type
    kinds = kind if isinstance(kind, list) else [kind]
    named = {k if isinstance(k, str) else k.get("type") for k in kinds}
    if named & {"int", "long", "float", "double"} and not any(
        isinstance(k, dict) and "logicalType" in k for k in kinds
    ):
        return 0
    if "boolean" in named:
        return True
    return ""
