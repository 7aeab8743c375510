"""Governance acts from the console: propose, consent, approve, suspend, resume, revoke; each through
:func:`services.gov_operations.perform`, exactly as ``POST /v1/gov/{operation}`` takes it.

An agency in the hub's custody has its act sealed by the hub. An agency that holds its own key (a site) seals
its act at its site, in two steps: the form's first step shows the exact request and the ``sharehub agency
sign-act`` command that seals it there; the second takes the sealed body the command printed, pasted back,
and submits it. The hub never sees the site's private key. A refusal (the rules, the seal, a malformed
request) shows the form again with the reason, and changes nothing.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from services.api.errors import status_of
from services.console.login import redirect
from services.console.state import PostedForm, SignedIn, Visit
from services.gov_operations import Caller, parse_request, perform
from sharehub.errors import InputError, SharehubError, UnknownReferenceError
from sharehub.gov.acts import Presented
from sharehub.gov.commands import Command
from sharehub.gov.events import ActSeal

router = APIRouter(prefix="/console/act", include_in_schema=False)
#: The acts the console offers, and the form fields each takes.
ACTS: dict[str, tuple[str, ...]] = {
    "propose": ("id", "dataset", "fields", "purposes", "purpose", "legal_basis", "row_filter", "valid_until"),
    "consent": ("agreement_id",),
    "approve": ("agreement_id",),
    "suspend": ("agreement_id", "reason"),
    "resume": ("agreement_id", "reason"),
    "revoke": ("agreement_id", "reason"),
}
_LISTS = ("fields", "purposes")
Operation = Annotated[str, Path(max_length=32)]


def _known(operation: str) -> tuple[str, ...]:
    if operation not in ACTS:
        raise UnknownReferenceError(f"the console offers no act {operation!r}; one of: {', '.join(ACTS)}")
    return ACTS[operation]


@router.get("/{operation}")
def act_form(visit: SignedIn, operation: Operation, agreement_id: str = "", dataset: str = "") -> Response:
    _known(operation)
    return _form(visit, operation, {"agreement_id": agreement_id, "dataset": dataset})


@router.post("/{operation}")
async def act(visit: SignedIn, operation: Operation, form: PostedForm) -> Response:
    values = {name: form.get(name, "").strip() for name in _known(operation)}
    try:
        request = parse_request(operation, _body(visit.agency, operation, values))
    except (SharehubError, ValidationError) as exc:
        return _refused(visit, operation, values, exc)
    if not visit.ctx.logins.in_custody(visit.agency):  # a site seals its own acts: show how
        as_json = json.dumps(request.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        command = f"sharehub agency sign-act {operation} --request {shlex.quote(as_json)}"
        return visit.page("act_sign.html", operation=operation, request=as_json, command=command)
    return await _performed(visit, operation, request, None, values)


@router.post("/{operation}/sealed")
async def sealed_act(visit: SignedIn, operation: Operation, form: PostedForm) -> Response:
    _known(operation)
    text = form.get("sealed", "")
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or not isinstance(body.get("act_seal"), dict):
            raise InputError("paste the whole JSON object that 'sharehub agency sign-act' printed")
        seal = Presented(ActSeal.from_json(body.pop("act_seal")))
        request = parse_request(operation, body)
    except (SharehubError, ValidationError, ValueError, KeyError, TypeError) as exc:
        return _refused(visit, operation, {}, exc, sealed=text)
    return await _performed(visit, operation, request, seal, {}, sealed=text)


async def _performed(
    visit: Visit,
    operation: str,
    request: Command,
    seal: Presented | None,
    values: dict[str, str],
    sealed: str | None = None,
) -> Response:
    desk = visit.ctx.desk

    def run() -> None:
        perform(desk, Caller(visit.agency), operation, request, signer=seal)
        desk.governance.governance_state(refresh=True)  # the next page shows the act

    try:
        await run_in_threadpool(run)
    except SharehubError as exc:
        return _refused(visit, operation, values, exc, sealed=sealed)
    return redirect(f"/console/?done={operation}")


def _body(agency: str, operation: str, values: dict[str, str]) -> dict[str, Any]:
    """The operation's request from the form: lists split at commas, empty fields left out; a proposal's
    consumer is the signed-in agency."""
    body: dict[str, Any] = {}
    for name, value in values.items():
        if not value:
            continue
        body[name] = [v.strip() for v in value.split(",") if v.strip()] if name in _LISTS else value
    if operation == "propose":
        body["consumer"] = agency
    return body


def _refused(
    visit: Visit,
    operation: str,
    values: dict[str, str],
    exc: Exception,
    sealed: str | None = None,
) -> Response:
    if isinstance(exc, ValidationError):
        reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
        status = 422
    else:
        reason = str(exc)
        status = status_of(exc)[0] if isinstance(exc, SharehubError) else 400
    return _form(visit, operation, values, error=reason, status=status, sealed=sealed)


def _form(
    visit: Visit,
    operation: str,
    values: dict[str, str],
    error: str | None = None,
    status: int = 200,
    sealed: str | None = None,
) -> Response:
    fields = {name: values.get(name, "") for name in ACTS[operation]}
    return visit.page("act.html", status, operation=operation, values=fields, error=error, sealed=sealed)
