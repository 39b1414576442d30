"""Start, watch and stop the child processes of the local cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cluster.errors import ClusterError
from cluster.ports import TIME_WAIT_S, PortReservation, ensure_port_free

__all__ = [
    "ClusterError",
    "ManagedProcess",
    "Stopped",
    "ensure_binary",
    "ensure_port_free",
    "log_tail",
    "stop_in_stages",
    "wait_until",
]

STOP_TIMEOUT_S = 10.0  # SIGTERM, then SIGKILL after this long (and say so)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def ensure_binary(path: Path, make_target: str) -> None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ClusterError(f"{path.name} not found at {path}: run `make {make_target}` first.")


@dataclass(frozen=True)
class Stopped:
    """How one process stopped: after how long, and whether it needed SIGKILL."""

    name: str
    seconds: float
    killed: bool
    log_path: Path | None = None

    def describe(self) -> str:
        if not self.killed:
            return f"stopped {self.name} in {self.seconds:.1f}s"
        where = f"; its log: {self.log_path}" if self.log_path else ""
        return (
            f"KILLED {self.name} with SIGKILL: it did not exit within {self.seconds:.0f}s "
            f"of SIGTERM{where}"
        )


class Stoppable(Protocol):
    """What `stop_in_stages` needs: our child, or a pid from `make up`'s pid file."""

    @property
    def name(self) -> str: ...

    @property
    def log_path(self) -> Path | None: ...

    def signal(self, sig: signal.Signals) -> None: ...

    def exited(self) -> bool: ...


def stop_in_stages(
    stages: Sequence[Sequence[Stoppable]],
    *,
    timeout: float = STOP_TIMEOUT_S,
    report: Callable[[Stopped], None] = lambda _: None,
) -> list[Stopped]:
    """SIGTERM each stage at once, wait for all of it, SIGKILL what outlives `timeout`."""
    results: list[Stopped] = []
    for stage in stages:
        running = [p for p in stage if not p.exited()]
        started = time.monotonic()
        for proc in running:
            proc.signal(signal.SIGTERM)
        while running:
            elapsed = time.monotonic() - started
            for proc in [p for p in running if p.exited() or elapsed > timeout]:
                killed = not proc.exited()
                if killed:
                    proc.signal(signal.SIGKILL)
                    wait_until(proc.exited, timeout=5, what=f"{proc.name} to die of SIGKILL")
                running.remove(proc)
                results.append(Stopped(proc.name, elapsed, killed, proc.log_path))
                report(results[-1])
            time.sleep(0.05)
    return results


@dataclass
class ManagedProcess:
    """One child process in its own process group, logging to its own file.

    While it is down or starting, its ports are reserved (`cluster.ports.PortReservation`)
    so the kernel hands none of them to another process's connection.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ports: tuple[int, ...] = ()
    popen: subprocess.Popen[bytes] | None = None
    reservation: PortReservation = field(default_factory=PortReservation, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        for port in self.ports:
            ensure_port_free(port, self.name, time_wait_s=TIME_WAIT_S)
        self.reservation.hold(self.ports)  # until `release_ports`, once it listens
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

    def release_ports(self) -> None:
        """Drop the reservation (the process listens on its ports by now, or is gone)."""
        self.reservation.release()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exited(self) -> bool:
        return not self.alive()

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ClusterError(self.exit_report())

    def exit_report(self) -> str:
        """Which process exited, why (its code and log tail), and where to look next."""
        code = self.popen.returncode if self.popen is not None else None
        tail = log_tail(self.log_path)
        cause = f"{self.name} exited with code {code}"
        if code is not None and code < 0:
            cause += f" (killed by {signal.Signals(-code).name})"
        if "address already in use" in tail.lower():
            cause += (
                f": a port of {self.ports} was taken between the preflight and its bind "
                "(`ss -tanp` names the holder; retry, or set ORDERFLOW_PORT_OFFSET)"
            )
        return f"{cause}; last lines of {self.log_path}:\n{tail}"

    def signal(self, sig: signal.Signals) -> None:
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """kill -9 the whole process group, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()
            self.reservation.hold(self.ports)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> Stopped:
        """SIGTERM, wait up to `timeout`, then SIGKILL; say how long it took."""
        results = stop_in_stages([[self]], timeout=timeout)
        if self.popen is not None:
            self.popen.wait()  # reap it
            self.reservation.hold(self.ports)
        return results[0] if results else Stopped(self.name, 0.0, False, self.log_path)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    watch: Sequence[ManagedProcess] = (),
    next_step: str = "",
) -> None:
    """Poll `condition` until true; fail fast when a watched process dies.

    On timeout the error says what was awaited, what the last attempt answered, the
    next step, and the last log lines of every watched process.
    """
    deadline = time.monotonic() + timeout
    last = "it answered false"
    while True:
        for proc in watch:
            proc.check_alive()
        try:
            if condition():
                return
            last = "it answered false"
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"[:300]
        if time.monotonic() > deadline:
            hint = "".join(
                f"\n--- {p.name} ({p.log_path}):\n{log_tail(p.log_path, 15)}" for p in watch
            )
            step = f"\nnext step: {next_step}" if next_step else ""
            raise ClusterError(
                f"timed out after {timeout:.0f}s waiting for {what} (last attempt: {last}){step}"
                f"{hint}"
            )
        time.sleep(interval)
