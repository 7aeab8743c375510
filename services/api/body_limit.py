"""A bound on request bodies, the same for every HTTP server: larger is ``413 too_large``, unread.

:class:`BodyLimit` is ASGI middleware: a ``Content-Length`` over the limit is refused before the
application sees the request, and a chunked body is refused as soon as what the application has read
passes the limit (it reads on: it is told the client is gone, and whatever it answers is dropped). The
refusal closes the connection (``Connection: close``), so the rest of the body is never read.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import localize


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received, refused, started = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the client has its 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:  # the application's own failure, not its reaction to the refusal
                raise

    async def _refuse(self, scope: Scope, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes:,} bytes"
        refusal = {"error": "too_large", "detail": detail}
        named = localize(refusal, Headers(scope=scope))
        body = json.dumps(refusal).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *((name.lower().encode(), value.encode()) for name, value in named.items()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length; -1 when it has none or a malformed one (the server refuses those)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return -1
