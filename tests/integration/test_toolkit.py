"""The actor toolkit's guarantees on the real cluster: outbox, inbox, audit, router, serializer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import redis

from cluster.local import LocalCluster
from tests.integration.support import (
    call,
    consumed,
    envelope,
    ok,
    publish,
    stream_events,
    wait_until,
)

INVENTORY = "InventoryActor"


def restock(client: httpx.Client, sku: str, quantity: int, **meta: str) -> dict[str, Any]:
    answer: dict[str, Any] = call(client, INVENTORY, sku, "Restock", {"quantity": quantity, **meta})
    return answer


def history(client: httpx.Client, sku: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = ok(call(client, INVENTORY, sku, "History", {"after": after, "limit": 100}))
        events += page["events"]
        after = page["next_after"]
    return events


def published_ids(client: redis.Redis, topic: str) -> list[str]:
    return [str(ce["data"]["event_id"]) for ce in stream_events(client, topic)]


def test_kill_9_between_save_and_publish_loses_no_event_and_keeps_its_id(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str
) -> None:
    sku = f"crash-{uid}"
    ok(restock(gateway_sidecar, sku, 5))
    hosts = [a.name for a in cluster.config.apps() if a.name.startswith("actor-host")]
    try:
        # The host saves the event, then SIGKILLs itself before publishing it.
        gateway_sidecar.post(
            f"/v1.0/actors/{INVENTORY}/{sku}/method/Restock",
            json={"quantity": 7, "message_id": f"m-{uid}", "fault": "crash_after_save"},
            timeout=60,
        )
        wait_until(
            lambda: any(not cluster.processes[h].alive() for h in hosts),
            timeout=30,
            what="the faulted actor host to die",
        )
    finally:
        for host in hosts:
            if not cluster.processes[host].alive():
                cluster.restart(host)
    # Any call reactivates the actor, which re-sends its outbox before serving the call.
    assert ok(call(gateway_sidecar, INVENTORY, sku, "Get"))["on_hand"] == 12
    logged = [e["event_id"] for e in history(gateway_sidecar, sku)]
    assert len(logged) == 2
    wait_until(
        lambda: set(logged) <= set(published_ids(redis_client, "inventory")),
        timeout=30,
        what="every logged event on the inventory stream",
    )
    clouds = [ce for ce in stream_events(redis_client, "inventory") if ce["id"] in logged]
    assert {ce["id"] for ce in clouds} == set(logged)  # CloudEvent id == event id, kept on re-send


def test_same_message_twice_and_messages_out_of_order_apply_once_each(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    sku = f"dedupe-{uid}"
    for message, quantity in [("b", 2), ("a", 1), ("b", 2), ("a", 1), ("b", 2)]:
        ok(restock(gateway_sidecar, sku, quantity, message_id=f"{uid}-{message}"))
    state = call(gateway_sidecar, INVENTORY, sku, "Get")
    assert state["result"]["on_hand"] == 3
    assert state["aggregate_version"] == 2
    again = restock(gateway_sidecar, sku, 2, message_id=f"{uid}-b")
    assert again["duplicate"] is True
    assert again["aggregate_version"] == 1  # the original result: b was applied first


def test_an_inbound_event_published_twice_is_applied_once(
    gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str
) -> None:
    sku = f"inbound-{uid}"
    event = envelope("inventory.stock_received", {"sku": sku, "quantity": 4})
    for _ in range(2):
        publish(
            gateway_sidecar,
            "restocks",
            event,
            event_id=event["event_id"],
            event_type=event["type"],
        )
    wait_until(
        lambda: call(gateway_sidecar, INVENTORY, sku, "Get")["result"]["on_hand"] == 4,
        timeout=30,
        what="the restock to be applied",
    )
    wait_until(
        lambda: consumed(redis_client, "restocks"),
        timeout=30,
        what="both deliveries to be handled and acknowledged",
    )
    assert call(gateway_sidecar, INVENTORY, sku, "Get")["aggregate_version"] == 1


@pytest.mark.slow
def test_history_of_1000_events_replays_to_the_snapshot_and_reactivates_from_it(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    """1000 events: History pages through all of them, Replay folds them to the snapshot,
    and after both hosts restart the actor answers its full state again.

    That activation costs the same whatever the history length is not timed here (no
    timed assertion in a test): the mechanism is checked in
    tests/actors/test_activation_cost.py (a 1000-event activation reads as many keys as a
    1-event one)."""
    long_sku, short_sku = f"long-{uid}", f"short-{uid}"
    ok(restock(gateway_sidecar, short_sku, 1))
    for n in range(1000):
        ok(restock(gateway_sidecar, long_sku, 1, message_id=f"{uid}-{n}"))
    replay = ok(call(gateway_sidecar, INVENTORY, long_sku, "Replay"))
    assert replay["matches_snapshot"] is True
    assert replay["events_replayed"] == 1000
    assert replay["replayed"]["on_hand"] == 1000
    assert [e["aggregate_version"] for e in history(gateway_sidecar, long_sku)] == list(
        range(1, 1001)
    )
    # Restart both hosts: every actor is deactivated; the next call activates it again.
    for app in cluster.config.apps():
        if app.name.startswith("actor-host"):
            cluster.restart(app.name)
    after = {sku: call(gateway_sidecar, INVENTORY, sku, "Get") for sku in (long_sku, short_sku)}
    assert after[long_sku]["aggregate_version"] == 1000
    assert ok(after[long_sku])["on_hand"] == 1000
    assert after[short_sku]["aggregate_version"] == 1
    assert ok(after[short_sku])["on_hand"] == 1


def _dead_letter(client: redis.Redis, cloudevent_id: str) -> dict[str, Any] | None:
    for ce in stream_events(client, "deadletter"):
        if ce["data"].get("cloudevent_id") == cloudevent_id:
            letter: dict[str, Any] = ce["data"]
            return letter
    return None


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("negative quantity", "event.invalid_payload"),
        ("unknown type", "event.unknown_type"),
        ("no envelope", "event.invalid_envelope"),
    ],
)
def test_an_event_that_can_never_apply_lands_in_the_dead_letter_topic_with_its_reason(
    gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str, case: str, code: str
) -> None:
    sku = f"dead-{uid}"
    cloudevent_id = f"bad-{uuid.uuid4().hex}"
    data: dict[str, Any] = {
        "negative quantity": envelope("inventory.stock_received", {"sku": sku, "quantity": -5}),
        "unknown type": envelope("inventory.stock_teleported", {"sku": sku, "quantity": 5}),
        "no envelope": {"sku": sku, "quantity": 5},
    }[case]
    publish(gateway_sidecar, "restocks", data, event_id=cloudevent_id, event_type="x.y")
    letter: dict[str, Any] = {}

    def recorded() -> bool:
        letter.update(_dead_letter(redis_client, cloudevent_id) or {})
        return bool(letter)

    wait_until(recorded, timeout=30, what=f"a dead letter for {case}")
    assert letter["code"] == code
    assert letter["topic"] == "restocks"
    assert letter["reason"]
    assert letter["event"] == data
    assert call(gateway_sidecar, INVENTORY, sku, "Get")["aggregate_version"] == 0


@pytest.mark.parametrize("text", ["12m", "2024-05-01", "1h30m", "10s", "P3D"])
def test_date_and_duration_shaped_strings_round_trip_unchanged_through_daprd(
    gateway_sidecar: httpx.Client, text: str
) -> None:
    result = ok(restock(gateway_sidecar, text, 1, correlation_id=f"{text}T10:00:00Z"))
    assert result["sku"] == text
    [event] = history(gateway_sidecar, text)
    assert event["correlation_id"] == f"{text}T10:00:00Z"
    assert event["payload"]["sku"] == text
    assert ok(call(gateway_sidecar, INVENTORY, text, "Get"))["sku"] == text
