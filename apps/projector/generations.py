"""Generations of the read models: which one queries read, which one a rebuild fills.

begin(name)    SET <base>rebuilding name NX EX ttl: from now on live projection writes
               every event to the active generation AND to `name`
keep_alive     refresh the TTL while the rebuild runs; a crashed rebuild's marker
               expires, and live projection stops writing to its generation
switch(name)   WATCH, check the marker is still ours, then MULTI SET active / DEL
               rebuilding EXEC: queries move to `name` in one step
drop(name)     UNLINK every key of a generation no one reads any more
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis
from redis.exceptions import WatchError

from apps.projector.store import immediate
from readmodels.keys import DEFAULT_GENERATION, Layout

DEFAULT_TTL_S: Final = 60
DROP_BATCH: Final = 500


class RebuildError(RuntimeError):
    """A rebuild cannot start or finish (another one runs, or its marker expired)."""


class Generations:
    def __init__(self, redis: Redis, *, layout: Layout | None = None) -> None:
        self._redis = redis
        self.layout = layout or Layout()

    async def current(self) -> tuple[str, str | None]:
        """(active generation, generation being rebuilt or None)."""
        active, rebuilding = await self._redis.mget(
            self.layout.active_key, self.layout.rebuilding_key
        )
        return str(active or DEFAULT_GENERATION), (str(rebuilding) if rebuilding else None)

    async def begin(self, name: str, *, ttl_s: int = DEFAULT_TTL_S, force: bool = False) -> None:
        started = await self._redis.set(self.layout.rebuilding_key, name, ex=ttl_s, nx=not force)
        if not started:
            _, running = await self.current()
            raise RebuildError(
                f"a rebuild into generation {running} is running; wait for it, or pass "
                "--force to take over (its marker expires within a minute if it died)"
            )

    async def keep_alive(self, name: str, *, ttl_s: int = DEFAULT_TTL_S) -> bool:
        """Refresh the marker's TTL; False when it is gone or another rebuild owns it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await immediate(pipe.watch(self.layout.rebuilding_key))
                if await immediate(pipe.get(self.layout.rebuilding_key)) != name:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.expire(self.layout.rebuilding_key, ttl_s)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def switch(self, name: str) -> str:
        """Make `name` the active generation; returns the one it replaces."""
        layout = self.layout
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await immediate(pipe.watch(layout.rebuilding_key, layout.active_key))
                if await immediate(pipe.get(layout.rebuilding_key)) != name:
                    raise RebuildError(
                        f"the rebuild marker for {name} expired or was taken over: live "
                        "events may be missing from it, so it is not switched to; run again"
                    )
                old: str | None = await immediate(pipe.get(layout.active_key))
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(layout.active_key, name)
                pipe.delete(layout.rebuilding_key)
                # freshness carries over until the next live event writes its own
                pipe.copy(layout.generation(old).meta, layout.generation(name).meta)
                await pipe.execute()
            except WatchError as exc:
                raise RebuildError("the rebuild marker changed during the switch") from exc
        return str(old or DEFAULT_GENERATION)

    async def abandon(self, name: str) -> None:
        """Give up a rebuild: live projection stops writing to its generation."""
        if await self._redis.get(self.layout.rebuilding_key) == name:
            await self._redis.delete(self.layout.rebuilding_key)

    async def drop(self, name: str) -> int:
        """Delete every key of generation `name` (never the active one); returns the count."""
        active, rebuilding = await self.current()
        if name in (active, rebuilding):
            raise RebuildError(f"generation {name} is in use")
        dropped, batch = 0, []
        async for key in self._redis.scan_iter(
            match=self.layout.generation_match(name), count=DROP_BATCH
        ):
            batch.append(key)
            if len(batch) >= DROP_BATCH:
                dropped += await self._redis.unlink(*batch)
                batch = []
        if batch:
            dropped += await self._redis.unlink(*batch)
        return dropped

    async def unused(self) -> set[str]:
        """Generations with keys that are neither active nor being rebuilt (leftovers)."""
        active, rebuilding = await self.current()
        names: set[str] = set()
        async for key in self._redis.scan_iter(
            match=self.layout.all_generations_match, count=DROP_BATCH
        ):
            name = self.layout.generation_of(str(key))
            if name is not None:
                names.add(name)
        return names - {active, rebuilding or active}
