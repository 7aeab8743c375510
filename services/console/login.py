"""Logging in and out of the console, and choosing its language.

The login form takes the agency's bearer credential, checked as the API checks it
(:meth:`services.api.auth.CredentialCheck.holder`: the same throttling of failing sources, expiry, rotation
and revocation). Logging in and out goes to the access log (operations ``console_login`` and
``console_logout``), signed and chained like every query's record, so an auditor sees who used the console
and when (``sharehub audit access --consumer AGENCY``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.api.context import ApiContext, context
from services.console import csrf, i18n, session
from services.console.render import SECURITY_HEADERS
from services.console.state import Console, PostedForm, SignedIn, console, language
from sharehub.errors import NotAuthenticated, TooManyRequests
from sharehub.gov.views import token_hash

router = APIRouter(prefix="/console", include_in_schema=False)
HOME = "/console/"
LOGIN = "/console/login"
#: What a login's and a logout's access record states as its purpose.
SESSION_PURPOSE = "web console session"


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers=dict(SECURITY_HEADERS))


def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=session.COOKIE_PATH, secure=True, httponly=True, samesite="strict"
    )


@router.get("/login")
def login_page(request: Request, where: Annotated[Console, Depends(console)]) -> Response:
    return _login_form(request, where)


def _login_form(request: Request, where: Console, error: str | None = None, status: int = 200) -> Response:
    token = csrf.new_login_token()
    page = where.pages.render(language(request), "login.html", status, login_token=token, error=error)
    set_cookie(page, csrf.LOGIN_COOKIE, token)
    return page


@router.post("/login")
async def login(
    request: Request,
    ctx: Annotated[ApiContext, Depends(context)],
    where: Annotated[Console, Depends(console)],
    credential: Annotated[str, Form(max_length=512)] = "",
    token: Annotated[str, Form(alias=csrf.FIELD, max_length=128)] = "",
) -> Response:
    csrf.check_login(request.cookies.get(csrf.LOGIN_COOKIE), token)
    source = request.client.host if request.client else "unknown"
    try:
        agency = await ctx.credentials.holder(credential.strip() or None, source)
    except TooManyRequests as exc:
        return _login_form(request, where, str(exc), 429)
    except NotAuthenticated as exc:
        return _login_form(request, where, str(exc), 401)
    now = dt.datetime.now(dt.UTC)
    await ctx.access.record(consumer=agency, purpose=SESSION_PURPOSE, operation="console_login")
    response = redirect(HOME)
    set_cookie(response, session.COOKIE, where.sessions.seal(agency, token_hash(credential.strip()), now))
    response.delete_cookie(csrf.LOGIN_COOKIE, path=session.COOKIE_PATH, secure=True, httponly=True)
    return response


@router.post("/logout")
async def logout(visit: SignedIn, _form: PostedForm) -> Response:
    await visit.ctx.access.record(consumer=visit.agency, purpose=SESSION_PURPOSE, operation="console_logout")
    response = redirect(LOGIN)
    response.delete_cookie(session.COOKIE, path=session.COOKIE_PATH, secure=True, httponly=True)
    return response


@router.get("/lang/{chosen}")
def choose_language(chosen: str, next: str = HOME) -> Response:
    """Set the language cookie and go back to ``next`` (a console page; anything else: the home page)."""
    back = next if next.startswith("/console/") and "//" not in next and "\\" not in next else HOME
    response = redirect(back)
    if chosen in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE, chosen, max_age=365 * 86400, path="/", secure=True, httponly=True, samesite="strict"
        )
    return response
