"""An app's client for its own sidecar: one pooled HTTP connection set per process.

The SDK's default DaprActorHttpClient opens a new aiohttp session (and TCP
connection) for every state read, state write and reminder call. `SidecarHTTP` keeps
one aiohttp session with keep-alive connections for the life of the app (built in the
FastAPI lifespan); `SidecarActorClient` puts the SDK's actor client interface on it
and is handed to `ActorRuntime.register_actor(actor_client=...)`. aiohttp rather than
httpx here: on the hot path httpx/httpcore cost about three times the CPU per call
(measured with py-spy on the actor host).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import aiohttp
from dapr.clients.base import DaprActorClientBase

from actors.toolkit.errors import TransientError


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
    """One aiohttp session to `http://127.0.0.1:<port>`; answers (status, body)."""

    def __init__(self, http_port: int, *, max_connections: int = 256, timeout: float = 30.0):
        self._base = f"http://127.0.0.1:{http_port}"
        self._limit = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=5.0)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SidecarHTTP:
        connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            self._base, connector=connector, timeout=self._timeout, auto_decompress=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("SidecarHTTP used outside `async with`")
        try:
            async with self._session.request(
                method, path, data=content, params=params, headers=headers
            ) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SidecarUnavailableError(f"{method} {path}: {exc!r}") from exc


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
