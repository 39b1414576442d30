"""A reminder fires, and keeps firing after the actor host that ran it restarts."""

from __future__ import annotations

from typing import Any

import httpx

from cluster.local import LocalCluster
from tests.integration.support import call, wait_until


def _fires(client: httpx.Client, actor_id: str) -> dict[str, Any]:
    result: dict[str, Any] = call(client, "BeaconActor", actor_id, "Get")["result"]
    return result


def test_reminder_fires_and_survives_an_actor_host_restart(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    call(gateway_sidecar, "BeaconActor", uid, "Arm", {"due_ms": 0, "period_ms": 1000})
    try:
        wait_until(
            lambda: int(_fires(gateway_sidecar, uid)["reminder_fires"]) >= 2,
            timeout=30,
            what="2 reminder fires",
        )
        state = _fires(gateway_sidecar, uid)
        replica = str(state["replica"])

        cluster.kill(replica)
        cluster.restart(replica)
        before = int(_fires_when_up(gateway_sidecar, uid)["reminder_fires"])

        wait_until(
            lambda: int(_fires(gateway_sidecar, uid)["reminder_fires"]) >= before + 2,
            timeout=30,
            what="the reminder to fire again after the restart",
        )
    finally:
        call(gateway_sidecar, "BeaconActor", uid, "Disarm")


def _fires_when_up(client: httpx.Client, actor_id: str) -> dict[str, Any]:
    got: list[dict[str, Any]] = []

    def answered() -> bool:
        resp = client.post(f"/v1.0/actors/BeaconActor/{actor_id}/method/Get")
        if resp.status_code == 200:
            got.append(resp.json()["result"])
        return bool(got)

    wait_until(answered, timeout=60, what=f"{actor_id} to answer after the restart")
    return got[-1]
