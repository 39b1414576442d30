"""`python -m cluster tokens` (`make tokens`, `make dapr-run`): what it prints for a cluster's
state dir, from the files the launcher keeps there."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cluster.__main__ import main
from cluster.config import ClusterConfig
from cluster.local import LocalCluster


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("ORDERFLOW_STATE_DIR", str(state))
    monkeypatch.setenv("ORDERFLOW_RUNTIME_DIR", str(tmp_path))
    return state


def test_before_any_cluster_it_says_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _env(tmp_path, monkeypatch)

    assert main(["tokens"]) == 3
    assert "start the cluster first" in capsys.readouterr().err
    assert not (state / "secrets").exists()  # asking makes nothing


def test_it_exports_the_tokens_and_keys_the_clusters_processes_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(tmp_path, monkeypatch)
    cluster = LocalCluster(ClusterConfig.from_env())

    assert main(["tokens"]) == 0
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in capsys.readouterr().out.splitlines()
    )
    assert exports == {
        "DAPR_API_TOKEN": cluster.tokens.dapr,
        "APP_API_TOKEN": cluster.tokens.app,
        "ORDERFLOW_REDIS_PASSWORD": cluster.tokens.redis,
        "REDISCLI_AUTH": cluster.tokens.redis,  # redis-cli's own variable
        **cluster.gateway_keys.env,
    }
    assert exports["ORDERFLOW_GATEWAY_KEY"] == cluster.gateway_keys.keys["ops"]

    assert main(["tokens", "--env"]) == 0
    pairs = dict(word.split("=", 1) for word in shlex.split(capsys.readouterr().out))
    gateway = cluster.processes["gateway"].env
    assert pairs == {
        "DAPR_API_TOKEN": gateway["DAPR_API_TOKEN"],
        "APP_API_TOKEN": gateway["APP_API_TOKEN"],
        "ORDERFLOW_REDIS_PASSWORD": gateway["ORDERFLOW_REDIS_PASSWORD"],
        "ORDERFLOW_GATEWAY_CLIENTS": gateway["ORDERFLOW_GATEWAY_CLIENTS"],
    }
