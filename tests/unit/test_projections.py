"""Projections: idempotent, order-safe folds of event envelopes into read-model rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.inventory import model as inventory
from actors.order import model as order
from actors.order import saga
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.errors import DomainError
from actors.wallet import model as wallet
from apps.projector.projections import (
    InvalidEventError,
    empty_row,
    fold,
    index_changes,
    index_entries,
    project,
    projects,
)
from readmodels.rows import OrderRow, Row, StockRow, WalletRow, from_hash, to_hash
from tests.apps import histories as recorder

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
SKUS = ("sku-a", "sku-b", "sku-c")
ORDER_ID, CUSTOMER = "ord-1", "cust-1"


def wrap(events: Sequence[Event], aggregate_type: str, aggregate_id: str) -> list[EventEnvelope]:
    """Envelopes with versions 1..n, one second apart from T0."""
    return recorder.wrap(
        events, aggregate_type, aggregate_id, start=T0, step=dt.timedelta(seconds=1)
    )


def run(
    decide: Callable[[Any, Any], list[Event]],
    evolve: Callable[[Any, Any], Any],
    state: Any,
    commands: Sequence[Command],
) -> tuple[Any, list[Event]]:
    """A history from a real decider; a command the decider refuses records nothing."""
    return recorder.run(decide, evolve, state, commands, skip=DomainError)


def in_order(envelopes: Sequence[EventEnvelope]) -> Row:
    return fold(empty_row(envelopes[0]), envelopes).after


# --- strategies: valid histories from the real deciders --------------------------------------

orders_for_stock = st.sampled_from(["o1", "o2", "o3", "o4"])
stock_commands = st.one_of(
    st.builds(inventory.Restock, sku=st.just("sku-a"), quantity=st.integers(1, 20)),
    st.builds(
        inventory.Reserve,
        sku=st.just("sku-a"),
        order_id=orders_for_stock,
        quantity=st.integers(1, 10),
    ),
    st.builds(inventory.Release, sku=st.just("sku-a"), order_id=orders_for_stock),
    st.builds(inventory.Commit, sku=st.just("sku-a"), order_id=orders_for_stock),
)
wallet_commands = st.one_of(
    st.builds(wallet.Deposit, amount=st.integers(1, 5_000)),
    st.builds(wallet.Authorize, order_id=orders_for_stock, amount=st.integers(1, 3_000)),
    st.builds(wallet.Void, order_id=orders_for_stock),
    st.builds(wallet.Capture, order_id=orders_for_stock),
)
order_facts = st.one_of(
    st.builds(saga.StockReservedForOrder, sku=st.sampled_from(SKUS)),
    st.builds(saga.StockRejectedForOrder, sku=st.sampled_from(SKUS)),
    st.just(saga.PaymentAuthorizedForOrder()),
    st.just(saga.PaymentDeclinedForOrder()),
    st.builds(saga.ShipmentDispatched, shipment_id=st.just("shp-1")),
    st.builds(saga.ShipmentFailed, reason=st.just("lost")),
    st.just(saga.Cancel()),
    st.builds(saga.DeadlinePassed, step=st.sampled_from(["reserving", "authorizing", "shipping"])),
)
PLACE = saga.Place(
    customer_id=CUSTOMER,
    lines=(
        order.Line(sku="sku-a", quantity=2, unit_price=300),
        order.Line(sku="sku-b", quantity=1, unit_price=500),
    ),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Any, list[EventEnvelope]]:
    """One aggregate's history: (final domain state, its envelopes in version order)."""
    kind = draw(st.sampled_from(["stock", "wallet", "order"]))
    commands: list[Command]
    if kind == "stock":
        commands = draw(st.lists(stock_commands, min_size=1, max_size=25))
        state, events = run(inventory.decide, inventory.evolve, inventory.initial_state(), commands)
        aggregate = ("InventoryActor", "sku-a")
    elif kind == "wallet":
        commands = draw(st.lists(wallet_commands, min_size=1, max_size=25))
        state, events = run(wallet.decide, wallet.evolve, wallet.initial_state(), commands)
        aggregate = ("WalletActor", CUSTOMER)
    else:
        commands = [PLACE, *draw(st.lists(order_facts, max_size=12))]
        state, events = run(saga.decide, saga.evolve, saga.initial_state(), commands)
        aggregate = ("OrderActor", ORDER_ID)
    if not events:
        events = [inventory.StockRestocked(sku="sku-a", quantity=1)]
        state = inventory.evolve(inventory.initial_state(), events[0])
        aggregate = ("InventoryActor", "sku-a")
    return state, wrap(events, *aggregate)


