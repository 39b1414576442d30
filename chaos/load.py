"""The workload: random orders through the gateway at a steady pace, some cancelled by the customer.

Every request is retried with the same Idempotency-Key until the gateway accepts it, so an
order is placed once and none is silently dropped; how long each waited is recorded (the
longest wait is how long the order service was unavailable to a client).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from apps.gateway.routes.orders import order_id_for

RETRY_PAUSE_S = 0.25
GIVE_UP_AFTER_S = 120.0  # per order: far beyond any restart, so "abandoned" means stuck
CANCEL_REASON = "changed my mind (chaos)"


@dataclass(frozen=True)
class Plan:
    """One order request; retries send exactly this body with exactly this key."""

    key: str
    customer_id: str
    lines: tuple[tuple[str, int, int], ...]
    cancel: bool = False  # the customer cancels it right after it was accepted

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
    waits: dict[str, float] = field(default_factory=dict)  # order id -> s until accepted
    cancelled: set[str] = field(default_factory=set)  # customer cancels the gateway accepted
    cancel_refused: set[str] = field(default_factory=set)  # too late (409): already shipping
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
        cancel_share: float = 0.0,
        workers: int = 12,
        headers: Mapping[str, str] | None = None,  # the gateway client's key
    ) -> None:
        self.results = LoadResults()
        self._customers, self._skus = list(customers), list(skus)
        self._interval = 1.0 / rate
        self._seed = seed
        self._cancel_share = cancel_share
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._slots = threading.BoundedSemaphore(workers)
        self._client = httpx.Client(
            base_url=api_base,
            timeout=30,
            limits=httpx.Limits(max_connections=workers),
            headers=headers,
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
        cancel = rng.random() < self._cancel_share
        return Plan(f"{self._seed}-{n}", rng.choice(self._customers), lines, cancel)

    def _place(self, plan: Plan) -> None:
        try:
            if self._until_accepted(plan) and plan.cancel:
                self._cancel(plan)
        finally:
            self._slots.release()

    def _cancel(self, plan: Plan) -> None:
        """The customer changes their mind a moment later (retried like a place)."""
        self._stop.wait(self._rng.uniform(0.0, 0.5))
        deadline = time.monotonic() + GIVE_UP_AFTER_S
        while time.monotonic() < deadline and not self._abandon.is_set():
            try:
                resp = self._client.post(
                    f"/orders/{plan.order_id}/cancel", json={"reason": CANCEL_REASON}
                )
            except httpx.TransportError:
                resp = None
            if resp is not None and resp.status_code < 500:
                with self.results.lock:
                    if resp.status_code == 200:
                        self.results.cancelled.add(plan.order_id)
                    else:
                        self.results.cancel_refused.add(plan.order_id)
                return
            time.sleep(RETRY_PAUSE_S)

    def _until_accepted(self, plan: Plan) -> bool:
        results = self.results
        started = time.monotonic()
        deadline = started + GIVE_UP_AFTER_S
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
                    results.waits[plan.order_id] = time.monotonic() - started
                return True
            if resp is not None and resp.status_code < 500:
                with results.lock:
                    results.refused.append(f"{plan.order_id}: {resp.status_code} {resp.text}")
                return False
            with results.lock:
                results.retries += 1
            if time.monotonic() > deadline or self._abandon.is_set():
                with results.lock:
                    results.abandoned[plan.order_id] = plan
                return False
            time.sleep(RETRY_PAUSE_S)


class AvailabilityProbe:
    """Calls BeaconActor.Get on a few ids in turn through a sidecar; the longest time one id
    went without a successful answer is how long an actor was unavailable to a client."""

    def __init__(
        self,
        sidecar: str,
        *,
        ids: int = 12,
        pause: float = 0.1,
        headers: Mapping[str, str] | None = None,  # the sidecar's Dapr API token
    ) -> None:
        self._ids = [f"probe-{uuid.uuid4().hex[:8]}-{n}" for n in range(ids)]
        self._pause = pause
        self._client = httpx.Client(base_url=sidecar, timeout=5, headers=headers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self.longest: dict[str, float] = {}  # id -> longest gap between two answers (s)

    def __enter__(self) -> AvailabilityProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _run(self) -> None:
        last = dict.fromkeys(self._ids, time.monotonic())
        for actor_id in itertools.cycle(self._ids):
            if self._stop.is_set():
                return
            try:
                ok = self._client.post(f"/v1.0/actors/BeaconActor/{actor_id}/method/Get")
                answered = ok.status_code == 200
            except httpx.TransportError:
                answered = False
            now = time.monotonic()
            if answered:
                gap = now - last[actor_id]
                self.longest[actor_id] = max(self.longest.get(actor_id, 0.0), gap)
                last[actor_id] = now
            self._stop.wait(self._pause)
