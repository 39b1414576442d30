"""`dapr run -f dapr/dapr.yaml` (the real dapr CLI) brings the apps up against our runtime."""

from __future__ import annotations

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
from cluster.processes import log_tail
from tests.integration.support import call, wait_until

OFFSET = 2000  # its own ports: beside the session cluster (offset 1000) and `make run`
PORT_KEYS = ("appPort", "daprHTTPPort", "daprGRPCPort", "metricsPort")


def _shift(run_file: dict[str, Any]) -> dict[str, Any]:
    """The same run file with every port moved by OFFSET and paths made absolute."""
    common = run_file["common"]
    common["resourcesPath"] = str(ROOT / "components")
    common["configFilePath"] = str(ROOT / "dapr" / "config.yaml")
    common["placementHostAddress"] = f"127.0.0.1:{50005 + OFFSET}"
    common["env"]["ORDERFLOW_REDIS_HOST"] = f"127.0.0.1:{6380 + OFFSET}"
    common["env"]["PYTHONPATH"] = str(ROOT)
    for app in run_file["apps"]:
        app["appDirPath"] = str(ROOT)
        for key in PORT_KEYS:
            app[key] += OFFSET
        cmd = app["command"]
        cmd[cmd.index("--port") + 1] = str(app["appPort"])
    return run_file


@pytest.fixture
def infra(tmp_path: Path) -> Iterator[LocalCluster]:
    base = ClusterConfig.from_env()
    config = ClusterConfig(
        runtime_dir=base.runtime_dir,
        state_dir=tmp_path / "infra",
        port_offset=OFFSET,
        with_apps=False,
    )
    with LocalCluster(config).running() as local:
        yield local


def test_dapr_run_f_starts_the_apps_and_an_actor_call_succeeds(
    infra: LocalCluster, tmp_path: Path
) -> None:
    run_file = _shift(yaml.safe_load((ROOT / "dapr" / "dapr.yaml").read_text()))
    path = tmp_path / "dapr.yaml"
    path.write_text(yaml.safe_dump(run_file))
    env = {
        **os.environ,
        "DAPR_RUNTIME_PATH": str(infra.config.runtime_dir / "dapr"),
        "ORDERFLOW_REDIS_HOST": f"127.0.0.1:{6380 + OFFSET}",
        "DAPR_SCHEDULER_HOST_ADDRESS_DNS_A": f"127.0.0.1:{50006 + OFFSET}",
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
            base_url=f"http://127.0.0.1:{gateway['daprHTTPPort']}", timeout=10
        ) as client:

            def answered() -> bool:
                if cli.poll() is not None:
                    raise AssertionError(f"dapr run exited {cli.returncode}:\n{log_tail(log)}")
                return (
                    client.post("/v1.0/actors/BeaconActor/dapr-run/method/Get").status_code == 200
                )

            wait_until(answered, timeout=90, what="an actor call through `dapr run -f`")
            assert call(client, "BeaconActor", "dapr-run", "Get")["ok"] is True
    finally:
        os.killpg(cli.pid, signal.SIGTERM)
        try:
            cli.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
