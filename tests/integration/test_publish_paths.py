"""Both publish paths against real daprd: actor-host-1 publishes within its appends (the
default), actor-host-2 through its sidecar after them (ORDERFLOW_PUBLISH=sidecar, set for
this cluster in conftest.py). Either way every committed event reaches its topic's stream
once, with its event id as the CloudEvent id; only the sidecar path goes through daprd's
publish API (its pub/sub egress counter)."""

from __future__ import annotations

import re

import httpx
import redis

from cluster.local import LocalCluster
from tests.integration.support import call, ok, stream_events, wait_until

EGRESS = re.compile(r"^dapr_component_pubsub_egress_count\{([^}]*)\} ([0-9.e+]+)$", re.M)


def inventory_egress(cluster: LocalCluster, host: str) -> float:
    """Publishes to the inventory topic that this host's daprd has made."""
    port = cluster.app(host).metrics_port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(float(v) for labels, v in EGRESS.findall(text) if 'topic="inventory"' in labels)


def test_each_host_publishes_on_its_path_and_every_event_lands_once(
    cluster: LocalCluster, gateway_sidecar: httpx.Client, redis_client: redis.Redis, uid: str
) -> None:
    hosts = ("actor-host-1", "actor-host-2")
    before = {host: inventory_egress(cluster, host) for host in hosts}

    event_ids = []
    for n in range(24):  # placement spreads 24 actors over both hosts
        answer = call(
            gateway_sidecar, "InventoryActor", f"paths-{uid}-{n}", "Restock", {"quantity": 1}
        )
        ok(answer)
        event_ids.append(answer["events"][0]["event_id"])

    def on_the_stream() -> list[str]:
        wanted = set(event_ids)
        return [ce["id"] for ce in stream_events(redis_client, "inventory") if ce["id"] in wanted]

    wait_until(lambda: len(on_the_stream()) >= len(event_ids), timeout=30, what="every event")
    assert sorted(on_the_stream()) == sorted(event_ids)  # each exactly once
    after = {host: inventory_egress(cluster, host) for host in hosts}
    assert after["actor-host-1"] == before["actor-host-1"]  # the append wrote the stream
    assert after["actor-host-2"] > before["actor-host-2"]  # its sidecar published
