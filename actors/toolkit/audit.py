"""The audit trail of an event-sourced actor: history in pages, and replay from scratch."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field

from actors.toolkit.commands import parse_object, split_meta, validate_command
from actors.toolkit.domain import Command, State
from actors.toolkit.envelope import EventEnvelope, failed
from actors.toolkit.errors import DomainError

if TYPE_CHECKING:
    from actors.toolkit.actor import EventSourcedActor

MAX_PAGE: Final = 100


class HistoryPage(Command):
    after: int = Field(default=0, ge=0)  # the last version the reader already has
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


async def history(actor: EventSourcedActor[Any], payload: bytes | None) -> dict[str, Any] | bytes:
    """Events with versions after `after`, at most `limit`, oldest first."""
    try:
        _, fields = split_meta(parse_object(payload))
        page = validate_command(HistoryPage, fields)
    except DomainError as exc:
        return failed(exc)
    loaded = await actor._aggregate()
    version = loaded.snapshot.version
    last = min(version, page.after + page.limit)
    envelopes = await actor.read_events(page.after + 1, last)
    return {
        "events": [env.model_dump(mode="json") for env in envelopes],
        "next_after": last if last < version else None,
    }


def fold(actor: EventSourcedActor[Any], envelopes: list[EventEnvelope]) -> State:
    """The state `envelopes` build from the initial state (upcast payloads, evolve)."""
    state: State = actor.initial_state()
    for env in envelopes:
        event = actor.events[env.type].model_validate(env.payload)
        state = actor.evolve(state, event)
    return state


async def replay(actor: EventSourcedActor[Any]) -> dict[str, Any]:
    """Rebuild the state from the whole history and compare it with the snapshot."""
    started = time.perf_counter()
    loaded = await actor._aggregate()
    envelopes = await actor.read_events(1, loaded.snapshot.version)
    rebuilt = fold(actor, envelopes)
    return {
        "matches_snapshot": rebuilt == loaded.state,
        "events_replayed": len(envelopes),
        "replayed": actor.view(rebuilt),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
