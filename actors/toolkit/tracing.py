"""W3C trace context of the request being served, for events published inside it.

Dapr sends `traceparent` with every actor call and subscription delivery; a pure ASGI
middleware stores it in a context variable the actor base reads when it wraps events.
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

_TRACEPARENT: ContextVar[str] = ContextVar("traceparent", default="")


def current_traceparent() -> str:
    return _TRACEPARENT.get()


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = ""
        for name, raw in scope["headers"]:
            if name == b"traceparent":
                value = raw.decode("latin-1")[:128]
                break
        token = _TRACEPARENT.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            _TRACEPARENT.reset(token)
