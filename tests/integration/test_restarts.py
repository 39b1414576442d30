"""A used cluster comes back up after every stop, and stops without SIGKILL.

"Used": orders mid-saga, reminders pending in the scheduler and a backlog in the Redis
streams at the moment it stops. Its own cluster at port offset 12500. And a scheduler
killed with SIGKILL counts as restarted only once it schedules reminders again.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from chaos.faults import ports_free
from cluster.local import LocalCluster
from tests.integration.conftest import cluster_config
from tests.integration.support import call, envelope, publish, touch, wait_until

PORT_OFFSET = 12500
RESTARTS = 5
SKUS = ("tea-a", "tea-b", "tea-c")
CUSTOMERS = ("cust-a", "cust-b")


def _use(cluster: LocalCluster, round_no: int) -> list[str]:
    """Orders through the gateway, reminders armed, and restocks left in the stream."""
    api = f"http://127.0.0.1:{cluster.app('gateway').app_port}"
    sidecar = f"http://127.0.0.1:{cluster.app('gateway').http_port}"
    placed = []
    with httpx.Client(base_url=api, timeout=30, headers=cluster.gateway_keys.headers()) as client:
        for customer in CUSTOMERS:
            resp = client.post(f"/wallets/{customer}/deposit", json={"amount": 100_000})
            assert resp.status_code == 200, resp.text
        for sku in SKUS:
            resp = client.post(f"/inventory/{sku}/restock", json={"quantity": 100})
            assert resp.status_code == 200, resp.text
        for n in range(8):
            body = {
                "customer_id": CUSTOMERS[n % 2],
                "lines": [
                    {"sku": SKUS[n % 3], "quantity": 1, "unit_price": 300},
                    {"sku": SKUS[(n + 1) % 3], "quantity": 2, "unit_price": 150},
                ],
            }
            key = f"restart-{round_no}-{n}-{uuid.uuid4().hex[:8]}"
            resp = client.post("/orders", json=body, headers={"Idempotency-Key": key})
            assert resp.status_code == 202, resp.text
            placed.append(resp.headers["location"])
    with httpx.Client(base_url=sidecar, timeout=30, headers=cluster.tokens.sidecar_headers) as dapr:
        for n in range(4):  # reminders the scheduler holds across the restart
            arm = {"due_ms": 0, "period_ms": 1000}
            resp = dapr.post(f"/v1.0/actors/BeaconActor/beat-{n}/method/Arm", json=arm)
            assert resp.status_code == 200, resp.text
        for n in range(60):  # a backlog: published right before the stop
            event = envelope("inventory.stock_received", {"sku": SKUS[n % 3], "quantity": 1})
            publish(
                dapr,
                "restocks",
                event,
                event_id=event["event_id"],
                event_type="inventory.stock_received",
            )
    return placed


def _answers(cluster: LocalCluster, orders: list[str]) -> None:
    """An actor call answers through the gateway's sidecar, and every order is readable."""
    with httpx.Client(
        base_url=f"http://127.0.0.1:{cluster.app('gateway').http_port}",
        timeout=30,
        headers=cluster.tokens.sidecar_headers,
    ) as dapr:
        assert touch(dapr, f"after-restart-{uuid.uuid4().hex[:8]}")["touches"] == 1
    with httpx.Client(
        base_url=f"http://127.0.0.1:{cluster.app('gateway').app_port}",
        timeout=30,
        headers=cluster.gateway_keys.headers(),
    ) as api:
        for location in orders:
            resp = api.get(location)
            assert resp.status_code == 200, resp.text


def test_a_used_cluster_comes_back_up_after_each_stop_and_stops_without_sigkill(
    tmp_path: Path,
) -> None:
    config = cluster_config(
        tmp_path / "cluster", port_offset=PORT_OFFSET, step_timeout_s=30, shipping_timeout_s=8
    )
    cluster = LocalCluster(config)
    cluster.start()
    ups, downs = [], []
    orders: list[str] = []
    try:
        for round_no in range(RESTARTS):
            orders += _use(cluster, round_no)
            stopped = cluster.stop()
            downs.append(max(s.seconds for s in stopped))
            assert not [s.describe() for s in stopped if s.killed]

            started = time.monotonic()
            cluster.start()  # raises, naming the process and its log, if it does not come up
            ups.append(time.monotonic() - started)
            _answers(cluster, orders)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{cluster.app('gateway').app_port}",
            timeout=60,
            headers=cluster.gateway_keys.headers(),
        ) as api:  # the saga still runs end to end after the restarts
            final = api.get(_use(cluster, RESTARTS)[0], params={"wait": 30}).json()
            assert final["status"] in ("shipped", "cancelled"), final
    finally:
        stopped = cluster.stop()
    assert not [s.describe() for s in stopped if s.killed]
    print(
        f"\n{RESTARTS} restarts of a used cluster: up "
        + ", ".join(f"{u:.1f}s" for u in ups)
        + "; longest stop per round "
        + ", ".join(f"{d:.1f}s" for d in downs)
    )


def test_a_killed_scheduler_is_restarted_only_once_it_schedules_reminders(
    tmp_path: Path,
) -> None:
    """A SIGKILL leaves the scheduler's cron leadership lease behind: the restarted one
    answers its health route at once, but its cron waits for that lease to expire before
    it schedules anything. `restart` (and so the chaos suite's recovery time) waits for
    a reminder registered through every sidecar."""
    config = cluster_config(
        tmp_path / "cluster", port_offset=PORT_OFFSET, step_timeout_s=30, shipping_timeout_s=8
    )
    cluster = LocalCluster(config)
    cluster.start()
    try:
        scheduler = cluster.processes["scheduler"]
        assert scheduler.log_path.read_text().count("Cron is ready") == 1
        cluster.kill("scheduler")
        wait_until(lambda: ports_free([scheduler]), timeout=60, what="the scheduler's ports")

        cluster.restart("scheduler")

        # the restarted scheduler's cron had taken the lease over when restart returned
        assert scheduler.log_path.read_text().count("Cron is ready") == 2
        sidecar = f"http://127.0.0.1:{cluster.app('gateway').http_port}"
        with httpx.Client(
            base_url=sidecar, timeout=30, headers=cluster.tokens.sidecar_headers
        ) as dapr:
            actor_id = f"after-scheduler-kill-{uuid.uuid4().hex[:8]}"
            armed = call(dapr, "BeaconActor", actor_id, "Arm", {"due_ms": 0, "period_ms": 1000})
            assert armed["ok"], armed

            def fired() -> bool:
                got = call(dapr, "BeaconActor", actor_id, "Get")
                return int(got["result"]["reminder_fires"]) >= 2

            wait_until(fired, timeout=30, what="the reminder armed after the restart to fire")
            call(dapr, "BeaconActor", actor_id, "Disarm")
    finally:
        stopped = cluster.stop()
    assert not [s.describe() for s in stopped if s.killed]
