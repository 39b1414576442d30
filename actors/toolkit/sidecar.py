"""The actor host's client for its own sidecar: one pooled HTTP client per process.

The SDK's default DaprActorHttpClient opens a new aiohttp session (and TCP
connection) for every state read, state write and reminder call. This client keeps
one httpx connection pool for the life of the app and is handed to
`ActorRuntime.register_actor(actor_client=...)`.
"""

from __future__ import annotations

import httpx
from dapr.clients.base import DaprActorClientBase


class SidecarError(RuntimeError):
    """The sidecar answered an actor API call with an error status."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:300]!r}")
        self.status = status
        self.body = body


class SidecarActorClient(DaprActorClientBase):
    """Implements the SDK's actor client interface on a shared httpx.AsyncClient."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _send(self, method: str, url: str, data: bytes | None = None) -> bytes:
        resp = await self._http.request(
            method, url, content=data, headers={"content-type": "application/json"}
        )
        if resp.status_code >= 300:
            raise SidecarError(method, url, resp.status_code, resp.content)
        return resp.content

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


def sidecar_http_client(http_port: int, *, max_connections: int = 256) -> httpx.AsyncClient:
    """The pooled client an app uses for every call to its sidecar."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}",
        timeout=httpx.Timeout(30.0, connect=5.0),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )
