"""The audit trail of an event-sourced aggregate: history in pages, and replay from scratch.

Stands on the event log alone (actors.toolkit.eventlog); the actor hands in its fold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from pydantic import Field

from actors.toolkit.commands import parse_object, split_meta, validate_command
from actors.toolkit.domain import Command, State
from actors.toolkit.envelope import EventEnvelope, failed
from actors.toolkit.errors import DomainError
from actors.toolkit.eventlog import EventLog

MAX_PAGE: Final = 100


class HistoryPage(Command):
    after: int = Field(default=0, ge=0)  # the last version the reader already has
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


async def history(log: EventLog, version: int, payload: bytes | None) -> dict[str, Any] | bytes:
    """Events with versions after `after`, at most `limit`, oldest first."""
    try:
        _, fields = split_meta(parse_object(payload))
        page = validate_command(HistoryPage, fields)
    except DomainError as exc:
        return failed(exc)
    last = min(version, page.after + page.limit)
    envelopes = await log.read_events(page.after + 1, last)
    return {
        "events": [env.model_dump(mode="json") for env in envelopes],
        "next_after": last if last < version else None,
    }


async def replay(
    log: EventLog,
    version: int,
    *,
    fold: Callable[[list[EventEnvelope]], State],
    current: State,
    view: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Rebuild the state from the whole history and compare it with the snapshot's."""
    started = time.perf_counter()
    envelopes = await log.read_events(1, version)
    rebuilt = fold(envelopes)
    return {
        "matches_snapshot": rebuilt == current,
        "events_replayed": len(envelopes),
        "replayed": view(rebuilt),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
