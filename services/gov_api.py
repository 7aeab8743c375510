"""The governance operations over HTTP: ``POST /v1/gov/{operation}``, and reading the governance state.

The caller acts for the agency its bearer credential was issued to; that agency is the actor of the event,
and the rules decide whether it may take the step (only the operator registers agencies, only the consumer
proposes, only the owner consents, only central offices other than both approve, ...). The request bodies
are :mod:`services.gov_operations`' request types, the same fields as the CLI's options.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse

from services.gov_operations import OPERATIONS, event_summary, parse_request, perform
from services.hub import Hub


def governance_router(hub: Hub, caller: Callable[..., str]) -> APIRouter:
    router = APIRouter(prefix="/v1/gov", tags=["governance"])

    @router.post("/{operation}", status_code=201, summary="Perform a governance operation as the caller")
    def operate(
        operation: str,
        who: Annotated[str, Depends(caller)],
        body: Annotated[dict[str, Any], Body(description="The operation's request (see the CLI's options)")],
    ) -> JSONResponse:
        request = parse_request(operation, body)
        event = perform(hub, who, operation, request)
        return JSONResponse(event_summary(event), status_code=201)

    @router.get("/operations", summary="Every operation and the JSON schema of its request")
    def operations(_who: Annotated[str, Depends(caller)]) -> dict[str, Any]:
        return {name: kind.model_json_schema() for name, (kind, _) in OPERATIONS.items()}

    @router.get("/state", summary="The whole governance state, canonical JSON")
    def state(_who: Annotated[str, Depends(caller)]) -> dict[str, Any]:
        return hub.governance_state(refresh=True).dump()

    @router.get("/agreements/{agreement_id}/history", summary="Every version of an agreement")
    def history(agreement_id: str, _who: Annotated[str, Depends(caller)]) -> list[dict[str, Any]]:
        gov = hub.governance_state(refresh=True)
        gov.history(agreement_id)
        return list(gov.dump()["agreements"][agreement_id])

    return router
