"""`dapr run -f dapr/dapr.yaml` (the real dapr CLI) brings the apps up against our runtime."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cluster.config import ROOT, ClusterConfig
from cluster.local import LocalCluster
from cluster.processes import ClusterError, ensure_port_free, log_tail
from tests.integration.support import call, wait_until

# Its own ports, beside the session cluster (offset 11000) and `make run`, all clear of
# Linux's ephemeral range (tests/cluster/test_layout.py); take the first offset whose
# every port is free right now all the same.
OFFSETS = (11650, 11725, 11750, 11825, 11850)
PORT_KEYS = ("appPort", "daprHTTPPort", "daprGRPCPort", "metricsPort")


def _ports_free(ports: list[int]) -> bool:
    try:
        for port in ports:
            ensure_port_free(port, "dapr run -f")
    except ClusterError:
        return False
    return True


def _free_offset(run_file: dict[str, Any], scratch: Path) -> int:
    for offset in OFFSETS:
        ports = [app[k] + offset for app in run_file["apps"] for k in PORT_KEYS]
        infra = ClusterConfig(
            runtime_dir=ROOT, state_dir=scratch, port_offset=offset, with_apps=False
        )
        procs = LocalCluster(infra).processes.values()
        if _ports_free(ports + [p for proc in procs for p in proc.ports]):
            return offset
    pytest.fail(f"no free port set for the dapr run test at offsets {OFFSETS}")


def _shift(run_file: dict[str, Any], offset: int) -> dict[str, Any]:
    """The same run file with every port moved by `offset` and paths made absolute."""
    common = run_file["common"]
    common["resourcesPath"] = str(ROOT / "components")
    common["configFilePath"] = str(ROOT / "dapr" / "config.yaml")
    common["placementHostAddress"] = f"127.0.0.1:{50005 + offset}"
    common["env"]["ORDERFLOW_REDIS_HOST"] = f"127.0.0.1:{6380 + offset}"
    common["env"]["PYTHONPATH"] = str(ROOT)
    for app in run_file["apps"]:
        app["appDirPath"] = str(ROOT)
        for key in PORT_KEYS:
            app[key] += offset
        cmd = app["command"]
        cmd[cmd.index("--port") + 1] = str(app["appPort"])
    return run_file


@pytest.fixture
def run_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "dapr" / "dapr.yaml").read_text())
    return loaded


@pytest.fixture
def offset(run_file: dict[str, Any], tmp_path: Path) -> int:
    return _free_offset(run_file, tmp_path / "ports")  # its ports only


@pytest.fixture
def infra(tmp_path: Path, offset: int) -> Iterator[LocalCluster]:
    base = ClusterConfig.from_env()
    config = ClusterConfig(
        runtime_dir=base.runtime_dir,
        state_dir=tmp_path / "infra",
        port_offset=offset,
        with_apps=False,
    )
    with LocalCluster(config).running() as local:
        yield local


def test_dapr_run_f_starts_the_apps_and_an_actor_call_succeeds(
    infra: LocalCluster, tmp_path: Path, run_file: dict[str, Any], offset: int
) -> None:
    run_file = _shift(run_file, offset)
    path = tmp_path / "dapr.yaml"
    path.write_text(yaml.safe_dump(run_file))
    env = {
        **os.environ,
        "DAPR_RUNTIME_PATH": str(infra.config.runtime_dir / "dapr"),
        "ORDERFLOW_REDIS_HOST": f"127.0.0.1:{6380 + offset}",
        "DAPR_SCHEDULER_HOST_ADDRESS_DNS_A": f"127.0.0.1:{50006 + offset}",
        # as `make dapr-run` exports them: the CLI's daprds and apps inherit them
        **infra.tokens.env,
        "ORDERFLOW_GATEWAY_CLIENTS": str(infra.gateway_keys.clients_file),
    }
    log = tmp_path / "dapr-run.log"
    with log.open("wb") as out:
        cli = subprocess.Popen(
            [str(infra.config.dapr_bin / "dapr"), "run", "-f", str(path)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmp_path,
        )
    gateway = next(a for a in run_file["apps"] if a["appID"] == "gateway")
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{gateway['daprHTTPPort']}",
            timeout=10,
            headers=infra.tokens.sidecar_headers,
        ) as client:

            def answered() -> bool:
                if cli.poll() is not None:
                    return True  # reported below, with the CLI's log
                return (
                    client.post("/v1.0/actors/BeaconActor/dapr-run/method/Get").status_code == 200
                )

            try:
                wait_until(answered, timeout=90, what="an actor call through `dapr run -f`")
            except ClusterError as exc:
                raise AssertionError(f"{exc}; the CLI's log:\n{log_tail(log)}") from None
            assert cli.poll() is None, f"dapr run exited {cli.returncode}:\n{log_tail(log)}"
            assert call(client, "BeaconActor", "dapr-run", "Get")["ok"] is True
            # the sidecars the CLI started took the token from the environment
            refused = httpx.post(
                f"http://127.0.0.1:{gateway['daprHTTPPort']}"
                "/v1.0/actors/BeaconActor/dapr-run/method/Get",
                timeout=10,
            )
            assert refused.status_code == 401, refused.text
            # and the gateway the CLI started asks its clients for a key
            api = f"http://127.0.0.1:{gateway['appPort']}/inventory/dapr-run"
            assert httpx.get(api, timeout=10).status_code == 401
            keyed = httpx.get(api, timeout=10, headers=infra.gateway_keys.headers())
            assert keyed.status_code != 401, keyed.text
    finally:
        _stop(cli)


def _stop(cli: subprocess.Popen[bytes]) -> None:
    """SIGTERM the CLI's process group (it stops its apps and sidecars), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cli.pid, signal.SIGTERM)
    try:
        cli.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()
