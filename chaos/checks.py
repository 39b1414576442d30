"""The invariants a chaos run must keep, each a function returning examples of violations.

forks                 no (aggregate, version) published with two contents
disagreements         every published event equals the stored one, and every stored
                      version was published
stock / money         restocked - committed = on_hand and deposited - captured =
                      balance; nothing reserved or held once every order ended; what
                      was committed and captured is what the shipped orders took
read models           the projector's rows agree with the actors
acknowledged          every accepted order and accepted cancel is in the history
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from actors import catalog
from chaos.faults import ActorState
from chaos.load import LoadResults
from chaos.streams import stream_events

TOPICS = (catalog.ORDERS, catalog.INVENTORY, catalog.WALLET)  # one per actor type
TERMINAL = {"shipped", "cancelled"}

Group = tuple[str, str, int]  # (aggregate_type, aggregate_id, aggregate_version)
Groups = dict[Group, list[dict[str, Any]]]  # every published copy of each version
Problems = dict[str, list[str]]


@dataclass(frozen=True)
class Seed:
    stocked: dict[str, int]  # sku -> quantity restocked
    funds: dict[str, int]  # customer -> amount deposited


@dataclass
class Run:
    """What one chaos run did and saw; `problems` by kind, each a list of examples."""

    seeded: Seed
    results: LoadResults = field(default_factory=LoadResults)
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> view
    stored_events: int = 0
    unavailable: dict[str, float] = field(default_factory=dict)  # probe id -> longest gap (s)
    fault_kinds: list[str] = field(default_factory=list)  # the kinds injected, in order
    problems: Problems = field(default_factory=lambda: collections.defaultdict(list))


def get_json(api: httpx.Client, path: str) -> Any:
    resp = api.get(path)
    resp.raise_for_status()
    return resp.json()


def content(event: dict[str, Any]) -> str:
    return json.dumps([event["event_id"], event["type"], event["payload"]], sort_keys=True)


def published_groups(streams: redis.Redis) -> Groups:
    groups: Groups = collections.defaultdict(list)
    for topic in TOPICS:
        for cloud_event in stream_events(streams, topic):
            event = cloud_event["data"]
            key = (event["aggregate_type"], event["aggregate_id"], event["aggregate_version"])
            groups[key].append(event)
    return groups


def forks(groups: Groups) -> list[str]:
    """(aggregate, version) published with more than one content: the actor forked."""
    found = []
    for key, copies in sorted(groups.items()):
        distinct = sorted({content(e) for e in copies})
        if len(distinct) > 1:
            found.append(f"{key}: {distinct}")
    return found


def read_stored(state: ActorState, aggregates: Iterable[tuple[str, str]]) -> dict[Group, Any]:
    """Every event each aggregate's snapshot says it has: event-1 .. event-<version>."""
    stored: dict[Group, Any] = {}

    def read_one(aggregate: tuple[str, str]) -> None:
        snapshot = state.read(*aggregate, "aggregate") or {}
        for version in range(1, snapshot.get("version", 0) + 1):
            stored[(*aggregate, version)] = state.read(*aggregate, f"event-{version}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read_one, sorted(aggregates)))
    return stored


def unpublished(stored: dict[Group, Any], groups: Groups) -> list[str]:
    return [str(key) for key in sorted(stored) if key not in groups]


def disagreements(stored: dict[Group, Any], groups: Groups) -> Problems:
    problems: Problems = {"published, never stored": [], "published differs from stored": []}
    for key, copies in sorted(groups.items()):
        held = stored.get(key)
        if key not in stored:
            problems["published, never stored"].append(f"{key}: {content(copies[0])}")
        elif held is None or any(content(e) != content(held) for e in copies):
            problems["published differs from stored"].append(f"{key}: stored {held}")
    problems["stored, never published"] = unpublished(stored, groups)
    return problems


def totals(groups: Groups, event_type: str, amount: str) -> collections.Counter[str]:
    """Sum of payload[amount] over one event type (first copy of each version), by aggregate."""
    sums: collections.Counter[str] = collections.Counter()
    for (_, aggregate_id, _), copies in groups.items():
        if copies[0]["type"] == event_type:
            sums[aggregate_id] += int(copies[0]["payload"][amount])
    return sums


def ledger_problems(
    api: httpx.Client,
    seeded: dict[str, int],
    flows: tuple[collections.Counter[str], collections.Counter[str]],
    settled: collections.Counter[str],
    *,
    path: str,
    fields: tuple[str, str],
    names: str,
) -> list[str]:
    """Each ledger's (in, out, balance, held) from the events and its actor, against what the
    shipped orders took: in == seeded, out == settled, balance == in - out, held == 0."""
    credited, debited = flows
    problems = []
    for key, amount in seeded.items():
        view = get_json(api, path.format(key))
        balance, held = (view[field] for field in fields)
        found = (credited[key], debited[key], balance, held)
        expected = (amount, settled[key], amount - settled[key], 0)
        if found != expected:
            problems.append(f"{key} ({names}): {found} != {expected}")
    return problems


def stock_problems(api: httpx.Client, run: Run, groups: Groups) -> list[str]:
    sold = collections.Counter[str]()
    for order in run.finals.values():
        if order["status"] == "shipped":
            sold.update({line["sku"]: line["quantity"] for line in order["lines"]})
    flows = (
        totals(groups, "inventory.stock_restocked", "quantity"),
        totals(groups, "inventory.stock_committed", "quantity"),
    )
    names = "restocked, committed, on_hand, reserved"
    fields = ("on_hand", "reserved")
    path = "/inventory/{}"
    return ledger_problems(
        api, run.seeded.stocked, flows, sold, path=path, fields=fields, names=names
    )


def money_problems(api: httpx.Client, run: Run, groups: Groups) -> list[str]:
    paid = collections.Counter[str]()
    for order in run.finals.values():
        if order["status"] == "shipped":
            paid[order["customer_id"]] += order["total"]
    flows = (
        totals(groups, "wallet.funds_credited", "amount"),
        totals(groups, "wallet.payment_captured", "amount"),
    )
    names = "deposited, captured, balance, held"
    path = "/wallets/{}?consistency=strong"
    fields = ("balance", "held")
    return ledger_problems(
        api, run.seeded.funds, flows, paid, path=path, fields=fields, names=names
    )


def read_model_problems(api: httpx.Client, run: Run) -> list[str]:
    """The projector's rows (the gateway's default, eventual reads) against the actors."""
    problems = []
    for customer in run.seeded.funds:
        eventual = get_json(api, f"/wallets/{customer}")
        strong = get_json(api, f"/wallets/{customer}?consistency=strong")
        if (eventual["balance"], eventual["held"]) != (strong["balance"], strong["held"]):
            problems.append(f"wallet {customer}: read model {eventual} != actor {strong}")
    rows = {}
    for customer in run.seeded.funds:
        cursor = None
        while True:
            query = f"/orders?customer={customer}&limit=100" + (
                f"&cursor={cursor}" if cursor else ""
            )
            page = get_json(api, query)
            rows.update({row["order_id"]: row for row in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                break
    for order_id, final in run.finals.items():
        row = rows.get(order_id)
        if row is None or row["status"] != final["status"]:
            problems.append(
                f"order {order_id}: read model {row and row['status']} != {final['status']}"
            )
    return problems


def acknowledged_problems(run: Run, groups: Groups) -> list[str]:
    """Every order the gateway accepted was placed; every cancel it accepted cancelled it."""
    placed = {key[1] for key, copies in groups.items() if copies[0]["type"] == "order.placed"}
    problems = [f"{o}: accepted, never placed" for o in run.results.accepted if o not in placed]
    for order_id in sorted(run.results.cancelled):
        # 200 to a cancel: the order is cancelled now (by this call, or already before it)
        status = run.finals.get(order_id, {}).get("status")
        if status != "cancelled":
            problems.append(f"{order_id}: cancel accepted, order ended {status}")
    return problems


def dead_letters(streams: redis.Redis, aggregates: set[str]) -> collections.Counter[str]:
    """Dead letters about this run's aggregates, by code (each explained by its reason)."""
    found: collections.Counter[str] = collections.Counter()
    for cloud_event in stream_events(streams, catalog.DEAD_LETTERS):
        letter = cloud_event["data"]
        event = letter.get("event") or {}
        if isinstance(event, dict) and event.get("aggregate_id") in aggregates:
            found[f"{letter.get('code')}: {str(letter.get('reason'))[:80]}"] += 1
    return found
