"""The Redis adapter of the projections: read the rows, fold, write them back atomically.

A bulk delivery (`project_batch`; `project_live` is a batch of one) takes at most two round
trips however many events and rows it carries, and one when it knows its rows:
    read    one pipeline: HGETALL every row the batch touches, in each generation to write:
            the active one, and the one being rebuilt if any (pointers cached in-process);
            but not a row it knows (apps.projector.known: one it read or wrote itself, or
            one whose first event is its aggregate's first, taken to be absent): the
            apply's check below tells a wrong guess, which goes round again from a read
    fold    pure (apps.projector.batch, on apps.projector.projections): a row's events
            fold one at a time in delivery order (each event's own projection feeds the
            stats), the row is written once
    apply   one pipeline of EVALSHA, one per row written, each an atomic Lua script
            (apps.projector.apply, which builds its arguments too): check
            that the pointers still are what we assumed and that the row's bookkeeping
            (aggregate_version, applied_above) is what we read, then HSET the row,
            ZREM/ZADD its index moves, HINCRBY + EXPIREAT its counters, HSET the freshness
            meta
A failed check (a generation switch, or another writer of the same row) applies nothing
of that row, and its events go round again, alone, from a fresh read (pointers read again
after a switch): a row's updates land all together, in the generation(s) current at that
instant, or not at all. In-process, a batch holds the striped locks of all its rows
(taken in stripe order: no deadlock), the ones a single event takes too, so the updates
of one aggregate queue rather than collide.
The script runs by its SHA. A Redis that lost it (restarted, SCRIPT FLUSH) answers
NOSCRIPT, having run nothing: the script is loaded and those calls sent again. (redis-py's
Script in a pipeline would send SCRIPT EXISTS before every pipeline: a third round trip.)
Failures are per event: a Redis error fails the events of the rows it concerns (all of
them when the connection fails), an event its projection cannot read fails alone.
A rebuild folds pages of history into its own generation (`project_history`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from typing import Any, Final, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.redis_multiplex import MultiplexedRedis
from apps.projector.apply import APPLY, DEFAULT_COUNTER_TTL, ApplyArgs
from apps.projector.batch import Group, Result, Stored, Write, fold_each, groups_of, row_key, settle
from apps.projector.known import KnownRows
from apps.projector.projections import ROW_TYPES, Projection, fold
from readmodels.keys import Generation, Layout
from readmodels.rows import from_hash, iso

REJECTED_KEPT: Final = 1000
T = TypeVar("T")


async def immediate(value: Awaitable[T] | Any) -> T:
    """The result of a command a watching pipeline runs at once (typed as either form)."""
    result: T = await value
    return result


class ProjectionStore:
    """Applies projections to the read models in Redis (one shared connection pool)."""

    def __init__(
        self,
        redis: Redis,
        *,
        layout: Layout | None = None,
        counter_ttl: dt.timedelta = DEFAULT_COUNTER_TTL,
        stripes: int = 64,
        multiplexed: MultiplexedRedis | None = None,
        known: KnownRows | None = None,
    ) -> None:
        self.redis = redis
        # the two round trips of a batch (HGETALLs, EVALSHAs) over the app's shared
        # connection when given (text replies): redis-py's pipeline was ~30 % of the
        # projector's CPU per event; else through `redis`'s pool
        self._multiplexed = multiplexed
        self.layout = layout or Layout()
        self._apply = ApplyArgs(self.layout, counter_ttl)
        self._locks = [asyncio.Lock() for _ in range(stripes)]
        self._sha = redis.register_script(APPLY).sha  # run by hand in pipelines (docstring)
        self._pointers: tuple[str, str] | None = None  # (active, rebuilding), "" = unset
        self.known = known if known is not None else KnownRows()

    @contextlib.asynccontextmanager
    async def _locked(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the lock stripes of these row keys, taken in stripe order (no deadlock)."""
        async with contextlib.AsyncExitStack() as stack:
            for stripe in sorted({hash(key) % len(self._locks) for key in keys}):
                await stack.enter_async_context(self._locks[stripe])
            yield

    async def _current_pointers(self, *, refresh: bool = False) -> tuple[str, str]:
        if self._pointers is None or refresh:
            found = await self.redis.mget(self.layout.active_key, self.layout.rebuilding_key)
            self._pointers = (str(found[0] or ""), str(found[1] or ""))
        return self._pointers

    def _live_generations(self, pointers: tuple[str, str]) -> list[Generation]:
        active, rebuilding = pointers
        names = [active] + ([rebuilding] if rebuilding not in ("", active) else [])
        return [self.layout.generation(name) for name in names]

    async def project_live(self, envelope: EventEnvelope, *, applied_at: dt.datetime) -> Projection:
        """Apply one delivered event to the active generation (and to one being rebuilt)."""
        [result] = await self.project_batch([envelope], applied_at=applied_at)
        if isinstance(result, BaseException):
            raise result
        return result

    async def project_batch(
        self, envelopes: Sequence[EventEnvelope], *, applied_at: dt.datetime
    ) -> list[Result]:
        """Apply delivered events (any aggregates, any order, repeats too) like `project_live`
        one by one, in two round trips. One result per envelope, in order: its projection in
        the active generation, or the error that kept it from being applied."""
        groups = groups_of(envelopes)
        results: dict[int, Result] = {}
        async with self._locked(group.key for group in groups):
            refresh, guess = False, True
            try:
                while groups:
                    groups, refresh = await self._round(
                        groups, results, refresh=refresh, guess=guess, applied_at=applied_at
                    )
                    guess = False  # what goes round again is read afresh
            except Exception as exc:  # Redis unavailable: whatever is not settled failed
                for place in range(len(envelopes)):
                    results.setdefault(place, exc)
        return [results[place] for place in range(len(envelopes))]

    async def _round(
        self,
        groups: list[Group],
        results: dict[int, Result],
        *,
        refresh: bool,
        guess: bool,
        applied_at: dt.datetime,
    ) -> tuple[list[Group], bool]:
        """One read-fold-apply pass: settles what it can; the groups to go round again (a
        check failed) and whether the pointers must be read again. With `guess`, the rows
        it knows are not read (`_rows`)."""
        pointers = await self._current_pointers(refresh=refresh)
        gens = self._live_generations(pointers)
        read, guessed = await self._rows(groups, gens, guess=guess)
        folded = [
            (group, fold_each(gens, read[n * len(gens) : (n + 1) * len(gens)], group))
            for n, group in enumerate(groups)
        ]
        again: list[Group] = []
        for n, (group, nothing) in enumerate(folded):
            if nothing.applied:
                continue
            if n in guessed:  # nothing to write, so no check: only a row read may say so
                again.append(group)  # (a row lost under it, an everysec Redis's crash)
            else:
                settle(results, group, nothing.each)  # duplicates, or failed
        # the row of the batch's last applied event is written last: its meta stays, as
        # when the events come one at a time
        writing = sorted(((g, f) for g, f in folded if f.applied), key=lambda gf: gf[1].last_place)
        calls = [
            self._apply.args(f.writes, pointers=pointers, applied_at=applied_at) for _, f in writing
        ]
        outcomes = await self._run_scripts(calls)
        for (group, f), outcome in zip(writing, outcomes, strict=True):
            if outcome == 1:
                settle(results, group, f.each)
                self._wrote(f.writes)
                continue
            self.known.forget(write.key for write in f.writes)
            if isinstance(outcome, BaseException):
                settle(results, group, [outcome] * len(f.each))
            else:  # 0: another writer changed the row (or a guess was wrong); -1: the
                again.append(group)  # pointers moved
        return again, -1 in outcomes

    async def _rows(
        self, groups: Sequence[Group], gens: Sequence[Generation], *, guess: bool
    ) -> tuple[list[Stored], set[int]]:
        """Each group's row in each of `gens` (group by group), and the groups with a row
        not read: read in one round trip, but with `guess`, a row known (`self.known`) or
        new (the group holds its aggregate's first event) is not read. What is read
        becomes known."""
        keys = [gen.key(group.key) for group in groups for gen in gens]
        rows: list[Stored | None] = [None] * len(keys)
        guessed: set[int] = set()
        for n, group in enumerate(groups if guess else ()):
            new = min(e.aggregate_version for e in group.envelopes) == 1
            span = range(n * len(gens), (n + 1) * len(gens))
            for at in span:
                known = self.known.get(keys[at])
                rows[at] = known if known is not None else ({} if new else None)
            if any(rows[at] is not None for at in span):
                guessed.add(n)
        unknown = [at for at, row in enumerate(rows) if row is None]
        if unknown:
            for at, found in zip(
                unknown, await self._read([keys[at] for at in unknown]), strict=True
            ):
                rows[at] = found
                if not isinstance(found, BaseException):
                    self.known.put(keys[at], found)
        return [row if row is not None else {} for row in rows], guessed

    def _wrote(self, writes: Sequence[Write]) -> None:
        """Each row as APPLY left it: the row as read, with the fields it wrote."""
        for write in writes:
            applied = write.projection.applied
            self.known.put(write.key, write.stored | write.fields if applied else write.stored)

    async def project_history(
        self, generation: str, envelopes: Sequence[EventEnvelope]
    ) -> Projection:
        """Fold envelopes of ONE aggregate into `generation` (a rebuild's page of history)."""
        gen, key, first = self.layout.generation(generation), row_key(envelopes[0]), envelopes[0]
        async with self._locked([key]):
            while True:
                [stored] = await self._read([gen.key(key)])
                if isinstance(stored, BaseException):
                    raise stored
                row = from_hash(ROW_TYPES[first.aggregate_type], first.aggregate_id, stored)
                projection = fold(row, envelopes)
                if not projection.applied:
                    return projection
                write = Write(gen, gen.key(key), stored, projection)
                args = self._apply.args([write], pointers=None, applied_at=None)
                [outcome] = await self._run_scripts([args])
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome == 1:
                    return projection

    async def _read(self, keys: Sequence[str]) -> list[Stored]:
        """HGETALL every key, one round trip; a key that fails answers its error."""
        if self._multiplexed is not None:
            replies = await self._multiplexed.execute_each([("HGETALL", key) for key in keys])
            return [r if isinstance(r, BaseException) else _pairs(r) for r in replies]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            found: list[Stored] = await pipe.execute(raise_on_error=False)
        return found

    async def _run_scripts(self, calls: Sequence[list[Any]]) -> list[int | BaseException]:
        """APPLY once per call, in one round trip: each call's verdict (1, 0, -1) or error."""
        outcomes = await self._evalsha(calls)
        lost = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, NoScriptError)]
        if lost:  # NOSCRIPT ran nothing: load the script, send those calls again
            await self.redis.script_load(APPLY)
            for n, outcome in zip(lost, await self._evalsha([calls[n] for n in lost]), strict=True):
                outcomes[n] = outcome
        return [o if isinstance(o, BaseException) else int(o) for o in outcomes]

    async def _evalsha(self, calls: Sequence[list[Any]]) -> list[Any]:
        if not calls:
            return []
        if self._multiplexed is not None:
            return await self._multiplexed.execute_each(
                [("EVALSHA", self._sha, 0, *args) for args in calls]
            )
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in calls:
                pipe.evalsha(self._sha, 0, *args)
            found: list[Any] = await pipe.execute(raise_on_error=False)
        return found

    async def record_rejected(self, *, topic: str, reason: str, body: bytes) -> None:
        """Keep a delivery that can never apply (the last REJECTED_KEPT) for inspection."""
        entry = {
            "topic": topic,
            "reason": reason,
            "body": body[:4096].decode("utf-8", "replace"),
            "recorded_at": iso(dt.datetime.now(dt.UTC)),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.layout.rejected_key, json.dumps(entry))
            pipe.ltrim(self.layout.rejected_key, 0, REJECTED_KEPT - 1)
            await pipe.execute()


def _pairs(flat: list[str]) -> dict[str, str]:
    """HGETALL's flat answer [field, value, ...] as the hash redis-py gives."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
