"""What a Dapr subscriber answers, one event at a time or in bulk.

Every delivery gets SUCCESS (done, or nothing to do), RETRY (not now: daprd redelivers)
or DROP (never: daprd discards it, or moves it to the subscription's dead-letter topic).
Which one a failure gets follows the error tree (actors.toolkit.errors): `gives_up`.

Bulk subscriptions: many CloudEvents in one HTTP delivery, a status for each.

A subscription asks for it with `bulk_options(...)`; daprd then POSTs
    {"type": "com.dapr.event.sent.bulk", "entries": [{"entryId", "event", ...}], ...}
and expects {"statuses": [{"entryId", "status": "SUCCESS" | "RETRY" | "DROP"}]}. An entry
missing from the reply counts as RETRY. For a broker without native bulk reads (Redis
Streams), daprd batches what the component's workers hold at once, so a batch is at most
the component's `concurrency`, and a lone event waits at most `await_ms` for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from actors.toolkit.errors import DomainError, PermanentError

SUCCESS: Final = {"status": "SUCCESS"}
RETRY: Final = {"status": "RETRY"}
DROP: Final = {"status": "DROP"}
BULK_EVENT_TYPE: Final = "com.dapr.event.sent.bulk"


def only_types(event_types: list[str]) -> str:
    """A CEL match on the CloudEvent type, for a subscription's routing rule: daprd then
    acknowledges every other event on the topic without calling the app."""
    return "event.type in [" + ", ".join(f'"{t}"' for t in event_types) + "]"


def gives_up(error: BaseException) -> bool:
    """Whether a failed delivery will never succeed as sent (a DomainError or a
    PermanentError: dead-letter it). Everything else, TransientError or a bug, stays on
    the broker (RETRY): nothing is dropped because of a failure we did not foresee."""
    return isinstance(error, DomainError | PermanentError)


Handler = Callable[[Any], Awaitable[dict[str, str]]]


def bulk_options(*, max_messages: int, await_ms: int) -> dict[str, Any]:
    """The `bulkSubscribe` block of a programmatic subscription."""
    return {"enabled": True, "maxMessagesCount": max_messages, "maxAwaitDurationMs": await_ms}


def is_bulk(delivery: Any) -> bool:
    return isinstance(delivery, dict) and delivery.get("type") == BULK_EVENT_TYPE


async def each_entry(delivery: dict[str, Any], handle: Handler) -> dict[str, Any]:
    """Run `handle` on every entry's CloudEvent concurrently; the reply daprd expects."""
    entries = [e for e in delivery.get("entries") or () if isinstance(e, dict) and e.get("entryId")]
    answers = await asyncio.gather(*(handle(entry.get("event")) for entry in entries))
    return {
        "statuses": [
            {"entryId": entry["entryId"], "status": answer["status"]}
            for entry, answer in zip(entries, answers, strict=True)
        ]
    }
