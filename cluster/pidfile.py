"""The pid file of a detached cluster (`up --detach`): what `down`, `status` and the
detached watchdog know of processes they did not start.

`LocalCluster.write_pid_file` writes it: `{"launcher": pid, "processes": {name: {"pid",
"exe", "log"}}}` in the cluster's state dir (`cluster.json`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def pid_matches(pid: int, exe: str) -> bool:
    """True when `pid` is still the process we started (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    name = Path(exe).name
    # Redis rewrites its title ("redis-server 127.0.0.1:6380"), hence the prefix match.
    return any(Path(part.decode(errors="replace")).name.startswith(name) for part in cmdline[:3])


def read(pid_file: Path) -> dict[str, Any]:
    return dict(json.loads(pid_file.read_text()))


def live_pids(pid_file: Path) -> dict[str, int]:
    data = read(pid_file)
    return {
        name: entry["pid"]
        for name, entry in data["processes"].items()
        if pid_matches(entry["pid"], entry["exe"])
    }


def recorded(pid_file: Path) -> dict[str, Recorded]:
    """Every process the pid file lists."""
    return {
        name: Recorded(name, int(e["pid"]), str(e["exe"]), Path(e["log"]))
        for name, e in read(pid_file)["processes"].items()
    }


def record(pid_file: Path, name: str, *, pid: int, exe: str, log: Path) -> None:
    """Set one process's entry (after a restart), replacing the file in one rename."""
    data = read(pid_file)
    data["processes"][name] = {"pid": pid, "exe": exe, "log": str(log)}
    partial = pid_file.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(pid_file)


@dataclass(frozen=True)
class Recorded:
    """A process from the pid file of `up --detach`: stopped by pid, watched via /proc."""

    name: str
    pid: int
    exe: str
    log_path: Path | None

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)  # its own process group (start_new_session)

    def exited(self) -> bool:
        return not pid_matches(self.pid, self.exe)  # a zombie has no cmdline
