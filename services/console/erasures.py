"""Erasures from the console: the owner of a dataset requests a subject's erasure, the operator approves it
(then :func:`services.erasure.erase_subject` erases by crypto-shredding and signs the receipt, exactly as
``sharehub gov erase``) or declines it. Who may request and who approves is
:func:`services.erasure.check_parties`, the rule the erasure itself applies.

The ERASED event is signed by a key of the owner, so the console takes requests of owners in the hub's
custody only; an owner that holds its own key erases from its site. Each request and each decision is
written to the access log (operations ``erasure_request``, ``erasure_approve``, ``erasure_decline``), the
acting agency as its consumer and the record named by its pseudonym, never by its key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.api.errors import status_of
from services.console.login import redirect
from services.console.state import PostedForm, SignedIn, Visit
from services.erasure import check_parties, erase_subject
from services.erasure_requests import ErasureRequest
from sharehub.errors import InputError, SharehubError

router = APIRouter(prefix="/console/erasure", include_in_schema=False)
RequestId = Annotated[str, Path(max_length=32)]
FIELDS = ("dataset", "record_key", "reason")


@router.get("/request")
def request_form(visit: SignedIn, dataset: str = "") -> Response:
    return _form(visit, {"dataset": dataset})


@router.post("/request")
async def request_erasure(visit: SignedIn, form: PostedForm) -> Response:
    values = {name: form.get(name, "").strip() for name in FIELDS}
    ctx = visit.ctx
    try:
        gov = ctx.governance
        check_parties(gov, values["dataset"], requested_by=visit.agency, approved_by=gov.operator)
        if not ctx.logins.in_custody(visit.agency):
            raise InputError(
                f"the hub holds no signing key of {visit.agency!r}, and the erasure event is signed by the "
                "owner: erase from your site"
            )
        made = ctx.erasure_requests.add(
            values["dataset"], values["record_key"], visit.agency, values["reason"]
        )
    except SharehubError as exc:
        return _form(visit, values, error=str(exc), status=status_of(exc)[0])
    try:
        await _record(visit, made, "erasure_request", made.reason)
    except BaseException:
        ctx.erasure_requests.withdraw(made.id)
        raise
    return redirect("/console/?done=erasure_request")


@router.post("/{request_id}/approve")
async def approve(visit: SignedIn, request_id: RequestId, _form: PostedForm) -> Response:
    ctx = visit.ctx
    with ctx.erasure_requests.deciding(request_id) as asked:
        check_parties(
            ctx.governance, asked.dataset, requested_by=asked.requested_by, approved_by=visit.agency
        )
        await run_in_threadpool(
            erase_subject,
            ctx.erasure(),
            dataset=asked.dataset,
            record_key=asked.record_key,
            requested_by=asked.requested_by,
            approved_by=visit.agency,
        )
    # Erased, and the request decided: the receipt names both agencies; the access log says it too.
    await _record(visit, asked, "erasure_approve", f"erasure requested by {asked.requested_by}")
    return redirect("/console/?done=erasure_approve")


@router.post("/{request_id}/decline")
async def decline(visit: SignedIn, request_id: RequestId, _form: PostedForm) -> Response:
    ctx = visit.ctx
    with ctx.erasure_requests.deciding(request_id) as asked:
        check_parties(
            ctx.governance, asked.dataset, requested_by=asked.requested_by, approved_by=visit.agency
        )
        await _record(visit, asked, "erasure_decline", f"erasure requested by {asked.requested_by}")
    return redirect("/console/?done=erasure_decline")


async def _record(visit: Visit, asked: ErasureRequest, operation: str, purpose: str) -> None:
    ref = visit.ctx.codecs(asked.dataset).pseudonym(asked.record_key).hex()
    await visit.ctx.access.record(
        consumer=visit.agency, purpose=purpose, operation=operation, dataset=asked.dataset, record_refs=[ref]
    )


def _form(visit: Visit, values: dict[str, str], error: str | None = None, status: int = 200) -> Response:
    owned = [d.id for d in visit.ctx.governance.datasets() if d.owner == visit.agency]
    fields = {name: values.get(name, "") for name in FIELDS}
    return visit.page("erasure.html", status, values=fields, owned=owned, error=error)
