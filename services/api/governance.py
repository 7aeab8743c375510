"""The governance operations over HTTP: ``POST /v1/gov/{operation}``, and reading the governance state.

The caller acts for the agency its bearer credential was issued to; that agency is the actor of the event,
and the rules decide whether it may take the step (only the operator registers agencies, only the consumer
proposes, only the owner consents, only central offices other than both approve, ...). The request bodies
are :mod:`services.gov_operations`' request types, the same fields as the CLI's options. A public key must
be given: over HTTP the hub never makes an agency's key pair. An act of any agency but the operator carries
that agency's own seal in ``act_seal`` (made at its site with ``sharehub agency sign-act``, which prints the
whole body): the hub checks it and countersigns, and refuses the act (403) without a valid one, unless the
agency is in the hub's custody (then the hub seals with its custody key).

Reading is need-to-know (:func:`as_seen_by`): each agency sees the agencies and their public keys, the
datasets it may ask for (all but top-secret ones, unless it is cleared for top-secret or owns them), and the
agreements it is a party to; the operator and the central offices, who approve, see every agreement.
Credential hashes are shown to no one (an agency sees how many credentials it holds); an agency sees its own
credentials' ids and lifetimes, the operator everyone's.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse

from services.api.context import ApiContext, caller, context
from services.api.errors import RESPONSES
from services.gov_operations import OPERATIONS, Caller, event_summary, parse_request, perform
from sharehub.errors import UnknownReferenceError
from sharehub.gov.acts import Presented
from sharehub.gov.events import ActSeal
from sharehub.gov.rules import CENTRAL_OFFICE, COMPARTMENTED
from sharehub.gov.state import GovState

router = APIRouter(prefix="/v1/gov", tags=["governance"], responses=RESPONSES)
Who = Annotated[str, Depends(caller)]
Context = Annotated[ApiContext, Depends(context)]


@router.post("/{operation}", status_code=201, summary="Perform a governance operation as the caller")
def operate(
    operation: str,
    who: Who,
    ctx: Context,
    body: Annotated[dict[str, Any], Body(description="The operation's request (see the CLI's options)")],
) -> JSONResponse:
    seal = body.pop("act_seal", None)
    request = parse_request(operation, body)
    signer = Presented(ActSeal.from_json(seal)) if seal is not None else None
    event = perform(ctx.desk, Caller(who), operation, request, signer=signer)
    return JSONResponse(event_summary(event), status_code=201)


@router.get("/operations", summary="Every operation and the JSON schema of its request")
def operations(_who: Who) -> dict[str, Any]:
    return {name: kind.model_json_schema() for name, (kind, _) in OPERATIONS.items()}


@router.get("/state", summary="The governance state as far as it concerns the caller, canonical JSON")
def state(who: Who, ctx: Context) -> dict[str, Any]:
    return as_seen_by(ctx.desk.governance.governance_state(refresh=True), who)


@router.get("/agreements/{agreement_id}/history", summary="Every version of an agreement of the caller")
def history(agreement_id: str, who: Who, ctx: Context) -> list[dict[str, Any]]:
    seen = as_seen_by(ctx.desk.governance.governance_state(refresh=True), who)["agreements"]
    if agreement_id not in seen:  # not there, or not the caller's: the same answer
        raise UnknownReferenceError(f"no agreement {agreement_id!r} concerns {who!r}")
    return list(seen[agreement_id])


def as_seen_by(state: GovState, who: str) -> dict[str, Any]:
    """:meth:`GovState.dump`, as far as it concerns agency ``who``."""
    full = state.dump()
    me = state.agencies_.get(who)
    sees_all_agreements = who == state.operator or (me is not None and me.kind == CENTRAL_OFFICE)
    compartmented = me is not None and me.clearance == COMPARTMENTED
    datasets = [
        d
        for d in full["datasets"]
        if d["owner"] == who or compartmented or d["classification"] != COMPARTMENTED
    ]
    shown = {d["id"] for d in datasets}
    agreements = {
        agreement_id: versions
        for agreement_id, versions in full["agreements"].items()
        if sees_all_agreements
        or who in (versions[-1]["terms"]["consumer"], state.dataset_owner(versions[-1]["terms"]["dataset"]))
    }
    seen: dict[str, Any] = {**full}
    if "vocabulary" in full:  # the terms are every agency's; which dataset names which, only as seen
        terms = full["vocabulary"]
        purposes = {d: p for d, p in terms["dataset_purposes"].items() if d in shown}
        seen["vocabulary"] = {**terms, "dataset_purposes": purposes}
    return {
        **seen,
        "datasets": datasets,
        "schemas": {d: fingerprints for d, fingerprints in full["schemas"].items() if d in shown},
        "agreements": agreements,
        "credentials": {who: len(state.credentials.get(who, []))},
        "credential_lifetimes": {
            cid: lifetime
            for cid, lifetime in full["credential_lifetimes"].items()
            if who == state.operator or lifetime["consumer"] == who
        },
    }
