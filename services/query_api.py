"""The query API: each consumer agency reads its own read model, with its own bearer credential.

The same app serves the governance operations (:mod:`services.gov_api`) under ``/v1/gov``.

Routes live under ``/v1/consumers/{consumer}/...`` so that a request for another agency's read model is
refused (403) rather than answered with an empty list. No credential, or an unknown one, is a 401.
"""

import datetime as dt
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError

from services.access_log import AccessLog
from services.gov_api import governance_router
from services.hub import Hub
from services.operations import Operations
from sharehub.avro import RecordSchema
from sharehub.collector import freeze_startup_objects
from sharehub.errors import (
    BrokerError,
    DuplicateId,
    Forbidden,
    InputError,
    LifecycleViolation,
    NotAuthenticated,
    NotPermitted,
    SharehubError,
    UnknownReferenceError,
)
from sharehub.governance import Agreement
from sharehub.row_filter import compile_filter

#: An unknown credential makes the API read the log past the request, at most this often (others wait).
RECHECK_S = 0.05

_bearer = HTTPBearer(auto_error=False, description="Credential issued by governance to a consumer agency.")


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


AsOf = Annotated[
    dt.datetime | None,
    Query(description="ISO 8601 time with its zone: the records as they stood then (by their events' times)"),
]
FILTER_HELP = 'A row filter over granted fields, e.g. status == "OFFICIAL" and province_code in ["82"].'
Purpose = Annotated[
    str,
    Query(
        min_length=3,
        max_length=200,
        description="Why this query is made; required, and recorded with it in the access log (R7).",
    ),
]


def serve_app() -> FastAPI:
    """The API over this process's own hub (settings from the environment): what each ``sharehub serve``
    worker process runs."""
    app = create_app(Hub())  # which reads governance first: no governance fails the start, clearly
    # What the process made to start lives as long as it does: frozen, a full collection no longer walks
    # all of it in the middle of a request. At 500 requests/s this took the p99 latency from 49-99 ms to
    # 16-19 ms (bench scenario d).
    freeze_startup_objects()
    return app


