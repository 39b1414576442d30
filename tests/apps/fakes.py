"""Fake actor clients for the gateway tests.

FakeActors runs the real pure domain models (decide/evolve) in memory and answers through
the real result-envelope parser, so domain errors reach the gateway exactly as they would
across the actor hop. It dedupes by message id like the actors' inbox, keeps an event log
for History, and lets a test move a saga along with `apply`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from actors.inventory import model as inventory
from actors.order import model as order
from actors.toolkit.client import ActorClient, ActorResult, parse_envelope
from actors.toolkit.domain import Command, Event, State
from actors.toolkit.envelope import EventEnvelope, failed
from actors.toolkit.errors import DomainError, InvalidCommandError
from actors.wallet import model as wallet


def ok(result: Any, **extra: Any) -> bytes:
    """A success result envelope, as an actor method's JSON body (what the actor base sends)."""
    return json.dumps({"ok": True, "result": result, **extra}, separators=(",", ":")).encode()


def _order_view(order_id: str, state: order.OrderState) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "status": state.status.value,
        "customer_id": state.customer_id,
        "lines": [line.model_dump() for line in state.lines],
        "total": state.total,
        "reserved_skus": sorted(state.reserved_skus),
        "cancel_reason": state.cancel_reason,
    }


def _inventory_view(sku: str, state: inventory.InventoryState) -> dict[str, Any]:
    return {
        "sku": sku,
        "on_hand": state.on_hand,
        "reserved": state.reserved,
        "available": state.available,
    }


def _wallet_view(customer_id: str, state: wallet.WalletState) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "balance": state.balance,
        "held": state.held,
        "available": state.available,
    }


def _order_placed(state: order.OrderState) -> None:
    if state.status is order.Status.NEW:
        raise order.OrderNotFoundError("order was never placed")


@dataclass(frozen=True)
class Entity:
    """What the fake needs to host one actor type."""

    initial: Callable[[], Any]
    decide: Callable[[Any, Any], list[Event]]
    evolve: Callable[[Any, Any], Any]
    view: Callable[[str, Any], dict[str, Any]]
    commands: dict[str, type[Command]]
    id_field: str | None = None  # a command field the actor fills from its id
    check_exists: Callable[[Any], None] = lambda state: None


ENTITIES: dict[str, Entity] = {
    "OrderActor": Entity(
        order.initial_state,
        order.decide,
        order.evolve,
        _order_view,
        {"Place": order.Place, "Cancel": order.Cancel},
        check_exists=_order_placed,
    ),
    "InventoryActor": Entity(
        inventory.initial_state,
        inventory.decide,
        inventory.evolve,
        _inventory_view,
        {"Restock": inventory.Restock},
        id_field="sku",
    ),
    "WalletActor": Entity(
        wallet.initial_state,
        wallet.decide,
        wallet.evolve,
        _wallet_view,
        {"Deposit": wallet.Deposit},
    ),
}


@dataclass
class Aggregate:
    state: State
    log: list[EventEnvelope] = field(default_factory=list)
    inbox: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    actor_type: str
    actor_id: str
    method: str
    payload: dict[str, Any]


class FakeActors(ActorClient):
    """An ActorClient whose actors live in this process (it never touches HTTP)."""

    def __init__(self) -> None:  # no super().__init__: there is no sidecar to hold
        self.aggregates: dict[tuple[str, str], Aggregate] = {}
        self.calls: list[Call] = []

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        payload: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> ActorResult:
        wire = json.loads(json.dumps(payload or {}))  # what a sidecar would carry
        self.calls.append(Call(actor_type, actor_id, method, wire))
        return parse_envelope(200, self._answer(actor_type, actor_id, method, dict(wire)))

    def aggregate(self, actor_type: str, actor_id: str) -> Aggregate:
        key = (actor_type, actor_id)
        if key not in self.aggregates:
            self.aggregates[key] = Aggregate(ENTITIES[actor_type].initial())
        return self.aggregates[key]

    def view(self, actor_type: str, actor_id: str) -> dict[str, Any]:
        state = self.aggregate(actor_type, actor_id).state
        return ENTITIES[actor_type].view(actor_id, state)

    def apply(self, actor_type: str, actor_id: str, command: Command) -> None:
        """Decide and record `command` as the actor would (e.g. a saga step)."""
        entity = ENTITIES[actor_type]
        agg = self.aggregate(actor_type, actor_id)
        for event in entity.decide(agg.state, command):
            agg.state = entity.evolve(agg.state, event)
            agg.log.append(
                EventEnvelope.wrap(
                    event,
                    aggregate_type=actor_type,
                    aggregate_id=actor_id,
                    aggregate_version=len(agg.log) + 1,
                )
            )

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # --- the actor side ---------------------------------------------------------------------

    def _answer(self, actor_type: str, actor_id: str, method: str, body: dict[str, Any]) -> bytes:
        entity = ENTITIES[actor_type]
        agg = self.aggregate(actor_type, actor_id)
        try:
            if method == "Get":
                entity.check_exists(agg.state)
                return ok(entity.view(actor_id, agg.state), aggregate_version=len(agg.log))
            if method == "History":
                return ok(_page(agg.log, after=body["after"], limit=body["limit"]))
            return self._command(actor_type, actor_id, method, body)
        except DomainError as exc:
            return failed(exc)

    def _command(self, actor_type: str, actor_id: str, method: str, body: dict[str, Any]) -> bytes:
        entity = ENTITIES[actor_type]
        agg = self.aggregate(actor_type, actor_id)
        message_id = body.pop("message_id", "")
        if message_id in agg.inbox:
            return ok(agg.inbox[message_id]["result"], duplicate=True)
        if entity.id_field:
            body[entity.id_field] = actor_id
        try:
            # Strict JSON validation, as the actor does: "5" and 5.0 are not quantities.
            command = entity.commands[method].model_validate_json(json.dumps(body), strict=True)
        except ValidationError as exc:
            raise InvalidCommandError(str(exc)) from exc
        self.apply(actor_type, actor_id, command)
        answer = {"result": entity.view(actor_id, agg.state)}
        if message_id:
            agg.inbox[message_id] = answer
        return ok(answer["result"], aggregate_version=len(agg.log))


def _page(log: list[EventEnvelope], *, after: int, limit: int) -> dict[str, Any]:
    last = min(len(log), after + limit)
    return {
        "events": [env.model_dump(mode="json") for env in log[after:last]],
        "next_after": last if last < len(log) else None,
    }


class ScriptedActors(ActorClient):
    """An ActorClient that answers every call by running `script(actor_type, method)`."""

    def __init__(self, script: Callable[[str, str], ActorResult]) -> None:
        self.script = script
        self.calls: list[Call] = []

    async def invoke(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        payload: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> ActorResult:
        self.calls.append(Call(actor_type, actor_id, method, dict(payload or {})))
        return self.script(actor_type, method)
