"""Dead letters kept by the console, and their redrive onto the topic they came from.

    the router ──(deadletter topic)──▶ console /deadletters/inbox ──▶ Redis:
        <prefix>deadletters          hash: letter id -> the letter (JSON)
        <prefix>deadletters:order    sorted set: letter id by recorded time (ms); capped
    redrive: publish the letter's event to its original topic through the console's own
    sidecar, with the ORIGINAL CloudEvent id and type. The router's deliveries carry
    message ids "<event id>/<method>", so an actor that applied the event already answers
    the repeat from its inbox: a redrive never applies anything twice.

A letter's id is the dead letter's own CloudEvent id ("dl-<event id>-<target>"), so the
same event refused again after a redrive comes back as the same letter, open again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis

from actors.toolkit.publisher import PublishError, SidecarPublisher

DEFAULT_PREFIX = "console:"
MAX_LETTERS = 10_000  # the oldest are forgotten past this many


class Letter(BaseModel):
    """One dead letter as the router recorded it (tolerant reader), plus its redrive state."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    code: str
    reason: str = ""
    topic: str
    target: str | None = None
    cloudevent_id: str = ""
    cloudevent_type: str = ""
    event: Any = None
    recorded_at: str = ""
    status: Literal["open", "redriven"] = "open"
    redriven_at: str | None = None
    redrives: int = 0  # how many times it was redriven (kept when it comes back)
    redriven_by: str | None = None  # the operator of the last redrive (apps/console/auth.py)

    @property
    def event_type(self) -> str:
        """The original CloudEvent type (older letters: the envelope's own type)."""
        if self.cloudevent_type:
            return self.cloudevent_type
        return str(self.event.get("type", "")) if isinstance(self.event, dict) else ""

    def why_not_redrivable(self) -> str | None:
        if not self.cloudevent_id:
            return "the original CloudEvent id is unknown, so a redrive could not be deduplicated"
        if not isinstance(self.event, dict):
            return "the event is not a JSON object (it could never be routed)"
        if not self.event_type:
            return "the original CloudEvent type is unknown"
        return None


class LetterNotFoundError(LookupError):
    """No letter with that id."""


class NotRedrivableError(ValueError):
    """The letter cannot be redriven (already redriven, or not a routable event)."""


@dataclass(frozen=True)
class Filter:
    """Which letters: by code and/or topic (exact), open only unless `everything`."""

    code: str | None = None
    topic: str | None = None
    everything: bool = False

    def matches(self, letter: Letter) -> bool:
        return (
            (self.code is None or letter.code == self.code)
            and (self.topic is None or letter.topic == self.topic)
            and (self.everything or letter.status == "open")
        )


@dataclass(frozen=True)
class RedriveResult:
    letter_id: str
    ok: bool
    detail: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ms(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text).timestamp() * 1000
    except ValueError:
        return _now().timestamp() * 1000


class LetterStore:
    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._hash = f"{prefix}deadletters"
        self._order = f"{prefix}deadletters:order"

    async def record(self, letter_id: str, data: dict[str, Any]) -> Letter:
        """Keep a letter delivered on the dead-letter topic (a redelivery changes nothing;
        a newer refusal of a redriven letter opens it again). Raises ValidationError."""
        letter = Letter.model_validate({**data, "id": letter_id, "status": "open"})
        known = await self.get(letter_id)
        if known is not None:
            if known.status == "open" or not _newer(letter.recorded_at, known.redriven_at):
                return known
            letter = letter.model_copy(update={"redrives": known.redrives})
        await self._save(letter)
        if await self._redis.zcard(self._order) > MAX_LETTERS:
            oldest: list[Any] = await self._redis.zpopmin(self._order, 1)
            for entry in oldest:
                await self._redis.hdel(self._hash, str(entry[0]))
        return letter

    async def _save(self, letter: Letter) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._hash, letter.id, letter.model_dump_json())
            pipe.zadd(self._order, {letter.id: _ms(letter.recorded_at)})
            await pipe.execute()

    async def get(self, letter_id: str) -> Letter | None:
        raw = await self._redis.hget(self._hash, letter_id)
        return Letter.model_validate_json(raw) if raw else None

    async def list(self, which: Filter, *, limit: int = 200) -> list[Letter]:
        """Matching letters, newest first."""
        ids: list[str] = [str(i) for i in await self._redis.zrange(self._order, 0, -1, desc=True)]
        found: list[Letter] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for raw in await self._redis.hmget(self._hash, chunk):
                letter = _parse(raw)
                if letter is not None and which.matches(letter):
                    found.append(letter)
                    if len(found) >= limit:
                        return found
        return found

    async def codes(self) -> dict[str, int]:
        """Open letters by code."""
        counts: dict[str, int] = {}
        for letter in await self.list(Filter(), limit=MAX_LETTERS):
            counts[letter.code] = counts.get(letter.code, 0) + 1
        return dict(sorted(counts.items()))

    async def mark_redriven(self, letter: Letter, *, by: str | None = None) -> Letter:
        done = letter.model_copy(
            update={
                "status": "redriven",
                "redriven_at": _now().isoformat(),
                "redrives": letter.redrives + 1,
                "redriven_by": by,
            }
        )
        await self._save(done)
        return done


def _parse(raw: str | bytes | None) -> Letter | None:
    if not raw:
        return None
    try:
        return Letter.model_validate_json(raw)
    except ValidationError:
        return None


def _newer(recorded_at: str, redriven_at: str | None) -> bool:
    return redriven_at is None or _ms(recorded_at) > _ms(redriven_at)


class Redriver:
    """Republishes dead letters' events through the console's sidecar."""

    def __init__(self, store: LetterStore, publisher: SidecarPublisher) -> None:
        self._store = store
        self._publisher = publisher

    async def redrive(self, letter_id: str, *, by: str | None = None) -> RedriveResult:
        """Redrive one open letter (`by`: the operator, kept on the letter); raises
        LetterNotFoundError / NotRedrivableError."""
        letter = await self._store.get(letter_id)
        if letter is None:
            raise LetterNotFoundError(f"no dead letter {letter_id!r}")
        if letter.status != "open":
            raise NotRedrivableError(f"dead letter {letter_id!r} was redriven already")
        why = letter.why_not_redrivable()
        if why is not None:
            raise NotRedrivableError(f"dead letter {letter_id!r} cannot be redriven: {why}")
        return await self._redrive(letter, by)

    async def redrive_matching(
        self, which: Filter, *, by: str | None = None
    ) -> list[RedriveResult]:
        """Redrive every open letter matching `which` (one failure does not stop the rest)."""
        letters = await self._store.list(Filter(which.code, which.topic), limit=MAX_LETTERS)
        return [await self._redrive(letter, by) for letter in letters]

    async def _redrive(self, letter: Letter, by: str | None) -> RedriveResult:
        why = letter.why_not_redrivable()
        if why is not None:
            return RedriveResult(letter.id, False, f"not redriven: {why}")
        try:
            await self._publisher.publish_document(
                letter.topic,
                json.dumps(letter.event),
                event_id=letter.cloudevent_id,
                event_type=letter.event_type,
            )
        except PublishError as exc:
            return RedriveResult(letter.id, False, f"publish failed: {exc}")
        await self._store.mark_redriven(letter, by=by)
        detail = f"republished to {letter.topic} as {letter.cloudevent_id} ({letter.event_type})"
        return RedriveResult(letter.id, True, detail)
