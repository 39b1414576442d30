"""make bench's cluster (and its workflow peer) runs beside every working cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness import BENCH_PORT_OFFSET, PEER_APP_ID, peer_ports, write_peer_resources
from cluster.config import ClusterConfig
from cluster.local import LocalCluster

# tests/cluster/test_layout.py's WORKING_SIDE_BY_SIDE: the clusters engineers run at once
WORKING = (0, 11000, 12000, 12250, 12500, 12625, 12750, 13125)
EPHEMERAL = range(32768, 61000)


def _ports(tmp_path: Path, offset: int, replicas: int, *, peer: bool) -> list[int]:
    config = ClusterConfig(
        runtime_dir=tmp_path,
        state_dir=tmp_path / str(offset),
        port_offset=offset,
        actor_host_replicas=replicas,
        with_ops=True,
    )
    ports = [p for proc in LocalCluster(config).processes.values() for p in proc.ports]
    return ports + list(peer_ports(offset)) if peer else ports


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_the_bench_cluster_shares_no_port_with_a_working_cluster(
    tmp_path: Path, replicas: int
) -> None:
    bench = _ports(tmp_path, BENCH_PORT_OFFSET, replicas, peer=True)

    assert len(bench) == len(set(bench))
    assert [p for p in bench if p in EPHEMERAL] == []
    for offset in WORKING:
        for theirs in (1, 2, 3):
            assert set(bench).isdisjoint(_ports(tmp_path, offset, theirs, peer=False)), offset


def test_the_peer_gets_the_actor_state_store_scoped_to_itself_only(tmp_path: Path) -> None:
    write_peer_resources(tmp_path)

    store = (tmp_path / "statestore.yaml").read_text()

    assert "actorStateStore" in store
    assert f"scopes:\n- {PEER_APP_ID}\n" in store
