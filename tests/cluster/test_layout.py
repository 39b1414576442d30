"""The cluster layout: every process has its own ports, and every app is listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import ClusterConfig
from cluster.local import LocalCluster, subscribed


def _cluster(tmp_path: Path, *, replicas: int = 2) -> LocalCluster:
    config = ClusterConfig(
        runtime_dir=tmp_path, state_dir=tmp_path / "state", actor_host_replicas=replicas
    )
    return LocalCluster(config)


@pytest.mark.parametrize("replicas", [1, 2, 8, 20])
def test_no_two_processes_share_a_port(tmp_path: Path, replicas: int) -> None:
    ports = [
        p for proc in _cluster(tmp_path, replicas=replicas).processes.values() for p in proc.ports
    ]

    assert len(ports) == len(set(ports))


def test_the_shipping_partner_runs_with_its_sidecar_and_waits_for_its_subscription(
    tmp_path: Path,
) -> None:
    cluster = _cluster(tmp_path)
    shipping = cluster.app("shipping")

    assert {"shipping", "shipping-daprd"} <= set(cluster.processes)
    assert (shipping.app_id, shipping.app_port, shipping.http_port) == ("shipping", 8200, 3600)
    assert shipping.subscriptions == ("pubsub/orders",)
    assert ("shipping partner API", "http://127.0.0.1:8200/docs") in cluster.urls()
    assert (
        "shipping sidecar (Dapr API)",
        "http://127.0.0.1:3600/v1.0/metadata",
    ) in cluster.urls()


def test_a_subscription_counts_once_the_sidecar_reports_it() -> None:
    metadata = {"subscriptions": [{"pubsubname": "pubsub", "topic": "orders", "rules": []}]}

    assert subscribed(metadata, ("pubsub/orders",))
    assert not subscribed({}, ("pubsub/orders",))
    assert not subscribed(metadata, ("pubsub/shipments",))
