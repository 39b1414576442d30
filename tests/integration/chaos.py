"""Chaos for integration tests: a steady order load through the gateway, and host faults."""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from apps.gateway.routes.orders import order_id_for
from cluster.local import LocalCluster, http_ok
from cluster.processes import ClusterError, ManagedProcess, ensure_port_free, wait_until

RETRY_PAUSE_S = 0.25
GIVE_UP_AFTER_S = 120.0  # per order: far beyond any restart, so "abandoned" means stuck
RECOVERY_TIMEOUT_S = 90.0  # per fault, until actor calls route through every sidecar


@dataclass(frozen=True)
class Plan:
    """One order request; retries send exactly this body with exactly this key."""

    key: str
    customer_id: str
    lines: tuple[tuple[str, int, int], ...]

    @property
    def order_id(self) -> str:
        return order_id_for(self.customer_id, self.key)

    def body(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in self.lines],
        }


@dataclass
class LoadResults:
    """What the load saw, by order id; filled from worker threads under `lock`."""

    accepted: dict[str, Plan] = field(default_factory=dict)
    abandoned: dict[str, Plan] = field(default_factory=dict)  # never accepted (still retried)
    refused: list[str] = field(default_factory=list)  # 4xx answers: "<order id>: <status> <body>"
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def attempted(self) -> dict[str, Plan]:
        return {**self.abandoned, **self.accepted}


class OrderLoad:
    """Places random orders through the gateway at a steady pace on a background thread.

    A transport error or a 5xx is retried with the same Idempotency-Key and body until the
    gateway answers 202, so every order is placed once and none is silently dropped. At most
    `workers` requests are in flight; a tick that finds them all busy waits (no catch-up burst).
    """

    def __init__(
        self,
        api_base: str,
        *,
        customers: Sequence[str],
        skus: Sequence[str],
        rate: float,
        seed: str,
        workers: int = 12,
    ) -> None:
        self.results = LoadResults()
        self._customers, self._skus = list(customers), list(skus)
        self._interval = 1.0 / rate
        self._seed = seed
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._slots = threading.BoundedSemaphore(workers)
        self._client = httpx.Client(
            base_url=api_base, timeout=30, limits=httpx.Limits(max_connections=workers)
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="order-load")
        self._thread = threading.Thread(target=self._run, name="order-pacer", daemon=True)

    def __enter__(self) -> OrderLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop(abandon=True)  # a no-op after stop(); on an exception, do not wait

    def stop(self, *, abandon: bool = False) -> None:
        """Stop placing new orders; wait until every request in flight was accepted.

        With `abandon`, requests in flight stop retrying (recorded as abandoned): for a
        cluster that did not recover, where waiting would only burn the time budget.
        """
        if abandon:
            self._abandon.set()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        for n in itertools.count():
            while not self._slots.acquire(timeout=0.2):
                if self._stop.is_set():
                    return
            if self._stop.is_set():
                self._slots.release()
                return
            self._pool.submit(self._place, self._plan(n))
            next_at = max(next_at + self._interval, time.monotonic())
            self._stop.wait(next_at - time.monotonic())

    def _plan(self, n: int) -> Plan:
        rng = self._rng
        skus = rng.sample(self._skus, rng.choice((1, 1, 2, 2, 3)))
        lines = tuple((s, rng.randint(1, 3), rng.randint(100, 900)) for s in skus)
        return Plan(f"{self._seed}-{n}", rng.choice(self._customers), lines)

    def _place(self, plan: Plan) -> None:
        try:
            self._until_accepted(plan)
        finally:
            self._slots.release()

    def _until_accepted(self, plan: Plan) -> None:
        results = self.results
        deadline = time.monotonic() + GIVE_UP_AFTER_S
        while True:
            try:
                resp = self._client.post(
                    "/orders", json=plan.body(), headers={"Idempotency-Key": plan.key}
                )
            except httpx.TransportError:
                resp = None
            if resp is not None and resp.status_code == 202:
                with results.lock:
                    results.accepted[plan.order_id] = plan
                return
            if resp is not None and resp.status_code < 500:
                with results.lock:
                    results.refused.append(f"{plan.order_id}: {resp.status_code} {resp.text}")
                return
            with results.lock:
                results.retries += 1
            if time.monotonic() > deadline or self._abandon.is_set():
                with results.lock:
                    results.abandoned[plan.order_id] = plan
                return
            time.sleep(RETRY_PAUSE_S)


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

    def _recovered(self, host: str) -> None:
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
            self.cluster.kill(host)
            self._start_again(host)
            self._recovered(host)

        self._timed(f"kill -9 {host}", 1, act)

    def kill_sidecar(self, host: str) -> None:
        """kill -9 the host's daprd (the app stays up), then start it again."""

        def act() -> None:
            self.cluster.kill(f"{host}-daprd")
            self._start_again(f"{host}-daprd")
            self._recovered(host)

        self._timed(f"kill -9 {host}-daprd", 1, act)

    def terminate_app(self, host: str) -> None:
        """SIGTERM the app (graceful: the SDK drains its actors), then start it again."""

        def act() -> None:
            self._start_again(host)
            self._recovered(host)

        self._timed(f"SIGTERM {host}", 1, act)

    def pause_sidecar(self, host: str, seconds: float) -> None:
        """SIGSTOP the host's daprd: placement may move its actors while it is frozen."""
        daprd = self.cluster.processes[f"{host}-daprd"]

        def act() -> None:
            daprd.signal(signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                daprd.signal(signal.SIGCONT)
            self._recovered(host)

        self._timed(f"SIGSTOP {host}-daprd {seconds:.0f}s", 0, act)

    def rolling_restart(self) -> None:
        """Every host in turn: stop app and daprd (SIGTERM), start both, wait until ready."""

        def act() -> None:
            for host in self.hosts:
                self.cluster.processes[host].stop()
                self._start_again(f"{host}-daprd")
                self._start_again(host)
                self._recovered(host)

        self._timed("rolling restart", 2 * len(self.hosts), act)


class ActorState:
    """Reads actor state keys through daprd's actor state API on the actor hosts' sidecars.

    Only a sidecar with the actor hosts' app id reads their keys (Dapr prefixes every key
    with the app id): the gateway's sidecar answers 204, as if nothing were stored.
    """

    def __init__(self, sidecar_ports: Sequence[int]) -> None:
        self._clients = [
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in sidecar_ports
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
