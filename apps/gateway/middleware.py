"""Pure ASGI middleware of the gateway: the request body size limit.

Starlette's own `max_body_size` answers some oversized requests in plain text; this one
answers every one of them with a problem+json 413, whether the size is declared in
Content-Length or only discovered while a chunked body streams in.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.toolkit.commands import MAX_PAYLOAD_BYTES
from actors.toolkit.fastpath import header
from apps.gateway.problems import problem

# An actor refuses a larger payload anyway; refuse it here before it crosses the hop.
MAX_BODY_BYTES: Final = MAX_PAYLOAD_BYTES


class _BodyTooLargeError(Exception):
    """Raised into the app from `receive` once the body passed the limit."""


class _Guard:
    """Counts body bytes on the way in; holds back the app's answer once over the limit."""

    def __init__(self, receive: Receive, send: Send, max_bytes: int) -> None:
        self._receive = receive
        self._send = send
        self._max_bytes = max_bytes
        self.received = 0
        self.exceeded = False
        self.started = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._max_bytes:
                self.exceeded = True
                raise _BodyTooLargeError
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded and not self.started:
            return  # whatever the app made of the cut-off body, the client gets the 413
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodySizeLimit:
    """Answers 413 "request.too_large" to a request body over `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        guard = _Guard(receive, send, self.max_bytes)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if not guard.exceeded:
                raise
            # Over the limit, the app only failed because its body was cut off.
        if guard.exceeded and not guard.started:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            scope["path"],
            status=413,
            code="request.too_large",
            detail=f"the request body is larger than {self.max_bytes} bytes",
            context={"max_bytes": self.max_bytes},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")  # the first one, as Starlette's Headers.get
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
