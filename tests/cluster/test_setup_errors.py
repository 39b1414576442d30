"""The launcher fails fast with a message that names the port or the make target."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cluster.config import ClusterConfig
from cluster.local import LocalCluster
from cluster.processes import ClusterError


def _config(
    tmp_path: Path, *, runtime_dir: Path | None = None, offset: int = 11400
) -> ClusterConfig:
    return ClusterConfig(
        runtime_dir=runtime_dir or ClusterConfig.from_env().runtime_dir,
        state_dir=tmp_path / "state",
        port_offset=offset,
    )


def test_a_taken_port_is_named_in_the_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    if not (config.dapr_bin / "daprd").exists():
        pytest.fail("the Dapr runtime is not built: run `make runtime` (make test does)")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.redis_port))
        squatter.listen()
        with pytest.raises(ClusterError, match=rf"port {config.redis_port} \(needed by redis\)"):
            LocalCluster(config).start()


def test_a_missing_binary_names_the_make_target(tmp_path: Path) -> None:
    config = _config(tmp_path, runtime_dir=tmp_path / "empty-runtime")

    with pytest.raises(ClusterError, match=r"daprd not found .* run `make runtime`"):
        LocalCluster(config).start()


def test_a_port_offset_that_leaves_the_port_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside 1-65535"):
        LocalCluster(_config(tmp_path, offset=20_000))