def create_app(hub: Hub, access_log: AccessLog | None = None) -> FastAPI:
    app = FastAPI(
        title="sharehub query API",
        version="1",
        description="Each consumer agency reads the records its active agreements grant, and nothing else.",
    )
    store = hub.store
    hub.follow_governance()  # requests read the state the follower keeps, never the broker
    access = access_log or AccessLog(hub.kafka, hub.governance.access_log_topic)

    # The request path is async: authentication and the agreement check are in-memory lookups, and the
    # access log is awaited without holding a thread. Read-model queries run in the thread pool, except a
    # read by key from an embedded SQLite read model, which takes microseconds.
    async def caller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
        if credentials is None:
            raise NotAuthenticated("a bearer credential is required")
        token, asked = credentials.credentials, time.monotonic()
        consumer = hub.governance.consumer_for_token(token)
        if consumer is None:  # perhaps issued a moment ago: make sure the log is read past this request
            state = await run_in_threadpool(hub.governance_since, asked, min_interval=RECHECK_S)
            consumer = state.consumer_for_token(token)
        if consumer is None:
            raise NotAuthenticated("unknown credential")
        return consumer

    async def own_read_model(
        consumer: Annotated[str, Path(description="Consumer agency id")],
        who: Annotated[str, Depends(caller)],
    ) -> str:
        if who != consumer:
            raise Forbidden(f"the credential of {who!r} may not read the read model of {consumer!r}")
        return consumer

    def granted(consumer: str, dataset: str) -> Agreement:
        """The consumer's active agreement for ``dataset``; 404 or 403 otherwise."""
        hub.governance.dataset_owner(dataset)  # 404 for a dataset that does not exist
        agreement = hub.governance.active_agreement(consumer, dataset, dt.datetime.now(dt.UTC))
        if agreement is None:
            raise Forbidden(f"{consumer!r} holds no active agreement for {dataset!r}")
        return agreement

    def past_moment(as_of: dt.datetime | None) -> dt.datetime | None:
        """``as_of`` checked: with its zone, and within the history the read models keep."""
        if as_of is not None and as_of.tzinfo is None:
            raise InputError("as_of: give the time zone, e.g. 2026-01-31T17:00:00+07:00 or ...Z")
        horizon = hub.settings.history_horizon(dt.datetime.now(dt.UTC))
        if as_of is not None and horizon is not None and as_of < horizon:
            raise InputError(
                f"as_of: read models keep {hub.settings.history_days:g} days of history, from "
                f"{horizon.isoformat(timespec='seconds')}; earlier states are only in the log"
            )
        return as_of

    app.include_router(governance_router(hub, caller))

    @app.exception_handler(ValidationError)
    async def _invalid(_request: Request, exc: ValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(SharehubError)
    async def _error(_request: Request, exc: SharehubError) -> JSONResponse:
        status, code = _status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": code, "detail": str(exc)}, status_code=status, headers=headers)

    operations = Operations(hub)

    def operator(who: Annotated[str, Depends(caller)]) -> str:
        if who != hub.governance.operator:
            raise Forbidden(f"status and metrics are for the hub operator {hub.governance.operator!r}")
        return who

    @app.get("/v1/status", summary="Lag, freshness and row counts per read model; quarantine by reason")
    def status(_who: Annotated[str, Depends(operator)]) -> dict[str, Any]:
        return operations.status()

    @app.get("/metrics", summary="The same, as Prometheus metrics", response_class=PlainTextResponse)
    def metrics(_who: Annotated[str, Depends(operator)]) -> PlainTextResponse:
        return PlainTextResponse(operations.metrics(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/me")
    def me(who: Annotated[str, Depends(caller)]) -> dict[str, str]:
        return {"consumer": who}

    @app.get("/v1/consumers/{consumer}/datasets")
    async def datasets(
        consumer: Annotated[str, Depends(own_read_model)], purpose: Purpose
    ) -> list[GrantedDataset]:
        now = dt.datetime.now(dt.UTC)
        granted_now = []
        for ds in hub.governance.datasets():
            agreement = hub.governance.active_agreement(consumer, ds.id, now)
            if agreement is not None:
                granted_now.append((ds.id, agreement))
        counts = await run_in_threadpool(lambda: [store(consumer).count(ds) for ds, _ in granted_now])
        out = [
            GrantedDataset(dataset=ds, agreement=agreement.id, fields=list(agreement.fields), records=n)
            for (ds, agreement), n in zip(granted_now, counts, strict=True)
        ]
        await access.record(consumer=consumer, purpose=purpose, operation="list_datasets")
        return out

    @app.get("/v1/consumers/{consumer}/datasets/{dataset}/records")
    async def list_records(
        consumer: Annotated[str, Depends(own_read_model)],
        dataset: str,
        purpose: Purpose,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(description="Key after which the page starts (key order)")] = None,
        filter: Annotated[
            str | None,
            Query(description=FILTER_HELP),
        ] = None,
        sort: Annotated[
            str | None,
            Query(pattern=r"^-?[a-z_][a-z0-9_]*$", description="A granted field; -field: descending"),
        ] = None,
        offset: Annotated[int, Query(ge=0, le=1_000_000, description="With sort: rows to skip")] = 0,
        as_of: AsOf = None,
    ) -> RecordPage:
        agreement = granted(consumer, dataset)
        schema = hub.governance.current_schema(dataset)
        where = compile_filter(filter, schema, allowed_fields=agreement.fields) if filter else None
        order = None
        if sort is not None:
            name = sort.lstrip("-")
            if name not in agreement.fields:
                raise InputError(f"sort: {name!r} is not a field {consumer!r} is granted")
            order = (name, _sample(schema, name), sort.startswith("-"))
        moment = past_moment(as_of)
        items = await run_in_threadpool(
            lambda: store(consumer).list(
                dataset, limit=limit, after_key=after, where=where, sort=order, offset=offset, as_of=moment
            )
        )
        full = len(items) == limit
        next_key = (str(offset + limit) if order else items[-1]["key"]) if full else None
        keys = [i["key"] for i in items]
        what = {"dataset": dataset, "agreement": agreement.id, "record_keys": keys}
        await access.record(consumer=consumer, purpose=purpose, operation="list_records", **what)
        return RecordPage(items=[Record(**i) for i in items], next=next_key)

    @app.get("/v1/consumers/{consumer}/datasets/{dataset}/records/{key}")
    async def get_record(
        consumer: Annotated[str, Depends(own_read_model)],
        dataset: str,
        key: str,
        purpose: Purpose,
        as_of: AsOf = None,
    ) -> Record:
        agreement = granted(consumer, dataset)
        moment = past_moment(as_of)
        read_model = store(consumer)
        if read_model.embedded and moment is None:  # an index lookup in a local file: no thread hop
            found = read_model.get(dataset, key)
        else:
            found = await run_in_threadpool(lambda: read_model.get(dataset, key, as_of=moment))
        returned = [key] if found is not None else []
        what = {"dataset": dataset, "agreement": agreement.id, "record_keys": returned}
        await access.record(consumer=consumer, purpose=purpose, operation="get_record", **what)
        if found is None:
            raise UnknownReferenceError(f"no record {key!r} in {consumer!r}'s read model of {dataset!r}")
        return Record(**found)

    return app


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


def _status(exc: SharehubError) -> tuple[int, str]:
    if isinstance(exc, NotAuthenticated):
        return 401, "not_authenticated"
    if isinstance(exc, Forbidden | NotPermitted):
        return 403, "forbidden"
    if isinstance(exc, UnknownReferenceError):
        return 404, "not_found"
    if isinstance(exc, DuplicateId | LifecycleViolation):
        return 409, "conflict"
    if isinstance(exc, BrokerError):
        return 503, "unavailable"
    return 400, "bad_request"
