"""Dapr's two shared tokens: the app's calls to its sidecar, and the sidecar's to its app.

Dapr's own names, so daprd, the SDK and the app read the same variables:
- `DAPR_API_TOKEN`: daprd refuses (401) every call to its HTTP and gRPC APIs without it in
  the `dapr-api-token` header, bar `GET /v1.0/healthz[/outbound]`. The app sends it
  (`SidecarHTTP(api_token=...)`; the SDK's clients read the variable themselves).
- `APP_API_TOKEN`: daprd sends it in the same header on every call it makes to its app
  (actor turns, reminders, `/dapr/config`, `/dapr/subscribe`, event deliveries), not on
  its health probes. `AppTokenGuard` answers 401 to a call on one of those routes
  without it: a process that can reach the app's port cannot drive its actors.

Unset or empty, neither is checked (Dapr's default; `dapr run -f` and bare `uvicorn`).
The launcher makes both for every local cluster (cluster/tokens.py); docker-compose and
the Helm chart take them from the operator.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

DAPR_API_TOKEN_ENV: Final = "DAPR_API_TOKEN"
APP_API_TOKEN_ENV: Final = "APP_API_TOKEN"
HEADER: Final = "dapr-api-token"
_HEADER_BYTES: Final = HEADER.encode()

# The routes daprd calls on an app: its configuration and subscriptions, actor turns,
# reminders and timers, deactivations (`/actors/<type>/<id>...`; `/actors/stats` is the
# actor host's ops route), event deliveries, and the console's dead-letter subscription.
_DAPR_PREFIXES: Final = ("/dapr/", "/events/", "/deadletters/inbox")

log = logging.getLogger("orderflow.apitoken")


class TokenError(ValueError):
    """A token variable holds something that cannot go in an HTTP header."""


def _token(env: Mapping[str, str] | None, name: str) -> str | None:
    value = (os.environ if env is None else env).get(name, "")
    if not value:
        return None
    if not value.isascii() or not value.isprintable() or value != value.strip() or " " in value:
        raise TokenError(
            f"{name} must be printable ASCII without spaces (an HTTP header value); "
            "make one with `openssl rand -hex 32`"
        )
    return value


def dapr_api_token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """DAPR_API_TOKEN: what the app sends its sidecar; None when unset or empty."""
    return _token(env, DAPR_API_TOKEN_ENV)


def app_api_token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """APP_API_TOKEN: what the app expects from its sidecar; None when unset or empty."""
    return _token(env, APP_API_TOKEN_ENV)


def sidecar_headers(token: str | None) -> dict[str, str]:
    """The header a call to a daprd carries (none without a token)."""
    return {HEADER: token} if token else {}


def dapr_facing(path: str) -> bool:
    """Is `path` one daprd calls on an app (and so one the app token guards)?"""
    if path.startswith(_DAPR_PREFIXES):
        return True
    # /actors/<type>/<id>[/method/<m> | /method/remind/<r> | /method/timer/<t>]
    return path.startswith("/actors/") and path.count("/") >= 3


_REFUSAL: Final = json.dumps(
    {
        "type": "https://orderflow.dev/problems/sidecar-token",
        "title": "Unauthorized",
        "status": 401,
        "detail": f"this route answers the app's Dapr sidecar only: the {HEADER} header "
        f"is missing or is not the app's {APP_API_TOKEN_ENV}",
    }
).encode()


class AppTokenGuard:
    """ASGI middleware: 401 to a call on a daprd-facing route without the app token.

    Add it last (outermost), so it also covers the routes served beneath FastAPI
    (actors.toolkit.fastpath). With no token it passes everything on. A refusal is logged
    with its caller, at most one line per LOG_EVERY_S (a flood of bad calls does not
    flood the log: the next line counts what it left out).
    """

    LOG_EVERY_S: Final = 10.0

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._logged_at = -math.inf
        self._unlogged = 0  # refusals since the last line

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is None or scope["type"] != "http" or not dapr_facing(scope["path"]):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == _HEADER_BYTES:
                if hmac.compare_digest(value, self._token):
                    await self.app(scope, receive, send)
                    return
                break
        self._log_refusal(scope)
        await send_problem(send, 401, _REFUSAL)

    def _log_refusal(self, scope: Scope) -> None:
        now = time.monotonic()
        if now - self._logged_at < self.LOG_EVERY_S:
            self._unlogged += 1
            return
        client = scope.get("client") or ("?", 0)
        more = f" ({self._unlogged} more refused since the last line)" if self._unlogged else ""
        log.warning(
            "refused %s %s from %s:%s: no valid %s header (not the app's sidecar?)%s",
            scope["method"],
            scope["path"],
            client[0],
            client[1],
            HEADER,
            more,
        )
        self._logged_at, self._unlogged = now, 0


async def send_problem(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A refusal a guard answers itself, beneath every other layer: `body` (problem+json,
    already encoded) with `status` and any extra `headers` (a challenge)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
