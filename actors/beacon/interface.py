"""Wire contract of BeaconActor (method names are PascalCase on the wire)."""

from __future__ import annotations

from dapr.actor import ActorInterface, actormethod


class BeaconActorInterface(ActorInterface):
    @actormethod(name="Touch")  # type: ignore[untyped-decorator]
    async def touch(self, payload: bytes) -> bytes: ...

    @actormethod(name="Get")  # type: ignore[untyped-decorator]
    async def get(self) -> bytes: ...

    @actormethod(name="Arm")  # type: ignore[untyped-decorator]
    async def arm(self, payload: bytes) -> bytes: ...

    @actormethod(name="Disarm")  # type: ignore[untyped-decorator]
    async def disarm(self) -> bytes: ...
