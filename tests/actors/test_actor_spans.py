"""An actor turn is one span with decide, commit and publish inside; its lines carry the
actor, the order and the trace (the in-memory sidecar, real actors)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from actors.toolkit.client import ActorClient
from actors.toolkit.errors import DomainError
from actors.toolkit.testing import InMemorySidecar
from actors.toolkit.tracing import incoming, trace_id_of
from tests.log_lines import capturing, lines
from tests.spans import PARENT, SAMPLED, TRACE, Recorded, recording


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    with recording() as r:
        yield r


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    with capturing(app="actor-host", replica="actor-host-1") as out:
        yield out


async def restock_in_a_trace(sidecar: InMemorySidecar, recorded: Recorded, *steps: str) -> Any:
    """Restock under daprd's traceparent; check that `steps` are children of the turn's
    span in the same trace; return (the spans by name, the turn's span context)."""
    with incoming(SAMPLED):
        await ActorClient(sidecar).invoke("InventoryActor", "tea", "Restock", {"quantity": 5})
    spans = recorded.spans()
    turn = spans["InventoryActor.Restock"]
    assert turn.context is not None
    assert turn.parent is not None
    assert turn.parent.span_id == int(PARENT, 16)  # daprd's span of the call
    for step in steps:
        parent, context = spans[step].parent, spans[step].context
        assert parent is not None, step
        assert context is not None, step
        assert parent.span_id == turn.context.span_id, step
        assert context.trace_id == int(TRACE, 16), step
    return spans, turn.context


async def test_a_command_is_one_turn_span_with_decide_and_commit_inside_which_publishes(
    sidecar: InMemorySidecar, recorded: Recorded
) -> None:
    spans, turn = await restock_in_a_trace(sidecar, recorded, "decide", "commit")

    assert "publish inventory" not in spans  # the append published
    commit = spans["commit"].context
    [published] = sidecar.published
    # every delivery of the event hangs under the commit that wrote it
    assert published.headers["traceparent"] == f"00-{TRACE}-{commit.span_id:016x}-01"
    assert published.data["traceparent"] == f"00-{TRACE}-{turn.span_id:016x}-01"


async def test_publishing_through_the_sidecar_is_a_publish_span_after_the_commit(
    recorded: Recorded,
) -> None:
    sidecar = InMemorySidecar(publish_in_append=False)
    steps = ("decide", "commit", "publish inventory")
    spans, turn = await restock_in_a_trace(sidecar, recorded, *steps)

    publish = spans["publish inventory"].context
    [published] = sidecar.published
    # daprd's publish span (and every delivery of the event) hangs under ours
    assert published.headers["traceparent"] == f"00-{TRACE}-{publish.span_id:016x}-01"
    assert published.data["traceparent"] == f"00-{TRACE}-{turn.span_id:016x}-01"


async def test_a_refused_command_has_its_turn_and_decide_spans_and_no_commit(
    actors: ActorClient, recorded: Recorded
) -> None:
    with incoming(SAMPLED), pytest.raises(DomainError):
        await actors.invoke("InventoryActor", "tea", "Commit", {"order_id": "ord-1"})

    names = {s.name for s in recorded.finished()}
    assert {"InventoryActor.Commit", "decide"} <= names
    assert "commit" not in names


async def test_the_sagas_milestones_are_logged_with_the_order_actor_and_trace(
    actors: ActorClient, sidecar: InMemorySidecar, log_lines: io.StringIO
) -> None:
    order_lines: list[dict[str, Any]] = [{"sku": "tea", "quantity": 1, "unit_price": 100}]
    await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})
    await actors.invoke("WalletActor", "cust-1", "Deposit", {"amount": 500})
    with incoming(SAMPLED):
        await actors.invoke(
            "OrderActor", "ord-7", "Place", {"customer_id": "cust-1", "lines": order_lines}
        )
    await sidecar.settle()

    logged = lines(log_lines)
    saga = [line for line in logged if line["logger"] == "orderflow.saga"]
    assert [line["msg"] for line in saga] == ["order placed (total 100)", "order confirmed"]
    placed = saga[0]
    assert (placed["actor_type"], placed["actor_id"]) == ("OrderActor", "ord-7")
    assert placed["order_id"] == placed["correlation_id"] == "ord-7"
    assert placed["trace_id"] == trace_id_of(SAMPLED)
    assert saga[1]["order_id"] == "ord-7"
