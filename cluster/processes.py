"""Start, watch and stop the child processes of the local cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ClusterError(RuntimeError):
    """A cluster process could not be started or did not become ready."""


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def ensure_port_free(port: int, owner: str) -> None:
    """Fail with a message naming the port when something already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ClusterError(
                f"port {port} (needed by {owner}) is already in use on 127.0.0.1. "
                "Stop whatever listens there (a cluster from `make up`? then `make down`), "
                "or move every port with ORDERFLOW_PORT_OFFSET=<n>."
            ) from exc


def ensure_binary(path: Path, make_target: str) -> None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ClusterError(f"{path.name} not found at {path}: run `make {make_target}` first.")


@dataclass
class ManagedProcess:
    """One child process in its own process group, logging to its own file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ports: tuple[int, ...] = ()
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        for port in self.ports:
            ensure_port_free(port, self.name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} start {self.name}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,  # own process group: Ctrl-C reaches only the launcher
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ClusterError(
                f"{self.name} exited with code {self.popen.returncode}; "
                f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def signal(self, sig: signal.Signals) -> None:
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """kill -9 the whole process group, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive() or self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    watch: Sequence[ManagedProcess] = (),
) -> None:
    """Poll `condition` until true; fail fast when a watched process dies."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            proc.check_alive()
        with contextlib.suppress(Exception):
            if condition():
                return
        if time.monotonic() > deadline:
            hint = "".join(
                f"\n--- {p.name} ({p.log_path}):\n{log_tail(p.log_path, 15)}" for p in watch
            )
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")
        time.sleep(interval)
