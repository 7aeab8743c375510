"""What the console's routes use, made once per process, and the dependencies that say who is signed in.

A page asks for :func:`signed_in` (the agency of a live session; else the visitor is sent to the login page)
and, for a POST, :func:`posted_form` (the form, once its CSRF token is checked).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from services.api.context import ApiContext, context
from services.console import csrf, i18n, session
from services.console.render import Pages
from services.console.session import Session, Sessions


class SignInNeeded(Exception):
    """No live session: the visitor is sent to the login page."""


@dataclass(frozen=True)
class Console:
    pages: Pages
    sessions: Sessions
    #: The hub's default language (setting ``console_language``).
    language: str


@dataclass(frozen=True)
class Visit:
    """A signed-in request: its agency and session, the API's context, the visitor's language."""

    session: Session
    ctx: ApiContext
    console: Console
    language: str

    @property
    def agency(self) -> str:
        return self.session.agency

    @property
    def form_token(self) -> str:
        return csrf.form_token(self.session.csrf_secret)

    def page(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return self.console.pages.render(
            self.language, template, status_code, agency=self.agency, csrf=self.form_token, **values
        )


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def language(request: Request) -> str:
    return i18n.chosen(request.cookies.get(i18n.COOKIE), console(request).language)


def signed_in(
    request: Request,
    ctx: Annotated[ApiContext, Depends(context)],
    where: Annotated[Console, Depends(console)],
) -> Visit:
    """The visit of a live session (its credential still the agency's and valid); SignInNeeded otherwise."""
    now = dt.datetime.now(dt.UTC)
    found = where.sessions.open(request.cookies.get(session.COOKIE), now)
    if found is None or not session.still_valid(found, ctx.governance, now):
        raise SignInNeeded()
    return Visit(found, ctx, where, language(request))


async def posted_form(request: Request, visit: Annotated[Visit, Depends(signed_in)]) -> dict[str, str]:
    """The POSTed form's fields, once its CSRF token is the session's (403 otherwise, nothing done)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    csrf.check_form(visit.session.csrf_secret, fields.pop(csrf.FIELD, None))
    return fields


SignedIn = Annotated[Visit, Depends(signed_in)]
PostedForm = Annotated[dict[str, str], Depends(posted_form)]
