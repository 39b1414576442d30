"""Dapr bulk deliveries: every entry handled, a status per entry id, single events told apart."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.toolkit.subscriber import BULK_EVENT_TYPE, bulk_options, each_entry, is_bulk


def test_a_bulk_delivery_is_told_apart_from_a_single_cloud_event() -> None:
    assert is_bulk({"type": BULK_EVENT_TYPE, "entries": []})
    assert not is_bulk({"type": "order.placed", "data": {}})
    assert not is_bulk([BULK_EVENT_TYPE])
    assert bulk_options(max_messages=10, await_ms=3) == {
        "enabled": True,
        "maxMessagesCount": 10,
        "maxAwaitDurationMs": 3,
    }


def test_each_entry_is_handled_once_and_answered_under_its_own_entry_id() -> None:
    seen: list[Any] = []

    async def handle(event: Any) -> dict[str, str]:
        seen.append(event)
        await asyncio.sleep(0.01 if event == "slow" else 0)  # finishing order must not matter
        return {"status": "RETRY" if event == "bad" else "SUCCESS"}

    delivery = {
        "type": BULK_EVENT_TYPE,
        "entries": [
            {"entryId": "a", "event": "slow"},
            {"entryId": "b", "event": "bad"},
            {"entryId": "c", "event": "fast"},
            {"event": "no id: daprd counts a missing status as RETRY"},
            "not an entry",
        ],
    }
    reply = asyncio.run(each_entry(delivery, handle))

    assert reply == {
        "statuses": [
            {"entryId": "a", "status": "SUCCESS"},
            {"entryId": "b", "status": "RETRY"},
            {"entryId": "c", "status": "SUCCESS"},
        ]
    }
    assert sorted(seen) == ["bad", "fast", "slow"]
