"""The gateway's HTTP surface: batch writes with an Idempotency-Key, the agency's chain heads, health.

Every refusal has the hub API's JSON shape ``{"error": code, "detail": message}`` (:mod:`services.api.errors`)
with a code a machine can act on: ``not_authenticated`` 401, ``forbidden`` 403, ``not_found`` 404,
``idempotency_key`` 400, ``not_json`` 400, ``idempotency_conflict`` 409, ``too_large`` 413,
``invalid_request`` and ``invalid_record`` 422, the codec's own reason for an envelope it refuses 422
(``bad_signature``, ``not_owner``, ``dataset_mismatch``, ``malformed``, ``chain_gap``...),
``too_many_requests`` 429 with Retry-After, ``unavailable`` 503 (the broker or the key service away:
retry with the same key).
``/healthz`` answers while the process serves; ``/readyz`` when the broker answers with the gateway's login
too (else 503 ``unavailable`` with Retry-After), as the query API's do. Its keys and governance are loaded
before it listens: a gateway without them does not start.
Checks run cheapest first: the body's declared size (:mod:`services.api.body_limit`, as on every server),
credential, key, dataset, rate, then the body (refused as soon as a chunked one passes ``max_body``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from services.api import errors
from services.api.body_limit import BodyLimit
from services.gateway.guard import Credentials, RateLimit
from services.gateway.ingest import Ingest, source_of
from sharehub.errors import (
    BodyNotJson,
    BrokerError,
    ConfigurationError,
    EnvelopeError,
    Forbidden,
    IdempotencyConflict,
    IdempotencyKeyInvalid,
    KeyServiceUnavailable,
    MalformedEnvelope,
    RecordValidationError,
)

#: Items in one request at most.
MAX_ITEMS = 10_000
REPLAYED_HEADER = "Idempotent-Replayed"
#: Seconds a client of ``/readyz`` is told to wait before asking again.
RETRY_READY_S = 5
_bearer = HTTPBearer(auto_error=False, description="The agency's credential, as governance issued it.")
_DATASET = Annotated[str, Path(description="Dataset id (the calling agency must own it)", max_length=200)]
_KEY = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Required: the same on each retry of one request (1-200 "
           "printable ASCII characters); a retry publishes nothing again and gets the first answer."),
]  # fmt: skip


class RecordsBatch(BaseModel):
    """JSON records of the dataset's current schema, for the gateway to seal."""

    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS)


class EnvelopesBatch(BaseModel):
    """Envelopes the agency sealed and signed (base64 of each envelope's bytes), produced unchanged."""

    model_config = ConfigDict(extra="forbid")
    envelopes: list[str] = Field(min_length=1, max_length=MAX_ITEMS)


class Rejected(BaseModel):
    item: int
    reason: str


class Published(BaseModel):
    """What a request put on the dataset's topic (the same answer for each retry of it)."""

    dataset: str
    idempotency_key: str
    items: int
    #: Items of this request on the topic (on a resumed request, with those the first attempt wrote).
    published: int
    #: Items not published, and why (a subject erased meanwhile).
    rejected: list[Rejected]
    #: Sealed by the hub on the agency's behalf (custodial mode) rather than at the agency's site.
    custodial: bool


class ChainHeadOut(BaseModel):
    lane: int
    sequence: int
    hash: str


class Chain(BaseModel):
    """Where the agency's chain stands in each lane: its next envelopes follow these heads."""

    dataset: str
    lanes: int
    heads: list[ChainHeadOut]


@dataclass(frozen=True)
class Gateway:
    """What the routes use: how the gateway publishes, who may call it, how much."""

    ingest: Ingest
    credentials: Credentials
    #: Dataset id → its owner (UnknownReferenceError when there is none).
    owner: Callable[[str], str]
    #: Whether the gateway may seal for this agency (at a site: its own; at the hub: those in custody).
    may_seal_for: Callable[[str], bool]
    rate: RateLimit
    max_body: int
    #: Raises BrokerError when the gateway cannot reach its broker now.
    broker_check: Callable[[], None]


def _gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


async def _writer(
    request: Request,
    dataset: _DATASET,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    gateway: Annotated[Gateway, Depends(_gateway)],
) -> str:
    """The calling agency, if it owns ``dataset`` and the gateway may publish for it now."""
    source = request.client.host if request.client else "unknown"
    agency = await gateway.credentials.holder(credentials.credentials if credentials else None, source)
    owner = gateway.owner(dataset)
    if owner != agency:
        raise Forbidden(f"{agency!r} may not publish {dataset!r}: its owner is {owner!r}")
    if not await gateway.ingest.run(lambda: gateway.may_seal_for(agency)):
        raise Forbidden(
            f"the hub does not hold the keys of {agency!r} (it is not in the hub's custody): publish from "
            "the agency's own site, with its own gateway or SDK"
        )
    gateway.rate.take(agency)
    return agency


async def _body(request: Request, gateway: Gateway, model: type[BaseModel]) -> tuple[Any, str]:
    raw = await request.body()  # at most max_body bytes: BodyLimit refused larger ones
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyNotJson(f"the request body is not JSON: {exc}") from None
    return model.model_validate(parsed), hashlib.sha256(raw).hexdigest()


