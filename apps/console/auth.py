"""Who may use the ops console: the operators of a clients file.

The console reads the clients file the gateway reads (its format:
actors/toolkit/clientkeys.py), named by `ORDERFLOW_CONSOLE_CLIENTS`, and admits the
clients with the `operator` scope. An operator signs in as a browser asks, with HTTP Basic
credentials (user: the client's id, password: its key), or sends `Authorization: Bearer
<key>` (`python -m apps.console.redrive`, curl). Without a known key every page and API
route answers 401 with a Basic challenge (the browser's sign-in dialog); a known client
without the operator scope 403. Open to anyone: the probes (`/healthz/app`), `/metrics`
(Prometheus), and the routes daprd calls, which the app token guards (AppTokenGuard).

Every write (a redrive) is logged with the operator who made it. A changed file is read
again within a second. Unset: the console is open to whoever reaches its port (a local
cluster binds it to loopback), and says so at start.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from actors.toolkit import clientkeys
from actors.toolkit.apitoken import dapr_facing, send_problem
from actors.toolkit.clientkeys import OPERATOR, ClientsFileWatch, ClientSpec, key_digest

CLIENTS_ENV: Final = "ORDERFLOW_CONSOLE_CLIENTS"
OPEN_PATHS: Final = frozenset({"/healthz", "/healthz/app", "/metrics"})
REALM: Final = "Orderflow ops console"
# the state key under which a route finds the operator who called it
OPERATOR_STATE: Final = "operator"

log = logging.getLogger("orderflow.console.auth")


def load_clients(path: Path) -> list[ClientSpec]:
    return clientkeys.load_clients(path, setting=CLIENTS_ENV)


def _problem(status: int, code: str, detail: str) -> bytes:
    title = "Unauthorized" if status == 401 else "Forbidden"
    return json.dumps(
        {
            "type": f"https://orderflow.dev/problems/{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()


_REQUIRED: Final = _problem(
    401,
    "auth.required",
    "sign in as an operator: user = the client's id, password = its key (Basic), or send "
    f"`Authorization: Bearer <key>`; the console's clients file ({CLIENTS_ENV}) lists who "
    "may",
)
_CHALLENGES: Final = (
    (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()),
    (b"www-authenticate", f'Bearer realm="{REALM}"'.encode()),
)


class OperatorGuard:
    """ASGI middleware: only the operators of `clients` past it (see the module docstring).
    With a `watch`, a changed clients file replaces them as the next request comes."""

    def __init__(
        self, app: ASGIApp, *, clients: list[ClientSpec], watch: ClientsFileWatch | None = None
    ) -> None:
        self.app = app
        self.watch = watch
        self._by_digest = {c.key_sha256: c for c in clients}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or dapr_facing(path):
            await self.app(scope, receive, send)
            return
        if self.watch is not None and (clients := self.watch.changed(time.monotonic())) is not None:
            self._by_digest = {c.key_sha256: c for c in clients}
            log.info("the console's clients file changed: %d clients now", len(clients))
        client = self._client(scope)
        if client is None:
            await send_problem(send, 401, _REQUIRED, _CHALLENGES)
            return
        if OPERATOR not in client.scopes:
            detail = (
                f"client {client.id!r} (scopes {sorted(client.scopes)}) is no operator: "
                "the console admits the operator scope only"
            )
            await send_problem(send, 403, _problem(403, "auth.forbidden", detail))
            return
        scope.setdefault("state", {})[OPERATOR_STATE] = client.id
        if scope["method"] not in ("GET", "HEAD"):  # a write: who made it
            log.info("%s %s by operator %s", scope["method"], path, client.id)
        await self.app(scope, receive, send)

    def _client(self, scope: Scope) -> ClientSpec | None:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        credentials = clientkeys.presented(authorization)
        if credentials is None:
            return None
        client = self._by_digest.get(key_digest(credentials.key))
        if client is None or credentials.client_id not in (None, client.id):
            return None  # Basic credentials name the client whose key they carry
        return client
