"""The query API: each consumer agency reads its own read model, with its own bearer credential.

The same app serves the governance operations (:mod:`services.gov_api`) under ``/v1/gov``.

Routes live under ``/v1/consumers/{consumer}/...`` so that a request for another agency's read model is
refused (403) rather than answered with an empty list. No credential, or an unknown one, is a 401, and a
source that keeps failing to authenticate gets 429 (:mod:`services.api_auth`). Every refusal has the same
JSON shape and is in the OpenAPI document (:mod:`services.api_errors`).
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from services import api_errors
from services.access_log import AccessLog
from services.api_auth import CredentialCheck
from services.gov_api import governance_router
from services.hub import Hub
from services.operations import Operations
from sharehub.avro import RecordSchema
from sharehub.collector import freeze_startup_objects
from sharehub.errors import Forbidden, InputError, RequestInvalid, UnknownReferenceError
from sharehub.governance import Agreement
from sharehub.row_filter import compile_filter

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


FILTER_HELP = 'A row filter over granted fields, e.g. status == "OFFICIAL" and province_code in ["82"].'


def as_of_time(
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


def stated_purpose(
    purpose: Annotated[
        str,
        Query(
            min_length=3,
            max_length=200,
            description="Why this query is made (3 to 200 characters, not only spaces); required, and "
            "recorded with it in the access log (R7).",
        ),
    ],
) -> str:
    text = purpose.strip()
    if len(text) < 3:
        raise RequestInvalid("purpose: state why this query is made, in at least 3 characters")
    return text


AsOf = Annotated[dt.datetime | None, Depends(as_of_time)]
Purpose = Annotated[str, Depends(stated_purpose)]


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
        responses=api_errors.RESPONSES,
    )
    api_errors.install(app)
    store = hub.store
    hub.follow_governance()  # requests read the state the follower keeps, never the broker
    access = access_log or AccessLog(hub.kafka, hub.governance.access_log_topic)
    credentials_check = CredentialCheck(hub)

    # The request path is async: authentication and the agreement check are in-memory lookups, and the
    # access log is awaited without holding a thread. Read-model queries run in the thread pool, except a
    # read by key from an embedded SQLite read model, which takes microseconds.
    async def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        source = request.client.host if request.client else "unknown"
        token = credentials.credentials if credentials is not None else None
        return await credentials_check.holder(token, source)

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
        """``as_of`` checked against the history the read models keep."""
        horizon = hub.settings.history_horizon(dt.datetime.now(dt.UTC))
        if as_of is not None and horizon is not None and as_of < horizon:
            raise InputError(
                f"as_of: read models keep {hub.settings.history_days:g} days of history, from "
                f"{horizon.isoformat(timespec='seconds')}; earlier states are only in the log"
            )
        return as_of

    def refs(dataset: str, keys: list[str]) -> list[str]:
        """The records' pseudonyms, as on the dataset's topic: the access log never holds a record key."""
        codec = hub.codec(dataset)
        return [codec.pseudonym(key).hex() for key in keys]

    app.include_router(governance_router(hub, caller))

    operations = Operations(hub, auth=credentials_check.counts)

    def operator(who: Annotated[str, Depends(caller)]) -> str:
        if who != hub.governance.operator:
            raise Forbidden(f"status and metrics are for the hub operator {hub.governance.operator!r}")
        return who

    @app.get("/v1/status", summary="Lag, freshness and row counts per read model; quarantine by reason")
    def status(_who: Annotated[str, Depends(operator)]) -> dict[str, Any]:
        return operations.status()

    prometheus_text = {
        "description": "Prometheus text format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }

    # Its refusals are JSON like every route's: only the answer is text.
    @app.get("/metrics", summary="The same, as Prometheus metrics", responses={200: prometheus_text})
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
        what = {"dataset": dataset, "agreement": agreement.id, "record_refs": refs(dataset, keys)}
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
        what = {"dataset": dataset, "agreement": agreement.id, "record_refs": refs(dataset, returned)}
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
