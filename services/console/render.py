"""Rendering the console's pages: Jinja2 templates in the visitor's language, every response with the
console's security headers.

The Content-Security-Policy allows nothing but the console's own styles, images, scripts (the API docs'
page only) and forms: no inline script or style, no frame, no base URL, no request to another origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from services.console import i18n

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

#: On every console page, static file and refusal.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: The API docs' page runs Swagger UI: its scripts are static files of this server ('self'), none inline; it
#: fetches the OpenAPI document from here (connect-src), and its stylesheet draws icons from data: URLs.
DOCS_HEADERS: Mapping[str, str] = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class Pages:
    """The templates, once per language."""

    def __init__(self) -> None:
        self._environments = {lang: _environment(lang) for lang in i18n.LANGUAGES}

    def render(
        self,
        language: str,
        template: str,
        status_code: int = 200,
        headers: Mapping[str, str] = SECURITY_HEADERS,
        **context: Any,
    ) -> HTMLResponse:
        page = self._environments[language].get_template(template)
        html = page.render(lang=language, **context)
        return HTMLResponse(html, status_code=status_code, headers=dict(headers))


def _environment(language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.load_translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


class HeadedStaticFiles(StaticFiles):
    """Static files with the console's security headers."""

    def __init__(self, directory: Path, headers: Mapping[str, str] = SECURITY_HEADERS) -> None:
        super().__init__(directory=directory)
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await super().__call__(scope, receive, with_headers)
