"""CSRF tokens of the console's forms.

Every form of a session carries ``csrf``: an HMAC-SHA256, under the session's own random secret, of the
console's name for form tokens; a POST without it, or with another, is refused (403) before it does anything.
The login form, before there is a session, uses a double-submit token: a random value both in a cookie
(``SameSite=Strict``, so another site cannot send it) and in the form, which must be equal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sharehub.errors import Forbidden

FIELD = "csrf"
LOGIN_COOKIE = "sharehub_console_login"
_PURPOSE = b"sharehub console form"


def form_token(csrf_secret: str) -> str:
    return hmac.new(bytes.fromhex(csrf_secret), _PURPOSE, hashlib.sha256).hexdigest()


def check_form(csrf_secret: str, sent: str | None) -> None:
    """Return if ``sent`` is the session's form token; Forbidden otherwise."""
    if not sent or not hmac.compare_digest(sent, form_token(csrf_secret)):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def check_login(cookie: str | None, sent: str | None) -> None:
    """Return if the login form's token equals its cookie's; Forbidden otherwise."""
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise Forbidden("the login form's CSRF token is missing or wrong: reload the page and try again")
