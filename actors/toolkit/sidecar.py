"""An app's client for its own sidecar: one pooled HTTP connection set per process.

The SDK's default DaprActorHttpClient opens a new aiohttp session (and TCP
connection) for every state read, state write and reminder call. `SidecarHTTP` keeps
one pool of keep-alive connections for the life of the app (built in the FastAPI
lifespan); `SidecarActorClient` puts the SDK's actor client interface on it and is
handed to `ActorRuntime.register_actor(actor_client=...)`.

The pool is actors.toolkit.http1 (requests written by hand, answers parsed by httptools
in C), not aiohttp, nor httpx (about three times aiohttp's CPU per call, measured with
py-spy on the actor host). The actor host makes ~23 sidecar calls per order; on the
2-core VM a microbenchmark against a raw ASGI server measured the client process's CPU
per request: aiohttp 244 us at concurrency 1 and 123 us at 16, a bare asyncio.Protocol
client with httptools' parser 68 us and 16 us. `python -m bench.http_client` compares
aiohttp with Http1Pool the same way (182 -> 62 us at 1, 95 -> 19 us at 16, when written).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dapr.clients.base import DaprActorClientBase

from actors.toolkit.apitoken import sidecar_headers
from actors.toolkit.errors import TransientError
from actors.toolkit.http1 import Http1Error, Http1Pool


class SidecarUnavailableError(TransientError):
    """The sidecar could not be reached (connection refused, reset, timed out)."""


class SidecarTransport(Protocol):
    """What the sidecar clients need: one request, answered as (status, body)."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Raise SidecarUnavailableError when the sidecar cannot be reached."""
        ...


class SidecarHTTP:
    """One Http1Pool to `http://127.0.0.1:<port>`; answers (status, body).

    With an `api_token` (the app's DAPR_API_TOKEN), every request carries it.
    """

    def __init__(
        self,
        http_port: int,
        *,
        max_connections: int = 256,
        timeout: float = 30.0,
        api_token: str | None = None,
    ):
        self._port = http_port
        self._limit = max_connections
        self._timeout = timeout
        self._headers = sidecar_headers(api_token)
        self._pool: Http1Pool | None = None

    async def __aenter__(self) -> SidecarHTTP:
        self._pool = Http1Pool(
            "127.0.0.1",
            self._port,
            max_connections=self._limit,
            timeout=self._timeout,
            fixed_headers=self._headers,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        if self._pool is None:
            raise RuntimeError("SidecarHTTP used outside `async with`")
        try:
            return await self._pool.request(
                method, path, content=content, params=params, headers=headers
            )
        except Http1Error as exc:
            raise SidecarUnavailableError(f"{method} {path}: {exc}") from exc


class SidecarError(TransientError):
    """The sidecar answered an actor API call with an error status."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:300]!r}")
        self.status = status
        self.body = body


_JSON = {"content-type": "application/json"}


class SidecarActorClient(DaprActorClientBase):
    """Implements the SDK's actor client interface on the shared SidecarHTTP."""

    def __init__(self, http: SidecarTransport) -> None:
        self._http = http

    async def _send(self, method: str, url: str, data: bytes | None = None) -> bytes:
        status, body = await self._http.request(method, url, content=data, headers=_JSON)
        if status >= 300:
            raise SidecarError(method, url, status, body)
        return body

    async def invoke_method(
        self, actor_type: str, actor_id: str, method: str, data: bytes | None = None
    ) -> bytes:
        return await self._send(
            "POST", f"/v1.0/actors/{actor_type}/{actor_id}/method/{method}", data
        )

    async def save_state_transactionally(self, actor_type: str, actor_id: str, data: bytes) -> None:
        await self._send("PUT", f"/v1.0/actors/{actor_type}/{actor_id}/state", data)

    async def get_state(self, actor_type: str, actor_id: str, name: str) -> bytes:
        return await self._send("GET", f"/v1.0/actors/{actor_type}/{actor_id}/state/{name}")

    async def register_reminder(
        self, actor_type: str, actor_id: str, name: str, data: bytes
    ) -> None:
        await self._send("PUT", f"/v1.0/actors/{actor_type}/{actor_id}/reminders/{name}", data)

    async def unregister_reminder(self, actor_type: str, actor_id: str, name: str) -> None:
        await self._send("DELETE", f"/v1.0/actors/{actor_type}/{actor_id}/reminders/{name}")

    async def register_timer(self, actor_type: str, actor_id: str, name: str, data: bytes) -> None:
        await self._send("PUT", f"/v1.0/actors/{actor_type}/{actor_id}/timers/{name}", data)

    async def unregister_timer(self, actor_type: str, actor_id: str, name: str) -> None:
        await self._send("DELETE", f"/v1.0/actors/{actor_type}/{actor_id}/timers/{name}")
