"""The fault schedule's moves: crash, stop, pause and restart cluster processes, timed.

Each fault is waited out until the cluster routes actor calls through every sidecar
again; the time that took is the fault's recovery time.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from cluster.local import WATCH_INTERVAL_S, LocalCluster, http_ok
from cluster.processes import ClusterError, ManagedProcess, ensure_port_free, wait_until
from cluster.watchdog import SidecarWatchdog, for_cluster

RECOVERY_TIMEOUT_S = 90.0  # per fault, until actor calls route through every sidecar


@dataclass(frozen=True)
class Fault:
    what: str
    restarts: int  # processes started again
    seconds: float  # until the cluster routed actor calls through every sidecar again
    failure: str = ""  # why the cluster did not recover within RECOVERY_TIMEOUT_S

    def __str__(self) -> str:
        outcome = f"NOT RECOVERED: {self.failure}" if self.failure else "recovered"
        return f"{self.what}: {outcome} after {self.seconds:.1f}s"


class Faults:
    """Crashes, stops and pauses of actor hosts, each waited out until actors route again.

    The launcher's own restart answers "ready" while a killed app is still booting (its
    daprd's metadata still lists the actor types), so recovery here also waits for the
    app's health route, and with a longer timeout: a rebalance under load can take a while.
    """

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.hosts = [a.name for a in cluster.config.apps() if a.actor_types]
        self.done: list[Fault] = []
        self.kinds: list[str] = []  # the FAULTS names injected, in order (chaos.schedule)
        # Held while a fault stops, kills, pauses or starts processes (not while it waits
        # for the recovery): the watchdog acts only outside it, so the two never restart
        # one process at once.
        self.lock = threading.Lock()
        self.watchdog: SidecarWatchdog = for_cluster(
            cluster, report=lambda line: print(f"  watchdog{line.removeprefix('!!')}", flush=True)
        )
        self.watchdog.restart = self._watchdog_restart
        self.watchdog_restarts_begun = 0  # a recovery wait that saw one begin waits again
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- the sidecar watchdog, as `make run` runs it ---------------------------------------
    def __enter__(self) -> Faults:
        self._watching.set()
        self._watcher = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watching.clear()
        if self._watcher is not None:
            self._watcher.join(timeout=120)

    def _watch(self) -> None:
        while self._watching.is_set():
            time.sleep(WATCH_INTERVAL_S)
            if self._watching.is_set() and self.lock.acquire(blocking=False):
                try:
                    self.watchdog.watch()
                finally:
                    self.lock.release()

    @property
    def restarts(self) -> int:
        return sum(f.restarts for f in self.done)

    def _timed(self, what: str, restarts: int, action: Callable[[], None]) -> None:
        started, failure = time.monotonic(), ""
        try:
            action()
        except ClusterError as exc:
            failure = str(exc).splitlines()[0]
        self.done.append(Fault(what, restarts, time.monotonic() - started, failure))

    def _start_again(self, name: str) -> None:
        """Stop (if running) and start one process once its ports can be bound."""
        proc = self.cluster.processes[name]
        proc.stop()
        wait_until(lambda: ports_free([proc]), timeout=RECOVERY_TIMEOUT_S, what=f"{name}'s ports")
        self.cluster.restart(name, wait=False)

    def _watchdog_restart(self, name: str) -> None:
        self.watchdog_restarts_begun += 1
        self.cluster.restart(name)

    def _recovered(self, host: str) -> None:
        """Until the host serves again. A restart the watchdog began meanwhile (the daprd
        it stops is seen to exit) is waited out, and the wait starts again."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while True:
            begun = self.watchdog_restarts_begun
            try:
                self._recovered_once(host)
                return
            except ClusterError:
                with self.lock:  # the watchdog's check holds it: its restart ends first
                    pass
                if self.watchdog_restarts_begun == begun or time.monotonic() > deadline:
                    raise

    def _recovered_once(self, host: str) -> None:
        app = self.cluster.app(host)
        self.cluster.wait_app_ready(app, timeout=RECOVERY_TIMEOUT_S)
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{app.app_port}/healthz/app"),
            timeout=RECOVERY_TIMEOUT_S,
            what=f"{host} to answer its health route",
            watch=[self.cluster.processes[host]],
        )
        self.cluster.wait_actors_routable(timeout=RECOVERY_TIMEOUT_S)
        self.cluster.write_pid_file()

    def kill_app(self, host: str) -> None:
        """kill -9 the actor host app (its daprd stays up), then start it again."""

        def act() -> None:
            with self.lock:
                self.cluster.kill(host)
                self._start_again(host)
            self._recovered(host)

        self._timed(f"kill -9 {host}", 1, act)

    def kill_sidecar(self, host: str) -> None:
        """kill -9 the host's daprd (the app stays up), then start it again."""

        def act() -> None:
            with self.lock:
                self.cluster.kill(f"{host}-daprd")
                self._start_again(f"{host}-daprd")
            self._recovered(host)

        self._timed(f"kill -9 {host}-daprd", 1, act)

    def terminate_app(self, host: str) -> None:
        """SIGTERM the app (graceful: the SDK drains its actors), then start it again."""

        def act() -> None:
            with self.lock:
                self._start_again(host)
            self._recovered(host)

        self._timed(f"SIGTERM {host}", 1, act)

    def rolling_restart(self) -> None:
        """Every host in turn, as the launcher stops a cluster: its daprd first (SIGTERM: it
        stops reading the streams and hands its actors back while its app still answers),
        then the app; start both; wait until ready."""

        def act() -> None:
            for host in self.hosts:
                with self.lock:
                    self.cluster.processes[f"{host}-daprd"].stop()
                    self._start_again(host)
                    self._start_again(f"{host}-daprd")
                self._recovered(host)

        self._timed("rolling restart", 2 * len(self.hosts), act)

    def stop_process(self, name: str, seconds: float) -> None:
        """SIGSTOP any process (an app or a daprd) for `seconds`, then SIGCONT."""
        proc = self.cluster.processes[name]
        host = name.removesuffix("-daprd")

        def act() -> None:
            with self.lock:
                proc.signal(signal.SIGSTOP)
                try:
                    time.sleep(seconds)
                finally:
                    proc.signal(signal.SIGCONT)
            if host in self.hosts:
                self._recovered(host)
            else:
                self.cluster.wait_actors_routable(timeout=RECOVERY_TIMEOUT_S)

        self._timed(f"SIGSTOP {name} {seconds:.0f}s", 0, act)

    def kill_process(self, name: str) -> None:
        """kill -9 Redis, placement, scheduler or a non-actor app or sidecar; start it again."""

        def act() -> None:
            with self.lock:
                self.cluster.kill(name)
                proc = self.cluster.processes[name]
                wait_until(
                    lambda: ports_free([proc]), timeout=RECOVERY_TIMEOUT_S, what=f"{name}'s ports"
                )
                self.cluster.restart(name, wait=False)
            self.cluster.wait_restarted(name)  # until it is ready (and actors route again)
            self.cluster.wait_actors_routable(timeout=RECOVERY_TIMEOUT_S)

        self._timed(f"kill -9 {name}", 1, act)

    def stop_app_during_round(self, seconds: float = 20.0) -> None:
        """SIGSTOP the first actor host's app for `seconds` while the last host's daprd is
        killed and started again: placement runs a round the frozen host cannot finish
        within its dissemination timeout and closes its stream mid-round, and Dapr 1.18.2
        then keeps that sidecar's actor types locked (every call through it hangs) until
        the watchdog restarts it (cluster/watchdog.py)."""
        frozen = self.cluster.processes[self.hosts[0]]
        trigger = f"{self.hosts[-1]}-daprd"

        def act() -> None:
            with self.lock:
                frozen.signal(signal.SIGSTOP)
                try:
                    time.sleep(2.0)
                    self.cluster.kill(trigger)
                    self._start_again(trigger)
                    time.sleep(max(0.0, seconds - 4.0))
                finally:
                    frozen.signal(signal.SIGCONT)
            self._recovered(self.hosts[0])
            self._recovered(self.hosts[-1])

        self._timed(f"SIGSTOP {self.hosts[0]} {seconds:.0f}s during a round", 1, act)


