"""Rebuild every read model from the actors' event histories: `python -m apps.projector.rebuild`.

1. begin: a fresh generation g<ms> is marked as rebuilding (TTL, kept alive). From then on
   the live projector writes each event to the active generation AND to this one.
2. enumerate: SCAN the actor state store for "<app id>||<ActorType>||<id>||aggregate".
3. replay: page through each actor's History through a sidecar (100 events a page, N
   actors at a time), read each event through the EventReader the live projector uses
   (apps.projector.reader: upcast, a newer schema version refused) and fold each page
   into the new generation, with the same version checks as live projection.
4. switch: SET active / DEL rebuilding in one MULTI, refused if the marker is not ours.
5. drop: the previous generation (and leftovers of abandoned rebuilds) is deleted.

Nothing is lost: an event the live projector applied before step 1 was saved in its
actor's log before it was published, so step 3 reads it; an event applied after step 1
is written to the new generation live (an apply that read the pointers before step 1 is
refused by its script's pointer check and redone for both generations). Nothing doubles:
the row's version bookkeeping makes the history copy and the live copy of one event apply
once. See docs/read-side.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from actors import catalog
from actors.toolkit.apitoken import dapr_api_token_from_env
from actors.toolkit.client import ActorClient, RuntimeUnavailableError
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.redis_connection import redis_client, redis_password_from_env
from actors.toolkit.sidecar import SidecarHTTP
from apps.projector.generations import DEFAULT_TTL_S, Generations, RebuildError
from apps.projector.projections import HANDLERS, ROW_TYPES, InvalidEventError
from apps.projector.reader import EventReader, NewerSchemaError
from apps.projector.store import ProjectionStore
from readmodels.keys import Layout, prefix_from_env

PAGE: Final = 100
LABELS: Final = {
    catalog.ORDER_ACTOR: "orders",
    catalog.INVENTORY_ACTOR: "inventory",
    catalog.WALLET_ACTOR: "wallets",
}
ATTEMPTS: Final = 5


@dataclasses.dataclass
class Progress:
    """Actors done per type, events folded; printed at most every `every_s` seconds."""

    totals: dict[str, int]
    out: Callable[[str], None] = print
    every_s: float = 1.0
    done: Counter[str] = dataclasses.field(default_factory=Counter)
    events: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    _shown: float = 0.0

    def actor_done(self, actor_type: str, events: int) -> None:
        self.done[actor_type] += 1
        self.events += events
        if time.monotonic() - self._shown >= self.every_s:
            self.show()

    def show(self) -> None:
        self._shown = time.monotonic()
        parts = [f"{LABELS[t]} {self.done[t]}/{n}" for t, n in self.totals.items()]
        rate = self.events / max(time.monotonic() - self.started, 1e-6)
        self.out(f"  {'  '.join(parts)}  events {self.events} ({rate:.0f}/s)")


@dataclasses.dataclass(frozen=True)
class Report:
    generation: str
    replaced: str
    actors: dict[str, int]
    events: int
    elapsed_s: float
    dropped_keys: int


async def scan_actors(redis: Redis, *, app_id: str, actor_type: str) -> list[str]:
    """Ids of every actor of `actor_type` with a snapshot in the actor state store."""
    pattern = f"{app_id}||{actor_type}||*||aggregate"
    ids = {str(key).split("||")[2] async for key in redis.scan_iter(match=pattern, count=1000)}
    return sorted(ids)


class Rebuilder:
    """One rebuild: a new generation from every actor's history, then the switch."""

    def __init__(
        self,
        redis: Redis,
        actors: ActorClient,
        *,
        layout: Layout | None = None,
        app_id: str = "actor-host",
        concurrency: int = 16,
        out: Callable[[str], None] = print,
        ttl_s: int = DEFAULT_TTL_S,
        retry_delay_s: float = 0.2,
        reader: EventReader | None = None,
    ) -> None:
        self._redis = redis
        self._actors = actors
        self._app_id = app_id
        self._concurrency = concurrency
        self._out = out
        self._ttl_s = ttl_s
        self._retry_delay_s = retry_delay_s
        self._reader = reader or EventReader.for_actors()
        layout = layout or Layout()
        self.store = ProjectionStore(redis, layout=layout)
        self.generations = Generations(redis, layout=layout)

    async def run(self, *, keep_old: bool = False, force: bool = False) -> Report:
        started = time.monotonic()
        name = f"g{time.time_ns() // 1_000_000}"
        await self.generations.begin(name, ttl_s=self._ttl_s, force=force)
        self._out(f"rebuilding the read models into generation {name}")
        alive = asyncio.create_task(self._keep_alive(name))
        try:
            targets = {t: await self._scan(t) for t in ROW_TYPES}
            progress = Progress({t: len(ids) for t, ids in targets.items()}, out=self._out)
            await self._replay_all(name, targets, progress)
            progress.show()
            replaced = await self.generations.switch(name)
        except BaseException:
            await self._give_up(name)
            raise
        finally:
            alive.cancel()
        self._out(f"switched: queries now read {name} (was {replaced})")
        dropped = 0 if keep_old else await self._drop_unused()
        totals = {LABELS[t]: len(ids) for t, ids in targets.items()}
        return Report(name, replaced, totals, progress.events, time.monotonic() - started, dropped)

    async def _scan(self, actor_type: str) -> list[str]:
        return await scan_actors(self._redis, app_id=self._app_id, actor_type=actor_type)

    async def _replay_all(
        self, name: str, targets: dict[str, list[str]], progress: Progress
    ) -> None:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for actor_type, ids in targets.items():
            for actor_id in ids:
                queue.put_nowait((actor_type, actor_id))

        async def worker() -> None:
            while not queue.empty():
                actor_type, actor_id = queue.get_nowait()
                events = await self.replay(name, actor_type=actor_type, actor_id=actor_id)
                progress.actor_done(actor_type, events)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self._concurrency):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first failure says it best

    async def replay(self, generation: str, *, actor_type: str, actor_id: str) -> int:
        """Fold one actor's whole history into `generation`; returns the events read."""
        count = 0
        async for page in self.history(actor_type, actor_id):
            if page:
                await self.store.project_history(generation, page)
                count += len(page)
        return count

    async def history(self, actor_type: str, actor_id: str) -> AsyncIterator[list[EventEnvelope]]:
        """The actor's event log, page by page, oldest first."""
        after: int | None = 0
        while after is not None:
            result = await self._page(actor_type, actor_id, after)
            events = [EventEnvelope.model_validate(e) for e in result.get("events") or []]
            yield self._reader.read_all(e for e in events if e.type in HANDLERS)
            next_after = result.get("next_after")
            after = int(next_after) if next_after is not None else None

    async def _page(self, actor_type: str, actor_id: str, after: int) -> dict[str, Any]:
        """One History page; a sidecar or host hiccup is retried with backoff."""
        for attempt in range(ATTEMPTS - 1):
            with contextlib.suppress(RuntimeUnavailableError):
                return await self._history_call(actor_type, actor_id, after)
            await asyncio.sleep(self._retry_delay_s * 2**attempt)
        return await self._history_call(actor_type, actor_id, after)

    async def _history_call(self, actor_type: str, actor_id: str, after: int) -> dict[str, Any]:
        payload = {"after": after, "limit": PAGE}
        answer = await self._actors.invoke(actor_type, actor_id, "History", payload)
        return answer.result

    async def _keep_alive(self, name: str) -> None:
        while True:
            await asyncio.sleep(self._ttl_s / 4)
            if not await self.generations.keep_alive(name, ttl_s=self._ttl_s):
                break
        self._out(f"!! the rebuild marker for {name} is gone; the switch will be refused")

    async def _give_up(self, name: str) -> None:
        with contextlib.suppress(Exception):
            await self.generations.abandon(name)
            await self.generations.drop(name)

    async def _drop_unused(self) -> int:
        dropped = 0
        for name in sorted(await self.generations.unused()):
            count = await self.generations.drop(name)
            self._out(f"dropped generation {name} ({count} keys)")
            dropped += count
        return dropped