@st.composite
def deliveries(draw: st.DrawFn, envelopes: list[EventEnvelope]) -> list[EventEnvelope]:
    """Every envelope at least once, some more than once, in any order."""
    repeats = draw(st.lists(st.sampled_from(envelopes), max_size=len(envelopes)))
    return list(draw(st.permutations([*envelopes, *repeats])))


def view_of(state: Any, row: Row) -> dict[str, Any]:
    """The fields a read-model row shares with the aggregate's own view."""
    if isinstance(row, StockRow):
        return {"on_hand": state.on_hand, "reserved": state.reserved}
    if isinstance(row, WalletRow):
        return {"balance": state.balance, "held": state.held}
    return {
        "status": state.status.value,
        "customer_id": state.customer_id,
        "total": state.total,
        "reserved_skus": tuple(sorted(state.reserved_skus)),
        "cancel_reason": state.cancel_reason or "",
    }


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data(), history=histories())
def test_any_permutation_with_duplicates_gives_the_in_order_read_model(
    data: st.DataObject, history: tuple[Any, list[EventEnvelope]]
) -> None:
    _, envelopes = history
    delivered = data.draw(deliveries(envelopes))
    expected = fold(empty_row(envelopes[0]), envelopes)

    got = fold(empty_row(envelopes[0]), delivered)

    assert got.after == expected.after
    assert to_hash(got.after) == to_hash(expected.after)
    assert index_entries(got.after) == index_entries(expected.after)
    assert got.counts == expected.counts
    assert got.applied == len(envelopes)
    assert got.duplicates == len(delivered) - len(envelopes)


@settings(max_examples=300, deadline=None, database=None)
@given(history=histories())
def test_the_in_order_read_model_agrees_with_the_aggregates_own_state(
    history: tuple[Any, list[EventEnvelope]],
) -> None:
    state, envelopes = history

    row = in_order(envelopes)

    assert {key: getattr(row, key) for key in view_of(state, row)} == view_of(state, row)
    assert (row.aggregate_version, row.applied_above) == (len(envelopes), ())


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data(), history=histories())
def test_folding_in_batches_equals_folding_at_once(
    data: st.DataObject, history: tuple[Any, list[EventEnvelope]]
) -> None:
    _, envelopes = history
    delivered = data.draw(deliveries(envelopes))
    cut = data.draw(st.integers(0, len(delivered)))
    first = fold(empty_row(envelopes[0]), delivered[:cut])

    second = fold(
        from_hash(type(first.after), first.after.aggregate_id, to_hash(first.after)),
        delivered[cut:],
    )

    assert second.after == in_order(envelopes)
    assert first.counts + second.counts == fold(empty_row(envelopes[0]), envelopes).counts


# --- examples --------------------------------------------------------------------------------


def order_history(*facts: Command) -> list[EventEnvelope]:
    _, events = run(saga.decide, saga.evolve, saga.initial_state(), [PLACE, *facts])
    return wrap(events, "OrderActor", ORDER_ID)


def shipped_history() -> list[EventEnvelope]:
    return order_history(
        saga.StockReservedForOrder(sku="sku-a"),
        saga.StockReservedForOrder(sku="sku-b"),
        saga.PaymentAuthorizedForOrder(),
        saga.ShipmentDispatched(shipment_id="shp-1"),
    )


def test_second_delivery_of_the_same_event_changes_nothing() -> None:
    placed = order_history()[0]
    once = project(empty_row(placed), placed)

    again = project(once.row, placed)

    assert once.applied
    assert not again.applied
    assert again.row == once.row
    assert again.counter is None


def test_a_late_older_status_never_overwrites_a_newer_one() -> None:
    envelopes = shipped_history()
    shipped, confirmed = envelopes[-1], envelopes[-2]
    row = fold(empty_row(shipped), [envelopes[0], shipped, confirmed]).after

    assert isinstance(row, OrderRow)
    assert row.status == "shipped"
    assert (row.aggregate_version, row.applied_above) == (1, (confirmed.aggregate_version, 6))