def _answer(answer: dict[str, Any], replayed: bool) -> JSONResponse:
    return JSONResponse(answer, headers={REPLAYED_HEADER: "true" if replayed else "false"})


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}
    return {"requestBody": schema}


def _routes(app: FastAPI) -> None:
    @app.post(
        "/v1/datasets/{dataset}/records", response_model=Published, openapi_extra=_body_doc(RecordsBatch)
    )
    async def publish_records(
        request: Request,
        dataset: _DATASET,
        agency: Annotated[str, Depends(_writer)],
        gateway: Annotated[Gateway, Depends(_gateway)],
        idempotency_key: _KEY = None,
    ) -> Response:
        """Seal JSON records with the key of this gateway's mode (the site's; the hub's custody key) and
        publish them, exactly once per Idempotency-Key. All valid, or 422 naming each invalid item."""
        source = source_of(idempotency_key)
        batch, digest = await _body(request, gateway, RecordsBatch)
        records = batch.records
        answer, replayed = await gateway.ingest.run(
            lambda: gateway.ingest.publish_records(agency, dataset, source, digest, records)
        )
        return _answer(answer, replayed)

    @app.post(
        "/v1/datasets/{dataset}/envelopes", response_model=Published, openapi_extra=_body_doc(EnvelopesBatch)
    )
    async def publish_envelopes(
        request: Request,
        dataset: _DATASET,
        agency: Annotated[str, Depends(_writer)],
        gateway: Annotated[Gateway, Depends(_gateway)],
        idempotency_key: _KEY = None,
    ) -> Response:
        """Verify envelopes the agency sealed and signed (the codec's checks against governance; 422 with
        its reason for the first refused) and produce them unchanged, exactly once per Idempotency-Key."""
        _sealed_at_the_site(gateway)
        source = source_of(idempotency_key)
        batch, digest = await _body(request, gateway, EnvelopesBatch)
        raws = [_decoded(i, text) for i, text in enumerate(batch.envelopes, start=1)]
        answer, replayed = await gateway.ingest.run(
            lambda: gateway.ingest.publish_envelopes(agency, dataset, source, digest, raws)
        )
        return _answer(answer, replayed)

    @app.get("/v1/datasets/{dataset}/chain", response_model=Chain)
    async def chain(
        dataset: _DATASET,
        agency: Annotated[str, Depends(_writer)],
        gateway: Annotated[Gateway, Depends(_gateway)],
    ) -> dict[str, Any]:
        """Where the agency's chain stands in each lane of the dataset: what its next envelopes follow."""
        _sealed_at_the_site(gateway)
        return await gateway.ingest.run(lambda: gateway.ingest.chain(agency, dataset))


def _probes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready: the broker answers with the gateway's login (else 503, Retry-After)")
    def readyz(request: Request, gateway: Annotated[Gateway, Depends(_gateway)]) -> JSONResponse:
        try:
            gateway.broker_check()
        except BrokerError as exc:
            body = {"error": "unavailable", "detail": str(exc)}
            return errors.localized(request, 503, body, {"Retry-After": str(RETRY_READY_S)})
        return JSONResponse({"status": "ready"})


def _sealed_at_the_site(gateway: Gateway) -> None:
    if gateway.ingest.custodial:
        raise Forbidden(
            "the hub's gateway seals JSON records only; envelopes are published at the agency's site"
        )


def _decoded(number: int, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEnvelope(f"envelope {number}: not base64") from None


#: The gateway's refusals beyond the hub API's (:func:`services.api.errors.status_of`).
_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    IdempotencyKeyInvalid: (400, "idempotency_key"),
    BodyNotJson: (400, "not_json"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    RecordValidationError: (422, "invalid_record"),
    KeyServiceUnavailable: (503, "unavailable"),
    ConfigurationError: (503, "unavailable"),
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: doc for status, doc in errors.RESPONSES.items() if status != 429},
    400: {"model": errors.ErrorBody, "description": "No or a malformed Idempotency-Key; a body not JSON"},
    409: {"model": errors.ErrorBody, "description": "The Idempotency-Key was used with another body"},
    413: {"model": errors.ErrorBody, "description": "The body is larger than the gateway's limit"},
    422: {
        "model": errors.ErrorBody,
        "description": "A malformed body, an invalid record, a refused envelope",
    },
    429: {
        "model": errors.ErrorBody,
        "description": "Past the agency's request rate, or too many failed authentications; see Retry-After",
    },  # fmt: skip
    503: {"model": errors.ErrorBody, "description": "The broker or the key service is away: retry, same key"},
}


def _install_refusals(app: FastAPI) -> None:
    errors.install(app)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, EnvelopeError):
            status, code = 422, exc.reason
        else:
            status, code = next(v for k, v in _REFUSALS.items() if isinstance(exc, k))
        return errors.localized(request, status, {"error": code, "detail": str(exc)})

    for kind in (*_REFUSALS, EnvelopeError):
        app.add_exception_handler(kind, refused)


def create_gateway(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="sharehub ingest gateway",
        version="1",
        description="An agency's systems publish into its datasets, exactly once per Idempotency-Key.",
        responses=RESPONSES,
    )
    _install_refusals(app)
    app.add_middleware(BodyLimit, max_bytes=gateway.max_body)
    app.state.gateway = gateway
    _routes(app)
    _probes(app)
    return app
