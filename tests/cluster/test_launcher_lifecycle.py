"""`python -m cluster up` stops every process it started on Ctrl-C; `down` does too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from cluster.config import ROOT, ClusterConfig
from cluster.processes import wait_until


def _launch(state_dir: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {
        **os.environ,
        "ORDERFLOW_STATE_DIR": str(state_dir),
        "ORDERFLOW_PORT_OFFSET": "11500",
        "ORDERFLOW_RUNTIME_DIR": str(ClusterConfig.from_env().runtime_dir),
    }
    argv = [sys.executable, "-m", "cluster", "up", "--infra-only", *args]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    return proc, env


def _pids(state_dir: Path) -> list[int]:
    data = json.loads((state_dir / "cluster.json").read_text())
    return [entry["pid"] for entry in data["processes"].values()]


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_ctrl_c_stops_every_process_the_launcher_started(tmp_path: Path) -> None:
    proc, _ = _launch(tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Ctrl-C stops everything" in line:
            break
    pids = _pids(tmp_path)
    assert len(pids) == 3

    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)

    assert proc.returncode == 0
    wait_until(lambda: all(_gone(p) for p in pids), timeout=10, what="every child to exit")


def test_down_stops_a_detached_cluster(tmp_path: Path) -> None:
    proc, env = _launch(tmp_path, "--detach")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    pids = _pids(tmp_path)

    down = subprocess.run(
        [sys.executable, "-m", "cluster", "down"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert down.returncode == 0, down.stderr
    wait_until(lambda: all(_gone(p) for p in pids), timeout=10, what="every child to exit")
    assert not (tmp_path / "cluster.json").exists()
