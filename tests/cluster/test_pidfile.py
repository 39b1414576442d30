"""The detached cluster's pid file (cluster/pidfile.py): read, one entry replaced, matched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cluster import pidfile


def _write(path: Path, processes: dict[str, dict[str, object]]) -> None:
    path.write_text(json.dumps({"launcher": 1, "processes": processes}))


def test_record_replaces_one_entry_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    _write(
        path,
        {
            "redis": {"pid": 10, "exe": "/usr/bin/redis-server", "log": "/l/redis.log"},
            "actor-host-1-daprd": {"pid": 11, "exe": "/b/daprd", "log": "/l/d.log"},
        },
    )

    pidfile.record(path, "actor-host-1-daprd", pid=99, exe="/b/daprd", log=Path("/l/d.log"))

    data = json.loads(path.read_text())
    assert data["launcher"] == 1
    assert data["processes"]["actor-host-1-daprd"] == {
        "pid": 99,
        "exe": "/b/daprd",
        "log": "/l/d.log",
    }
    assert data["processes"]["redis"]["pid"] == 10
    assert not path.with_suffix(".json.partial").exists()
    assert pidfile.recorded(path)["actor-host-1-daprd"].pid == 99


def test_a_recorded_process_is_running_until_it_exits(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "up\n"  # exec'd: its /proc cmdline is its own
    path = tmp_path / "cluster.json"
    _write(path, {"child": {"pid": child.pid, "exe": sys.executable, "log": "/l/c.log"}})
    try:
        assert pidfile.live_pids(path) == {"child": child.pid}
        assert not pidfile.recorded(path)["child"].exited()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert pidfile.live_pids(path) == {}
    assert pidfile.recorded(path)["child"].exited()
