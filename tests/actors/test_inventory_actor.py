"""InventoryActor on the SDK's mock actors: envelopes, validation, inbox, outbox, audit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.inventory.actor import InventoryActor
from actors.toolkit.actor import OUTBOX_REMINDER, ActorDeps
from actors.toolkit.envelope import event_id_for
from actors.toolkit.inbox import inbox_key
from actors.toolkit.store import (
    SNAPSHOT_KEY,
    ConcurrencyError,
    InMemoryStores,
    StateManagerStore,
)
from actors.toolkit.testing import activate
from tests.actors.doubles import RecordingPublisher


def make(
    publisher: RecordingPublisher, sku: str = "SKU-1", state: dict[str, Any] | None = None
) -> InventoryActor:
    deps = ActorDeps(publisher=publisher, store=StateManagerStore.factory)
    return activate(InventoryActor, sku, deps, initstate=state)


def make_on(stores: InMemoryStores, publisher: RecordingPublisher) -> InventoryActor:
    """An activation of SKU-1 over a shared in-memory store (two = a zombie and an owner)."""
    return activate(InventoryActor, "SKU-1", ActorDeps(publisher=publisher, store=stores))


def body(raw: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(raw)
    return decoded


def stored(actor: InventoryActor) -> dict[str, Any]:
    return actor._state_manager._mock_state  # type: ignore[attr-defined,no-any-return]


async def test_restock_saves_snapshot_and_event_then_publishes_one_envelope(
    publisher: RecordingPublisher,
) -> None:
    actor = make(publisher)
    out = body(
        await actor.invoke(
            "Restock", b'{"quantity": 5, "message_id": "m-1", "correlation_id": "c-1"}'
        )
    )
    assert out["ok"]
    assert out["result"] == {
        "sku": "SKU-1",
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
    }
    assert out["aggregate_version"] == 1
    assert out["duplicate"] is False
    [(topic, env)] = publisher.sent
    assert topic == "inventory"
    assert env.type == "inventory.stock_restocked"
    assert (env.aggregate_type, env.aggregate_id, env.aggregate_version) == (
        "InventoryActor",
        "SKU-1",
        1,
    )
    assert (env.correlation_id, env.causation_id) == ("c-1", "m-1")
    assert env.payload == {"sku": "SKU-1", "quantity": 5}
    assert out["events"] == [{"event_id": env.event_id, "type": env.type, "aggregate_version": 1}]
    assert set(stored(actor)) == {SNAPSHOT_KEY, "event-1", inbox_key("m-1")}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"quantity": "5"}', "quantity"),
        (b'{"quantity": 5.0}', "quantity"),
        (b'{"quantity": -1}', "quantity"),
        (b'{"quantity": 0}', "quantity"),
        (b'{"quantity": 1000000001}', "quantity"),
        (b'{"quantity": 5, "colour": "red"}', "colour"),
        (b'{"quantity": 5, "sku": "OTHER"}', "sku"),
        (b'{"quantity": 5, "message_id": "has space"}', "message_id"),
        (b"{}", "quantity"),
    ],
)
async def test_invalid_payload_is_a_typed_error_and_touches_no_state(
    publisher: RecordingPublisher, payload: bytes, field: str
) -> None:
    actor = make(publisher)
    out = body(await actor.invoke("Restock", payload))
    assert out["ok"] is False
    assert out["error"]["code"] == "request.invalid"
    assert field in out["error"]["detail"] or field in json.dumps(out["error"]["context"])
    assert stored(actor) == {}
    assert publisher.sent == []


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"x"', b"{" + b" " * 70_000 + b"}"])
async def test_payload_that_is_not_a_json_object_is_refused(
    publisher: RecordingPublisher, payload: bytes
) -> None:
    out = body(await make(publisher).invoke("Restock", payload))
    assert out["error"]["code"] == "request.invalid"


async def test_second_delivery_of_the_same_message_returns_the_original_result_and_changes_nothing(
    publisher: RecordingPublisher,
) -> None:
    actor = make(publisher)
    first = body(await actor.invoke("Restock", b'{"quantity": 3, "message_id": "m-1"}'))
    again = body(await actor.invoke("Restock", b'{"quantity": 3, "message_id": "m-1"}'))
    assert again["duplicate"] is True
    assert {k: v for k, v in again.items() if k != "duplicate"} == {
        k: v for k, v in first.items() if k != "duplicate"
    }
    assert len(publisher.sent) == 1
    assert body(await actor.get())["result"]["on_hand"] == 3


async def test_a_rejected_reserve_answers_its_reason_and_a_duplicate_answers_the_same(
    publisher: RecordingPublisher,
) -> None:
    """The router builds the order's OnStockOutcomes from a Reserve's answer."""
    actor = make(publisher)
    reserve = b'{"order_id": "o-1", "quantity": 2, "message_id": "e1/Reserve"}'
    first = body(await actor.invoke("Reserve", reserve))
    again = body(await actor.invoke("Reserve", reserve))
    [(_, env)] = publisher.sent
    assert first["events"] == [
        {
            "event_id": env.event_id,
            "type": "inventory.stock_rejected",
            "aggregate_version": 1,
            "reason": "insufficient_stock",
        }
    ]
    assert (again["duplicate"], again["events"]) == (True, first["events"])
    await actor.invoke("Restock", b'{"quantity": 5}')
    held = body(await actor.invoke("Reserve", b'{"order_id": "o-2", "quantity": 2}'))
    assert [sorted(e) for e in held["events"]] == [["aggregate_version", "event_id", "type"]]


async def test_domain_error_comes_back_as_a_typed_envelope(publisher: RecordingPublisher) -> None:
    out = body(await make(publisher).invoke("Commit", b'{"order_id": "o-1"}'))
    assert out == {
        "ok": False,
        "error": {
            "code": "inventory.reservation_not_found",
            "detail": "order o-1 holds no reservation of SKU-1",
            "context": {"sku": "SKU-1", "order_id": "o-1"},
        },
    }


async def restocked_with_the_publisher_down(
    publisher: RecordingPublisher,
) -> tuple[InventoryActor, dict[str, Any]]:
    """A Restock while publishing fails (the publisher stays down); the actor and its answer."""
    actor = make(publisher)
    publisher.down = True
    return actor, body(await actor.invoke("Restock", b'{"quantity": 2}'))


async def test_failed_publish_keeps_the_event_and_arms_a_retry_reminder_that_resends_it(
    publisher: RecordingPublisher,
) -> None:
    actor, out = await restocked_with_the_publisher_down(publisher)
    assert out["ok"]
    assert publisher.sent == []
    assert OUTBOX_REMINDER in actor._state_manager._mock_reminders  # type: ignore[attr-defined]
    publisher.down = False
    await actor.receive_reminder(OUTBOX_REMINDER, b"", None, None)  # type: ignore[arg-type]
    assert publisher.event_ids == [out["events"][0]["event_id"]]
    assert actor._state_manager._mock_reminders == {}  # type: ignore[attr-defined]


async def test_reactivation_publishes_what_was_saved_but_not_published_with_the_same_ids(
    publisher: RecordingPublisher,
) -> None:
    actor, saved = await restocked_with_the_publisher_down(publisher)
    publisher.down = False
    revived = make(publisher, state=dict(stored(actor)))  # a new instance over the same state
    await revived._on_activate()
    assert publisher.event_ids == [saved["events"][0]["event_id"]]


async def test_happy_path_registers_no_reminder(publisher: RecordingPublisher) -> None:
    actor = make(publisher)
    await actor.invoke("Restock", b'{"quantity": 2}')
    assert actor._state_manager._mock_reminders == {}  # type: ignore[attr-defined]


async def test_history_pages_through_events_and_replay_equals_the_snapshot(
    publisher: RecordingPublisher,
) -> None:
    actor = make(publisher)
    for n in range(1, 8):
        await actor.invoke("Restock", json.dumps({"quantity": n}).encode())
    await actor.invoke("Reserve", b'{"order_id": "o-1", "quantity": 4}')
    first = body(await actor.history(b'{"after": 0, "limit": 5}'))["result"]
    rest = body(await actor.history(json.dumps({"after": first["next_after"]}).encode()))["result"]
    versions = [e["aggregate_version"] for e in first["events"] + rest["events"]]
    assert versions == list(range(1, 9))
    assert rest["next_after"] is None
    replayed = body(await actor.replay())["result"]
    assert replayed["matches_snapshot"] is True
    assert replayed["events_replayed"] == 8
    assert replayed["replayed"]["available"] == 28 - 4


@pytest.mark.parametrize("sku", ["12m", "2024-05-01", "1h30m", "P1D"])
async def test_date_and_duration_shaped_ids_stay_strings(
    publisher: RecordingPublisher, sku: str
) -> None:
    actor = make(publisher, sku=sku)
    await actor.invoke("Restock", b'{"quantity": 1}')
    revived = make(publisher, sku=sku, state=dict(stored(actor)))
    result = body(await revived.get())["result"]
    assert result["sku"] == sku
    assert publisher.sent[0][1].payload["sku"] == sku


async def test_the_watermark_rides_on_the_next_append_and_reactivation_resends_the_same_ids(
    publisher: RecordingPublisher,
) -> None:
    actor = make(publisher)
    await actor.invoke("Restock", b'{"quantity": 2}')
    await actor.invoke("Restock", b'{"quantity": 3}')
    assert json.loads(stored(actor)[SNAPSHOT_KEY])["published"] == 1  # lags one command
    before = dict(stored(actor))
    await actor._on_deactivate()
    assert stored(actor) == before  # nothing writes state outside a turn
    revived = make(publisher, state=dict(stored(actor)))
    await revived._on_activate()
    first, second, resent = (env for _, env in publisher.sent)
    assert resent == second  # the last command's event again, with its id
    assert first.event_id != second.event_id


async def test_a_stale_activation_gets_a_conflict_drops_its_cache_and_publishes_nothing(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    zombie, owner = make_on(stores, publisher), make_on(stores, publisher)
    await zombie.invoke("Restock", b'{"quantity": 1}')
    await owner.invoke("Restock", b'{"quantity": 5}')  # loads version 1, writes version 2
    sent = len(publisher.sent)
    with pytest.raises(ConcurrencyError):
        await zombie.invoke(
            "Restock", b'{"quantity": 7, "message_id": "m-late"}'
        )  # cached at version 1
    assert len(publisher.sent) == sent
    assert zombie._head is None
    retried = body(await zombie.invoke("Restock", b'{"quantity": 7, "message_id": "m-late"}'))
    assert (retried["aggregate_version"], retried["result"]["on_hand"]) == (3, 13)
    versions = [env.aggregate_version for _, env in publisher.sent]
    assert sorted(set(versions)) == [1, 2, 3]


async def test_a_zombie_that_wins_the_version_race_still_leaves_one_linear_history(
    publisher: RecordingPublisher,
) -> None:
    """Why no ownership epoch: the case an epoch would add is a zombie winning the race.

    The owner activated (read version 1) but has not written; the zombie, also at version
    1, appends first. Its write is a decision on the latest state, so it is a valid next
    version; the owner's stale append is refused, it reloads, and decides again on top.
    Every version has one event, published with the content that is stored."""
    stores = InMemoryStores()
    await make_on(stores, publisher).invoke("Restock", b'{"quantity": 1}')
    zombie, owner = make_on(stores, publisher), make_on(stores, publisher)
    await zombie.get()
    await owner.get()  # the new activation: loaded, nothing written yet
    await zombie.invoke("Reserve", b'{"order_id": "o-1", "quantity": 1}')  # wins version 2
    with pytest.raises(ConcurrencyError):
        await owner.invoke("Reserve", b'{"order_id": "o-2", "quantity": 1}')
    again = body(await owner.invoke("Reserve", b'{"order_id": "o-2", "quantity": 1}'))
    # decided on top of the zombie's reservation: no stock left for o-2
    assert [e["type"] for e in again["events"]] == ["inventory.stock_rejected"]
    assert again["aggregate_version"] == 3
    by_version = {env.aggregate_version: env for _, env in publisher.sent}
    stored_log = stores.keys("InventoryActor", "SKU-1")
    for version, env in by_version.items():
        assert json.loads(stored_log[f"event-{version}"]) == env.model_dump(mode="json")
    assert sorted(by_version) == [1, 2, 3]


def test_event_ids_are_the_same_for_the_same_aggregate_and_version() -> None:
    assert event_id_for("InventoryActor", "A", 3) == event_id_for("InventoryActor", "A", 3)
    assert event_id_for("InventoryActor", "A", 3) != event_id_for("InventoryActor", "A", 4)
    assert event_id_for("InventoryActor", "A", 3) != event_id_for("WalletActor", "A", 3)
