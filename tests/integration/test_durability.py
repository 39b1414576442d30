"""Acknowledged actor state survives kill -9 of the app, of its sidecar, and of Redis (AOF)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cluster.local import LocalCluster
from tests.integration.support import touch, wait_until


def _touch(client: httpx.Client, actor_id: str, times: int) -> str:
    result: dict[str, Any] = {}
    for _ in range(times):
        result = touch(client, actor_id, note="durable")
    return str(result["replica"])


def _touches_after_recovery(client: httpx.Client, actor_id: str) -> int:
    seen: list[int] = []

    def answered() -> bool:
        resp = client.post(f"/v1.0/actors/BeaconActor/{actor_id}/method/Get")
        if resp.status_code == 200:
            seen.append(resp.json()["result"]["touches"])
        return bool(seen)

    wait_until(answered, timeout=60, what=f"BeaconActor/{actor_id} to answer again")
    return seen[-1]


@pytest.mark.parametrize("victim", ["app", "sidecar"])
def test_state_survives_kill_9_of_the_actor_host(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str, victim: str
) -> None:
    replica = _touch(gateway_sidecar, uid, times=3)
    name = replica if victim == "app" else f"{replica}-daprd"

    cluster.kill(name)
    cluster.restart(name)

    assert _touches_after_recovery(gateway_sidecar, uid) == 3


def test_state_survives_kill_9_and_restart_of_redis(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    _touch(gateway_sidecar, uid, times=2)

    cluster.kill("redis")
    cluster.restart("redis")

    assert _touches_after_recovery(gateway_sidecar, uid) == 2