def test_a_gap_in_the_versions_is_absorbed_by_the_watermark_once_it_fills() -> None:
    envelopes = shipped_history()
    ahead = fold(empty_row(envelopes[0]), [envelopes[0], envelopes[3]])

    filled = fold(ahead.after, [envelopes[2], envelopes[1]])

    assert ahead.out_of_order == 1
    assert (ahead.after.aggregate_version, ahead.after.applied_above) == (1, (4,))
    assert (filled.after.aggregate_version, filled.after.applied_above) == (4, ())


def sold_history(*, restocked: int, sold: int) -> list[EventEnvelope]:
    """sku-a restocked, then `sold` of it reserved and committed for order o1."""
    _, events = run(
        inventory.decide,
        inventory.evolve,
        inventory.initial_state(),
        [
            inventory.Restock(sku="sku-a", quantity=restocked),
            inventory.Reserve(sku="sku-a", order_id="o1", quantity=sold),
            inventory.Commit(sku="sku-a", order_id="o1"),
        ],
    )
    return wrap(events, "InventoryActor", "sku-a")


def test_stock_deltas_arriving_before_the_restock_still_add_up() -> None:
    restocked, reserved, committed = sold_history(restocked=10, sold=4)

    row = fold(empty_row(restocked), [committed, reserved, restocked]).after

    assert isinstance(row, StockRow)
    assert (row.on_hand, row.reserved, row.available) == (6, 0, 6)
    assert index_entries(row) == {("stock:low", "sku-a"): 6.0}


def test_a_sku_sold_out_in_one_folded_page_is_still_listed_with_nothing_available() -> None:
    envelopes = sold_history(restocked=2, sold=2)
    empty = empty_row(envelopes[0])

    changes = index_changes(empty, fold(empty, envelopes).after)

    assert index_entries(empty) == {}
    assert changes.added == (("stock:low", "sku-a", 0.0),)


def test_each_counted_event_is_counted_once_in_the_minute_it_occurred() -> None:
    envelopes = shipped_history()

    counts = fold(empty_row(envelopes[0]), [*envelopes, *envelopes]).counts

    assert counts == {
        ("2026-11-22T10:00", "placed"): 1,
        ("2026-11-22T10:00", "confirmed"): 1,
        ("2026-11-22T10:00", "shipped"): 1,
    }


def test_the_status_index_moves_on_a_transition() -> None:
    envelopes = shipped_history()
    before = fold(empty_row(envelopes[0]), envelopes[:-1]).after

    changes = index_changes(before, project(before, envelopes[-1]).row)

    assert set(changes.removed) == {
        ("orders:status:confirmed", ORDER_ID),
        (f"orders:customer:{CUSTOMER}:status:confirmed", ORDER_ID),
    }
    assert {(key, member) for key, member, _ in changes.added} == {
        ("orders:status:shipped", ORDER_ID),
        (f"orders:customer:{CUSTOMER}:status:shipped", ORDER_ID),
    }


def test_an_order_is_listed_only_once_its_placement_is_applied() -> None:
    envelopes = shipped_history()
    without_placed = fold(empty_row(envelopes[0]), envelopes[1:]).after

    with_placed = project(without_placed, envelopes[0]).row

    assert index_entries(without_placed) == {}
    score = (T0 + dt.timedelta(seconds=1)).timestamp() * 1000
    assert index_entries(with_placed)[("orders:all", ORDER_ID)] == score


def test_a_cancelled_order_keeps_its_reason() -> None:
    envelopes = order_history(saga.Cancel(reason="changed my mind"))

    row = in_order(envelopes)

    assert isinstance(row, OrderRow)
    assert (row.status, row.cancel_reason) == ("cancelled", "changed my mind")


def test_an_event_missing_a_field_its_projection_needs_is_invalid() -> None:
    placed = order_history()[0]
    broken = placed.model_copy(update={"payload": {"customer_id": CUSTOMER}})

    with pytest.raises(InvalidEventError, match="lines"):
        project(empty_row(broken), broken)


def test_only_the_three_contexts_own_events_on_their_own_topics_are_projected() -> None:
    placed = order_history()[0]

    assert projects("orders", placed)
    assert not projects("inventory", placed)
    assert not projects("orders", placed.model_copy(update={"type": "order.unknown"}))


def test_a_row_survives_its_hash_form() -> None:
    row = in_order(shipped_history())

    assert from_hash(OrderRow, ORDER_ID, to_hash(row)) == row
    assert to_hash(row)["lines"].startswith('[{"sku":"sku-a"')
    assert from_hash(WalletRow, CUSTOMER, {}) == WalletRow(customer_id=CUSTOMER)
