"""One writer per actor, through the real runtime: zombie calls are fenced, deadlines survive."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import httpx
import pytest
import redis

from cluster.local import LocalCluster
from tests.integration.support import call, restock, stream_events, wait_until

INVENTORY = "InventoryActor"


def _hosts(cluster: LocalCluster) -> list[str]:
    return [a.name for a in cluster.config.apps() if a.name.startswith("actor-host")]


def _app_url(cluster: LocalCluster, host: str) -> str:
    return f"http://127.0.0.1:{cluster.app(host).app_port}"


def _sidecar_url(cluster: LocalCluster, host: str) -> str:
    return f"http://127.0.0.1:{cluster.app(host).http_port}"


def _holder(cluster: LocalCluster, token: str) -> str | None:
    for host in _hosts(cluster):
        resp = httpx.get(f"{_app_url(cluster, host)}/_test/holds/{token}", timeout=5)
        if resp.status_code == 200 and resp.json()["holding"]:
            return host
    return None


def _hold_on(cluster: LocalCluster, via: str, sku: str, token: str) -> str:
    """Send a Restock that the actor holds inside its turn; answers the host holding it."""

    def send() -> None:
        body = {"quantity": 100, "message_id": f"zombie-{token}", "fault": f"hold:{token}"}
        url = f"{_sidecar_url(cluster, via)}/v1.0/actors/{INVENTORY}/{sku}/method/Restock"
        # its sidecar is killed under it: the client sees the connection drop
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, json=body, timeout=150, headers=cluster.tokens.sidecar_headers)

    threading.Thread(target=send, daemon=True).start()
    holders: list[str] = []

    def held() -> bool:
        holder = _holder(cluster, token)
        if holder is not None:
            holders.append(holder)
        return bool(holders)

    wait_until(held, timeout=30, what=f"a host to hold {token}")
    return holders[0]


def _events_by_version(client: redis.Redis, sku: str) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for ce in stream_events(client, "inventory"):
        env = ce["data"]
        if env["aggregate_id"] == sku:
            found.setdefault(env["aggregate_version"], []).append(env)
    return found


def test_a_zombie_call_released_after_its_actor_moved_is_fenced_and_forks_nothing(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str
) -> None:
    via = _hosts(cluster)[0]
    for attempt in range(8):  # until the SKU lives on `via`, whose sidecar we then kill
        sku, token = f"zombie-{uid}-{attempt}", f"{uid}-{attempt}"
        restock(gateway_sidecar, sku, 5)
        holder = _hold_on(cluster, via, sku, token)
        if holder == via:
            break
        httpx.post(f"{_app_url(cluster, holder)}/_test/holds/{token}/release", timeout=15)
    else:
        pytest.fail(f"no SKU landed on {via} in 8 tries")

    cluster.kill(f"{via}-daprd")  # the actor moves; the app and its held coroutine live on
    try:
        winner = {"quantity": 1, "message_id": f"winner-{token}"}
        answers: list[dict[str, Any]] = []

        def committed() -> bool:
            resp = gateway_sidecar.post(
                f"/v1.0/actors/{INVENTORY}/{sku}/method/Restock", json=winner, timeout=30
            )
            if resp.status_code == 200 and resp.json()["ok"]:
                answers.append(resp.json())
            return bool(answers)

        wait_until(committed, timeout=90, what=f"{sku} to commit on the surviving host")
        assert answers[-1]["aggregate_version"] == 2
        released = httpx.post(f"{_app_url(cluster, via)}/_test/holds/{token}/release", timeout=15)
        assert released.json() == {"outcome": "conflict"}
    finally:
        cluster.restart(f"{via}-daprd")

    # The held command, retried as a client would, reaches the current owner once.
    retried = call(
        gateway_sidecar,
        INVENTORY,
        sku,
        "Restock",
        {"quantity": 100, "message_id": f"zombie-{token}"},
    )
    assert (retried["aggregate_version"], retried["result"]["on_hand"]) == (3, 106)
    wait_until(
        lambda: sorted(_events_by_version(redis_client, sku)) == [1, 2, 3],
        timeout=30,
        what="versions 1..3 on the inventory stream",
    )
    for version, copies in _events_by_version(redis_client, sku).items():
        distinct = {json.dumps(e, sort_keys=True) for e in copies}
        assert len(distinct) == 1, f"version {version} published as {distinct}"
    second = _events_by_version(redis_client, sku)[2][0]
    assert second["payload"]["quantity"] == 1  # the winner's event, never the zombie's
    assert second["causation_id"] == f"winner-{token}"


def test_an_order_whose_host_dies_right_after_the_save_still_reaches_a_terminal_state(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str
) -> None:
    sku, customer, order = f"dl-{uid}", f"cust-dl-{uid}", f"ord-dl-{uid}"
    restock(gateway_sidecar, sku, 3)
    host = _hosts(cluster)[0]
    body = {
        "customer_id": customer,
        "lines": [{"sku": sku, "quantity": 1, "unit_price": 500}],
        "fault": "crash_after_save",
    }
    # Straight to the app, not through a sidecar: no retry may revive the order; after the
    # crash only its deadline reminder can (it was registered before the save). The test
    # stands in for daprd, so it carries the app token daprd would.
    url = f"{_app_url(cluster, host)}/actors/OrderActor/{order}/method/Place"
    as_daprd = {"dapr-api-token": cluster.tokens.app}
    try:
        with pytest.raises(httpx.HTTPError):
            httpx.put(url, content=json.dumps(body), timeout=30, headers=as_daprd)
        wait_until(lambda: not cluster.processes[host].alive(), timeout=30, what=f"{host} to die")
    finally:
        cluster.restart(host)

    def finished() -> set[str]:
        return {
            ce["data"]["type"]
            for ce in stream_events(redis_client, "orders")
            if ce["data"]["aggregate_id"] == order
        }

    # No wallet for the customer: the saga ends cancelled (payment declined) by itself.
    wait_until(
        lambda: "order.cancelled" in finished(),
        timeout=90,
        what=f"{order} to end with no client call after the crash",
    )
    assert {"order.placed", "order.cancelled"} <= finished()
    assert "order.shipped" not in finished()
