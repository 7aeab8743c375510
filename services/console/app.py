"""The web console's composition: its routers, its static files and the API docs' page, mounted on the API's
app, so ``sharehub serve`` serves it over the API's TLS at ``/console``.

A refusal on a console page is a page (403, 404, ...) with the console's headers, not the API's JSON; a
request without a live session is sent to the login page.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from services.api.errors import status_of
from services.console import acts, audit, audit_runs, erasures, login, pages, quarantine
from services.console.render import DOCS_HEADERS, STATIC, HeadedStaticFiles, Pages
from services.console.session import Sessions
from services.console.state import Console, SignInNeeded, language
from sharehub.errors import SharehubError
from sharehub.keys import SecretBytes
from sharehub.settings import Settings

#: Swagger UI's files, as the swagger-ui-bundle package ships them.
SWAGGER_DIR = next((Path(swagger_ui_bundle.__path__[0]) / "vendor").glob("swagger-ui-*"))
#: The OpenAPI version Swagger UI 4 reads.
SWAGGER_OPENAPI_VERSION = "3.0.3"
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def install(app: FastAPI, settings: Settings, session_key: SecretBytes) -> None:
    """Mount the console on ``app`` (made with ``docs_url=None``: this docs' page loads nothing remote);
    its session cookies signed with ``session_key`` (the key store's)."""
    app.state.console = Console(
        pages=Pages(),
        sessions=Sessions(session_key.reveal(), settings.console_session_s),
        language=settings.console_language,
    )
    app.include_router(login.router)
    app.include_router(pages.router)
    app.include_router(acts.router)
    app.include_router(audit.router)
    app.include_router(audit_runs.router)
    app.include_router(erasures.router)
    app.include_router(quarantine.router)
    app.mount("/console/static/swagger", HeadedStaticFiles(SWAGGER_DIR, DOCS_HEADERS), name="swagger")
    app.mount("/console/static", HeadedStaticFiles(STATIC), name="console-static")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        where: Console = request.app.state.console
        return where.pages.render(language(request), "docs.html", headers=DOCS_HEADERS)

    @app.get("/docs/openapi.json", include_in_schema=False)
    def docs_openapi() -> dict[str, Any]:
        """``/openapi.json`` as OpenAPI 3.0: Swagger UI 4 renders no 3.1 document, and FastAPI writes 3.1.
        The few 3.1 forms in it (a null among a parameter's types) show as written; /openapi.json stays."""
        return {**app.openapi(), "openapi": SWAGGER_OPENAPI_VERSION}

    app.add_exception_handler(SignInNeeded, _to_login)
    for kind in (SharehubError, HTTPException, RequestValidationError):
        _pages_for_console(app, kind)


async def _to_login(_request: Request, _exc: Exception) -> Response:
    return login.redirect(login.LOGIN)


def _pages_for_console(app: FastAPI, kind: type[Exception]) -> None:
    """Refusals of ``kind`` on console paths as pages; elsewhere as the API answers them."""
    api_handler: Handler = app.exception_handlers[kind]

    async def handle(request: Request, exc: Any) -> Response:
        if not request.url.path.startswith("/console"):
            answered = api_handler(request, exc)
            return await answered if inspect.isawaitable(answered) else answered
        status, detail = _status_and_detail(exc)
        where: Console = request.app.state.console
        return where.pages.render(language(request), "refused.html", status, status=status, detail=detail)

    app.add_exception_handler(kind, handle)


def _status_and_detail(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, SharehubError):
        return status_of(exc)[0], str(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors()]
        return 422, "; ".join(problems)
    return 400, str(exc)
