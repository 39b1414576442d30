"""Actor methods every event-sourced actor has (wire names PascalCase)."""

from __future__ import annotations

from dapr.actor import ActorInterface, actormethod


class EventSourcedInterface(ActorInterface):
    @actormethod(name="Get")  # type: ignore[untyped-decorator]
    async def get(self) -> bytes:
        """{"ok": true, "result": <view>, "aggregate_version": n}"""

    @actormethod(name="History")  # type: ignore[untyped-decorator]
    async def history(self, payload: bytes) -> bytes:
        """Payload {"after": 0, "limit": 1..100}; result {"events": [...], "next_after"}."""

    @actormethod(name="Replay")  # type: ignore[untyped-decorator]
    async def replay(self) -> bytes:
        """Result {"matches_snapshot": bool, "events_replayed": n, "replayed": <view>}."""
