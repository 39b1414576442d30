"""Turn-based concurrency: one actor id never runs two calls at once; different ids do."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import httpx

from cluster.local import LocalCluster


def _overlaps(visits: list[dict[str, float]]) -> int:
    ordered = sorted(visits, key=lambda v: v["enter"])
    return sum(1 for a, b in itertools.pairwise(ordered) if b["enter"] < a["exit"])


async def _touch_concurrently(
    cluster: LocalCluster, ids: list[str], hold_ms: int
) -> list[dict[str, float]]:
    """Touch every id at once through the gateway's sidecar; return the visits the actors
    recorded (one per applied turn)."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{cluster.app('gateway').http_port}",
        timeout=30,
        headers=cluster.tokens.sidecar_headers,
    ) as client:

        async def call(actor_id: str, method: str, body: object = None) -> dict[str, object]:
            resp = await client.post(
                f"/v1.0/actors/BeaconActor/{actor_id}/method/{method}", json=body
            )
            assert resp.status_code == 200, resp.text
            result: dict[str, object] = resp.json()["result"]
            return result

        await asyncio.gather(
            *(call(i, "Touch", {"hold_ms": hold_ms, "request_id": uuid.uuid4().hex}) for i in ids)
        )
        states = await asyncio.gather(*(call(i, "Get") for i in sorted(set(ids))))
        return [visit for state in states for visit in state["visits"]]  # type: ignore[attr-defined]


async def test_concurrent_calls_to_one_actor_never_overlap(cluster: LocalCluster, uid: str) -> None:
    visits = await _touch_concurrently(cluster, [uid] * 8, hold_ms=40)

    assert len(visits) == 8
    assert _overlaps(visits) == 0


async def test_calls_to_different_actors_run_in_parallel(cluster: LocalCluster, uid: str) -> None:
    ids = [f"{uid}-{n}" for n in range(8)]
    visits = await _touch_concurrently(cluster, ids, hold_ms=200)

    # 8 turns of 200 ms each: run one after another they would take 1.6 s.
    span = max(v["exit"] for v in visits) - min(v["enter"] for v in visits)
    assert _overlaps(visits) > 0
    assert span < 1.2