class ActorState:
    """Reads actor state keys through daprd's actor state API on the actor hosts' sidecars.

    Only a sidecar with the actor hosts' app id reads their keys (Dapr prefixes every key
    with the app id): the gateway's sidecar answers 204, as if nothing were stored.
    """

    def __init__(
        self, sidecar_ports: Sequence[int], *, headers: Mapping[str, str] | None = None
    ) -> None:
        self._clients = [
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers)
            for port in sidecar_ports
        ]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def read(self, actor_type: str, actor_id: str, key: str) -> Any:
        """The stored JSON document, or None when the key is absent."""
        errors: list[str] = []
        for client in self._clients:
            try:
                resp = client.get(f"/v1.0/actors/{actor_type}/{actor_id}/state/{key}")
            except httpx.TransportError as exc:
                errors.append(repr(exc))
                continue
            if resp.status_code == 204:
                return None
            if resp.status_code == 200:
                return resp.json()
            errors.append(f"{resp.status_code} {resp.text[:200]}")
        raise LookupError(f"{actor_type}/{actor_id} {key}: no sidecar answered: {errors}")


def ports_free(processes: Iterable[ManagedProcess]) -> bool:
    """Whether every port of these processes can be bound now.

    At the test offsets some ports lie in Linux's ephemeral range (32768-60999), so any
    client's TIME_WAIT on one of them blocks the bind for up to 60 s.
    """
    try:
        for proc in processes:
            for port in proc.ports:
                ensure_port_free(port, proc.name)
    except ClusterError:
        return False
    return True
