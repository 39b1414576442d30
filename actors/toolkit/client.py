"""Calling actors through a Dapr sidecar: one pooled client, typed results, typed errors.

    ActorClient.invoke(actor_type, actor_id, method, payload) -> ActorResult
        200 + {"ok": true, ...}   -> ActorResult
        200 + {"ok": false, ...}  -> raises the registered DomainError subclass
        anything else             -> raises RuntimeUnavailableError (retry later)

    TypedClient(actors, spec).send(actor_id, command model, message_id=...) -> ActorResult
        the wire method comes from the aggregate's spec (actors.toolkit.aggregate), and a
        refusal is raised as the class the spec lists for its code

Construct one ActorClient per process (in an app's lifespan) and share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.toolkit import codec
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.domain import Command
from actors.toolkit.errors import DomainError, TransientError, error_from_dict
from actors.toolkit.sidecar import SidecarTransport, SidecarUnavailableError
from actors.toolkit.tracing import current_traceparent


class RuntimeUnavailableError(TransientError):
    """The sidecar or the actor host could not answer; the call may be retried."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class ActorResult:
    """The `ok` envelope of an actor method: its result and what it changed."""

    result: dict[str, Any]
    aggregate_version: int = 0
    events: tuple[dict[str, Any], ...] = ()
    duplicate: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_envelope(cls, body: dict[str, Any]) -> ActorResult:
        return cls(
            result=body.get("result") or {},
            aggregate_version=int(body.get("aggregate_version", 0)),
            events=tuple(body.get("events") or ()),
            duplicate=bool(body.get("duplicate", False)),
            raw=body,
        )


def parse_envelope(
    status: int, content: bytes, codes: Mapping[str, type[DomainError]] | None = None
) -> ActorResult:
    """Turn a sidecar answer into a result, a DomainError or RuntimeUnavailableError."""
    if status != 200:
        raise RuntimeUnavailableError(
            f"actor call failed with HTTP {status}: {content[:200]!r}", status=status
        )
    try:
        body = codec.loads(content)
    except ValueError as exc:
        raise RuntimeUnavailableError(f"actor answered non-JSON: {content[:200]!r}") from exc
    if not isinstance(body, dict) or "ok" not in body:
        raise RuntimeUnavailableError(f"actor answered no envelope: {content[:200]!r}")
    if body["ok"] is not True:
        raise error_from_dict(body.get("error") or {}, codes)
    return ActorResult.from_envelope(body)


_JSON = {"content-type": "application/json"}


class ActorClient:
    """Invokes actor methods through the sidecar at `http` (the process's SidecarHTTP)."""

    def __init__(self, http: SidecarTransport) -> None:
        self._http = http

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        payload: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        codes: Mapping[str, type[DomainError]] | None = None,
    ) -> ActorResult:
        url = f"/v1.0/actors/{actor_type}/{actor_id}/method/{method}"
        content = codec.dumps(payload or {})
        traceparent = current_traceparent()
        if traceparent:  # daprd's span of this call, and the actor's turn, join our trace
            headers = {**(headers or _JSON), "traceparent": traceparent}
        try:
            status, body = await self._http.request(
                "POST", url, content=content, headers=headers or _JSON
            )
        except SidecarUnavailableError as exc:
            raise RuntimeUnavailableError(f"sidecar unreachable: {exc}") from exc
        return parse_envelope(status, body, codes)


def command(
    payload: dict[str, Any], *, message_id: str | None, **meta: str | None
) -> dict[str, Any]:
    """A command payload with its message id (and correlation/causation ids) attached."""
    body = dict(payload)
    if message_id:
        body["message_id"] = message_id
    body.update({key: value for key, value in meta.items() if value})
    return body


class TypedClient:
    """The client of one actor type: its commands, plus the audit-trail methods."""

    def __init__(self, actors: ActorClient, spec: AggregateSpec) -> None:
        self._actors = actors
        self.spec = spec
        self._codes = spec.error_codes

    @property
    def actor_type(self) -> str:
        return self.spec.actor_type

    async def send(
        self,
        actor_id: str,
        message: Command,
        *,
        message_id: str | None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> ActorResult:
        """Run one command; a refusal raises the DomainError class its code names."""
        body = command(
            message.model_dump(mode="json"),
            message_id=message_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        return await self._call(actor_id, self.spec.method_of(message), body)

    async def _call(
        self, actor_id: str, method: str, payload: dict[str, Any] | None = None
    ) -> ActorResult:
        return await self._actors.invoke(
            self.actor_type, actor_id, method, payload, codes=self._codes
        )

    async def get(self, actor_id: str) -> ActorResult:
        return await self._call(actor_id, "Get")

    async def history(self, actor_id: str, *, after: int = 0, limit: int = 50) -> ActorResult:
        """One page of the event log: result {"events": [...], "next_after": int | None}."""
        return await self._call(actor_id, "History", {"after": after, "limit": limit})

    async def replay(self, actor_id: str) -> ActorResult:
        """Rebuild state from the whole history: result {"matches_snapshot": bool, ...}."""
        return await self._call(actor_id, "Replay")
