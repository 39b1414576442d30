"""Placement spreads actors over both replicas and moves them when one dies."""

from __future__ import annotations

import httpx

from cluster.local import LocalCluster
from tests.integration.support import touch, wait_until


def test_actors_spread_over_replicas_and_fail_over_with_state(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, uid: str
) -> None:
    ids = [f"{uid}-{n}" for n in range(24)]
    home = {i: touch(gateway_sidecar, i, note=i)["replica"] for i in ids}
    assert set(home.values()) == {"actor-host-1", "actor-host-2"}

    moved = [i for i, replica in home.items() if replica == "actor-host-2"]
    cluster.kill("actor-host-2-daprd")
    cluster.kill("actor-host-2")
    try:
        for actor_id in moved:
            answers: list[dict[str, object]] = []

            def answered(
                actor_id: str = actor_id, answers: list[dict[str, object]] = answers
            ) -> bool:
                resp = gateway_sidecar.post(f"/v1.0/actors/BeaconActor/{actor_id}/method/Get")
                if resp.status_code == 200:
                    answers.append(resp.json()["result"])
                return bool(answers)

            wait_until(
                answered, timeout=60, what=f"{actor_id} to answer from the surviving replica"
            )
            assert answers[-1]["replica"] == "actor-host-1"
            assert answers[-1]["touches"] == 1
            assert answers[-1]["note"] == actor_id
    finally:
        cluster.restart("actor-host-2")
        cluster.restart("actor-host-2-daprd")