# --- command line ------------------------------------------------------------------------------


def _defaults() -> tuple[str, int, str | None, str | None]:
    """Redis, the projector's sidecar, its Dapr API token and Redis's password: from the
    environment, else the local cluster's."""
    redis_host, dapr_http = os.environ.get("ORDERFLOW_REDIS_HOST"), os.environ.get("DAPR_HTTP_PORT")
    token, password = dapr_api_token_from_env(), redis_password_from_env()
    if redis_host and dapr_http:
        return redis_host, int(dapr_http), token, password
    from cluster.config import PROJECTOR_PORTS, ClusterConfig  # the dev layout (not in images)
    from cluster.tokens import read_tokens

    config = ClusterConfig.from_env()
    local = read_tokens(config.state_dir)
    return (
        redis_host or config.redis_host,
        int(dapr_http or config.port(PROJECTOR_PORTS.http)),
        token or (local.dapr if local else None),
        password or (local.redis if local else None),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    redis_host, dapr_http, token, password = _defaults()
    parser = argparse.ArgumentParser(
        prog="python -m apps.projector.rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redis", default=redis_host, help=f"host:port (default {redis_host})")
    parser.add_argument(
        "--dapr-http", type=int, default=dapr_http, help=f"a sidecar's HTTP port ({dapr_http})"
    )
    # DAPR_API_TOKEN and ORDERFLOW_REDIS_PASSWORD, not flags: not in `ps`
    parser.set_defaults(dapr_api_token=token, redis_password=password)
    parser.add_argument("--prefix", default=prefix_from_env(), help="key prefix")
    parser.add_argument("--app-id", default="actor-host", help="the actor hosts' Dapr app id")
    parser.add_argument("--concurrency", type=int, default=16, help="actors replayed at once")
    parser.add_argument("--keep-old", action="store_true", help="keep the replaced generation")
    parser.add_argument("--force", action="store_true", help="take over a running rebuild")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> Report:
    redis = redis_client(args.redis, password=args.redis_password)
    try:
        async with SidecarHTTP(args.dapr_http, api_token=args.dapr_api_token) as http:
            rebuilder = Rebuilder(
                redis,
                ActorClient(http),
                layout=Layout(args.prefix),
                app_id=args.app_id,
                concurrency=args.concurrency,
                out=lambda line: print(line, flush=True),
            )
            return await rebuilder.run(keep_old=args.keep_old, force=args.force)
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(_main(args))
    except (
        RebuildError,
        RuntimeUnavailableError,
        RedisError,
        OSError,
        NewerSchemaError,
        InvalidEventError,
    ) as exc:
        print(f"rebuild failed: {exc}", file=sys.stderr)
        return 1
    actors = ", ".join(f"{n} {label}" for label, n in report.actors.items())
    print(
        f"rebuilt {report.generation} from {actors}: {report.events} events in "
        f"{report.elapsed_s:.1f}s; dropped {report.dropped_keys} old keys"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
