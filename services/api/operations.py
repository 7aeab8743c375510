"""Operations' routes: health, who am I, and, for the operator, status and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from services.api.context import ApiContext, caller, context, operator
from services.api.errors import RESPONSES

router = APIRouter(tags=["operations"], responses=RESPONSES)

_PROMETHEUS_TEXT = {
    "description": "Prometheus text format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready: every read model's database answers (else 503 with Retry-After)")
def readyz(ctx: Annotated[ApiContext, Depends(context)]) -> dict[str, str]:
    for consumer in sorted({a.consumer for a in ctx.governance.agreements()}):
        ctx.stores(consumer).ping()
    return {"status": "ready"}


@router.get("/v1/me")
def me(who: Annotated[str, Depends(caller)]) -> dict[str, str]:
    return {"consumer": who}


@router.get("/v1/status", summary="Lag, freshness and row counts per read model; quarantine by reason")
def status(
    _who: Annotated[str, Depends(operator)], ctx: Annotated[ApiContext, Depends(context)]
) -> dict[str, Any]:
    return ctx.operations.status()


# Its refusals are JSON like every route's: only the answer is text.
@router.get("/metrics", summary="The same, as Prometheus metrics", responses={200: _PROMETHEUS_TEXT})
def metrics(
    _who: Annotated[str, Depends(operator)], ctx: Annotated[ApiContext, Depends(context)]
) -> PlainTextResponse:
    return PlainTextResponse(ctx.operations.metrics(), media_type=CONTENT_TYPE_LATEST)
