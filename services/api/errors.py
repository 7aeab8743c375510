"""Every error of the HTTP APIs in one shape, ``{"error": code, "detail": message}``, and documented.

:func:`status_of` (:mod:`services.refusals`) maps the error hierarchy (:mod:`sharehub.errors`) onto HTTP
statuses and stable codes; :func:`install` makes every refusal, including FastAPI's own request validation,
answer in that shape, with ``message``, the code's sentence in the language the request's
``Accept-Language`` prefers (Vietnamese or English; English for anything else), named by
``Content-Language``; and :data:`RESPONSES` describes those answers in the OpenAPI document, so that clients
(and schemathesis's conformance checks) know every status a route may give. Bad input is always a 4xx with
a reason, never a 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from services import i18n
from services.refusals import sentence, status_of
from sharehub.errors import PurposeNotAllowed, ReadModelUnavailable, SharehubError, TooManyRequests
from sharehub.gov.acts import ActSealRefused

__all__ = ["RESPONSES", "ErrorBody", "PurposeTerm", "install", "localize", "localized", "status_of"]


class PurposeTerm(BaseModel):
    """A purpose of governance's vocabulary."""

    id: str
    label_vi: str
    label_en: str


class ErrorBody(BaseModel):
    """Why a request was refused."""

    #: Stable, machine-readable: bad_request, invalid_request, not_authenticated, forbidden,
    #: purpose_not_allowed, not_found, conflict, too_many_requests, unavailable.
    error: str
    #: What was wrong, for a person: names the parameter or field, never a record's contents.
    detail: str
    #: With purpose_not_allowed only: the purposes the query may state (its agreement's, or for the list of
    #: datasets those of the consumer's active agreements).
    allowed_purposes: list[PurposeTerm] | None = None
    #: With a governance act refused for its seal only: why, as a stable code (act_unsigned,
    #: act_wrong_party, act_key_not_valid, act_stale, act_signature_invalid; see docs/governance.md).
    act_seal: str | None = None
    #: The code's sentence (``act_seal``'s when there is one) in the language the request's Accept-Language
    #: prefers, vi or en (English for any other), named by the answer's Content-Language; the same for
    #: every refusal with that code (``detail`` says what this one was about).
    message: str | None = None


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: The refusals every route may answer with (FastAPI merges them into each operation).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("The request is understood but wrong: a bad filter, sort, as_of or governance step"),
    401: _doc("No credential, or one the hub does not know"),
    403: _doc(
        "The credential's agency may not do or see this; purpose_not_allowed: the stated purpose is not "
        "one its agreement names (allowed_purposes lists those that are)"
    ),
    404: _doc("No such dataset, record, agreement or operation"),
    409: _doc("A conflict with governance as it stands (a duplicate id, a step out of order)"),
    413: _doc("The request body is larger than the server's limit"),
    422: _doc("A parameter or body field is missing or malformed"),
    429: _doc("Too many failed authentications from this address; see Retry-After"),
    503: _doc(
        "The broker did not take the access record (no answer leaves without one), or the read-model "
        "database does not answer (see Retry-After)"
    ),
}


def install(app: FastAPI) -> None:
    """Answer every refusal of ``app`` as an :class:`ErrorBody`."""

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(request, exc.errors())

    @app.exception_handler(ValidationError)
    async def _body_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        return _invalid(request, exc.errors())

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's and FastAPI's own refusals: a body that is not JSON, an unknown path or method.
        code = _CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "unavailable")
        body = {"error": code, "detail": str(exc.detail)}
        return localized(request, exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(SharehubError)
    async def _refused(request: Request, exc: SharehubError) -> JSONResponse:
        status, code = status_of(exc)
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, TooManyRequests | ReadModelUnavailable):
            headers["Retry-After"] = str(math.ceil(exc.retry_after))
        body: dict[str, Any] = {"error": code, "detail": str(exc)}
        if isinstance(exc, PurposeNotAllowed):
            body["allowed_purposes"] = list(exc.allowed)
        if isinstance(exc, ActSealRefused):
            body["act_seal"] = exc.reason
        return localized(request, status, body, headers)


def localized(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """The refusal ``body`` with its ``message`` in the language the request prefers."""
    return JSONResponse(
        body, status_code=status, headers={**(headers or {}), **localize(body, request.headers)}
    )


def localize(body: dict[str, Any], request_headers: Mapping[str, str]) -> dict[str, str]:
    """Adds to ``body`` its ``message`` (the sentence of its ``act_seal``, else of its ``error``) in the
    language ``request_headers``' Accept-Language prefers; the headers that name it."""
    language = i18n.negotiate(request_headers.get("accept-language"))
    said = sentence(body.get("act_seal") or body["error"], language)
    if said is None:
        return {}
    body["message"] = said
    return {"Content-Language": language, "Vary": "Accept-Language"}


_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def _invalid(request: Request, errors: Any) -> JSONResponse:
    problems = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")) or "body"
        problems.append(f"{where}: {e.get('msg', 'invalid')}")
    return localized(request, 422, {"error": "invalid_request", "detail": "; ".join(problems)})
