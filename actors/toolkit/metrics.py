"""Prometheus metrics of every Orderflow app: each name declared once, here.

Each app's composition root builds the groups it serves on a registry of its own (apps are
created many times in the tests, so nothing is global) and mounts `GET /metrics` with
`mount_metrics`. Code deep in the toolkit gets its group injected: actors through
`ActorDeps.metrics`, the outbox from its actor, the router's dead letters from the actor
host's lifespan, the projector's samples through its stats.

    ActorMetrics      actor host: commits, fence conflicts, inbox duplicates, outbox
                      backlog and publish failures, the order saga's outcomes and steps
    RouterMetrics     actor host: dead letters by code, the router feed's entries
    SidecarMetrics    actor host: whether its own sidecar routes actor calls (a probe)
    ShippingMetrics   shipping partner: its feed's entries
    HttpMetrics       gateway: requests and their duration per route template (RED)
    ProjectorMetrics  projector: projection lag, orders in progress and stuck

Every label has a small fixed set of values (actor type, saga step, reason class, error
code, route template, HTTP method and status). Never an order id, customer id or SKU.
Updating a metric is an in-memory increment: no I/O on the hot path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.store import Snapshot

# What Prometheus 2.x asks for; the 1.0.0 text format is the same for our names.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
STEP_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LAG_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE: Final = "unmatched"  # no route served it (never the raw path)
OTHER_CODE: Final = "other"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,30}\.[a-z][a-z0-9_.]{0,60}")


def new_registry() -> CollectorRegistry:
    """A registry of its own for one app, with the process' CPU, memory and descriptors."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    registry.register(PLATFORM_COLLECTOR)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(registry)


@dataclass(frozen=True)
class OutboxMetrics:
    """One actor type's outbox gauge and counter (the children the outbox touches)."""

    backlog: Gauge
    publish_failures: Counter


@dataclass(frozen=True)
class ActorTypeMetrics:
    """One actor type's children of the ActorMetrics families (labels resolved once)."""

    commits: Counter
    fence_conflicts: Counter
    inbox_duplicates: Counter
    outbox: OutboxMetrics


class CommitWatcher(Protocol):
    """Sees one activation's appends (one watcher per activation: it may remember what it
    saw, e.g. when a saga step started). Called inside the turn: no I/O, never raises."""

    def committed(
        self, state_before: Any, before: Snapshot, envelopes: Sequence[EventEnvelope]
    ) -> None: ...


class _Unwatched:
    def committed(
        self, state_before: Any, before: Snapshot, envelopes: Sequence[EventEnvelope]
    ) -> None:
        return None


UNWATCHED: Final[CommitWatcher] = _Unwatched()
WatcherFactory = Callable[["ActorMetrics"], CommitWatcher]


class ActorMetrics:
    """What the actors of one actor host do (ActorDeps.metrics). `watchers` builds a
    CommitWatcher per activation of an actor type (actors/watchers.py wires the order's)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        watchers: Mapping[str, WatcherFactory] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else new_registry()
        self._watchers = dict(watchers or {})
        r = self.registry
        self.commits = Counter(
            "orderflow_actor_commits", "Appends the store accepted", ["actor_type"], registry=r
        )
        self.fence_conflicts = Counter(
            "orderflow_fence_conflicts",
            "Appends refused by the single-writer fence (version moved)",
            ["actor_type"],
            registry=r,
        )
        self.inbox_duplicates = Counter(
            "orderflow_inbox_duplicates",
            "Commands answered from the inbox (a message id already applied)",
            ["actor_type"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "orderflow_outbox_backlog",
            "Events committed but not yet confirmed published, in this process's activations",
            ["actor_type"],
            registry=r,
        )
        self.publish_failures = Counter(
            "orderflow_outbox_publish_failures",
            "Outbox publishes that failed (the events stay in the outbox)",
            ["actor_type"],
            registry=r,
        )
        self.deadline_checks = Counter(
            "orderflow_deadline_checks",
            "Orders the deadline sweep found due, by CheckDeadline's result "
            "(cancelled, waiting, ended; failed: retried at the next sweep)",
            ["result"],
            registry=r,
        )
        self.orders_placed = Counter("orderflow_orders_placed", "Orders placed", registry=r)
        self.orders_confirmed = Counter(
            "orderflow_orders_confirmed",
            "Orders confirmed (stock reserved, payment authorized)",
            registry=r,
        )
        self.orders_shipped = Counter("orderflow_orders_shipped", "Orders shipped", registry=r)
        self.orders_cancelled = Counter(
            "orderflow_orders_cancelled",
            "Orders cancelled, by reason class",
            ["reason"],
            registry=r,
        )
        self.saga_step = Histogram(
            "orderflow_saga_step_duration_seconds",
            "From a saga step's start to its end (event times), by step and outcome",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )

        self._of: dict[str, ActorTypeMetrics] = {}

    def watcher(self, actor_type: str) -> CommitWatcher:
        """A new watcher for one activation of `actor_type` (UNWATCHED if none is wired)."""
        factory = self._watchers.get(actor_type)
        return factory(self) if factory is not None else UNWATCHED

    def of(self, actor_type: str) -> ActorTypeMetrics:
        """The children labelled with `actor_type` (cached: the hot path skips labels())."""
        found = self._of.get(actor_type)
        if found is None:
            found = self._of[actor_type] = ActorTypeMetrics(
                commits=self.commits.labels(actor_type),
                fence_conflicts=self.fence_conflicts.labels(actor_type),
                inbox_duplicates=self.inbox_duplicates.labels(actor_type),
                outbox=OutboxMetrics(
                    self.outbox_backlog.labels(actor_type),
                    self.publish_failures.labels(actor_type),
                ),
            )
        return found

    def totals(self) -> dict[str, int]:
        """Commits and fence conflicts of every actor type (GET /actors/stats)."""
        return {
            "commits": int(_total(self.registry, "orderflow_actor_commits_total")),
            "fence_conflicts": int(_total(self.registry, "orderflow_fence_conflicts_total")),
        }


class FeedMetrics:
    """A stream feed's two meters (the router's, shipping's): the entries it decided, by
    outcome, and those it is deciding now; `feed` names them orderflow_<feed>_feed_..."""

    def __init__(
        self, registry: CollectorRegistry | None, *, feed: str, decided: str, in_flight: str
    ) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.feed_entries = Counter(
            f"orderflow_{feed}_feed_entries", decided, ["outcome"], registry=self.registry
        )
        self.feed_in_flight = Gauge(
            f"orderflow_{feed}_feed_in_flight", in_flight, registry=self.registry
        )

    def feed_entry(self, outcome: str) -> None:
        self.feed_entries.labels(outcome).inc()

    def watch_feed(self, in_flight: Callable[[], float]) -> None:
        """The in-flight gauge reads `in_flight` at every scrape."""
        self.feed_in_flight.set_function(in_flight)


class SidecarMetrics:
    """An app's probe of its own sidecar (actors.toolkit.sidecarprobe): does it route actor
    calls, and for how long has it not."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.routes = Gauge(
            "orderflow_sidecar_routes_actor_calls",
            "1 when one of the last probe's actor calls through this app's sidecar answered",
            registry=self.registry,
        )
        self.unrouted_seconds = Gauge(
            "orderflow_sidecar_unrouted_seconds",
            "Seconds since an actor call through this app's sidecar last answered (0 while "
            "they answer)",
            registry=self.registry,
        )
        self.self_heals = Counter(
            "orderflow_sidecar_self_heals",
            "Times this app asked its wedged sidecar to shut down, for its supervisor to "
            "start it again (ORDERFLOW_SIDECAR_SELF_HEAL_S)",
            registry=self.registry,
        )
        self.routes.set(1)  # nothing known against it before the first probe


class RouterMetrics(FeedMetrics):
    """The event router of one actor host: its dead letters and its feed."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(
            registry,
            feed="router",
            decided="Stream entries the router's feed decided: routed, skipped (no reaction "
            "wants the type), retry (answered RETRY)",
            in_flight="Stream entries the router's feed is deciding now (at most its "
            "max_in_flight)",
        )
        self.dead_letters = Counter(
            "orderflow_dead_letters",
            "Events recorded on the dead-letter topic, by code",
            ["code"],
            registry=self.registry,
        )

    def dead_letter(self, code: str) -> None:
        self.dead_letters.labels(bounded_code(code)).inc()


class ShippingMetrics(FeedMetrics):
    """The shipping partner's feed of the orders stream."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(
            registry,
            feed="shipping",
            decided="Stream entries the shipping feed decided: shipped (an order.confirmed "
            "answered or left silent), skipped (another type), dropped (no envelope), "
            "retry (the answer's publish was not confirmed)",
            in_flight="Stream entries the shipping feed is deciding now, the partner's "
            "delays included (at most its max_in_flight)",
        )


class HttpMetrics:
    """RED metrics of an HTTP API, per route template (`/orders/{order_id}`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.requests = Counter(
            "orderflow_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "orderflow_http_request_duration_seconds",
            "HTTP request duration, by method and route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        # The children per label set, resolved once: `labels()` checks and locks every time.
        # As bounded as the label sets themselves (method, route template, status).
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request: `method` as received (one outside HTTP_METHODS is
        counted as "other"), `route` its template or UNMATCHED_ROUTE."""
        if method not in HTTP_METHODS:
            method = "other"
        counted = self._requests.get((method, route, status))
        if counted is None:
            counted = self.requests.labels(method, route, str(status))
            self._requests[method, route, status] = counted
        counted.inc()
        timed = self._durations.get((method, route))
        if timed is None:
            timed = self._durations[method, route] = self.duration.labels(method, route)
        timed.observe(seconds)


class ProjectorMetrics:
    """The read side: projection lag, and the sagas the read models show in progress."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.lag = Histogram(
            "orderflow_projection_lag_seconds",
            "From an event's occurred_at to its projection (events applied live)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "orderflow_orders_in_progress",
            "Orders not yet shipped or cancelled, by status (read models, at scrape time)",
            ["status"],
            registry=r,
        )
        self.oldest_age = Gauge(
            "orderflow_orders_oldest_in_progress_age_seconds",
            "Age since placement of the oldest order in progress, by status (0: none)",
            ["status"],
            registry=r,
        )
        self.feed_pending = Gauge(
            "orderflow_projector_feed_pending",
            "Entries the projector's feed read and has not acknowledged yet, by stream "
            "(its consumer group's pending list, at scrape time)",
            ["stream"],
            registry=r,
        )
        self.feed_redelivered = Gauge(
            "orderflow_projector_feed_redelivered",
            "Entries the projector's feed has read more than once and not acknowledged yet, "
            "by stream (among its oldest pending entries, at scrape time): the entries it "
            "keeps retrying",
            ["stream"],
            registry=r,
        )
        self.feed_backlog = Gauge(
            "orderflow_projector_feed_backlog",
            "Entries on a stream the projector's feed has not read yet (its consumer "
            "group's lag, at scrape time)",
            ["stream"],
            registry=r,
        )
        self.stuck = Gauge(
            "orderflow_orders_stuck",
            "Orders in progress placed longer ago than the stuck threshold, by status",
            ["status"],
            registry=r,
        )


def bounded_code(code: str) -> str:
    """An error code as a label value: codes look like `context.name`; anything else
    (a code we did not write) is "other", so no input can grow the label set."""
    return code if _CODE.fullmatch(code) else OTHER_CODE


def _total(registry: CollectorRegistry, sample_name: str) -> float:
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == sample_name
    )


def mount_metrics(
    app: FastAPI,
    registry: CollectorRegistry,
    *,
    refresh: Callable[[Request], Awaitable[None]] | None = None,
) -> None:
    """`GET /metrics` on `app`; `refresh` updates gauges computed at scrape time."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if refresh is not None:
            await refresh(request)
        return Response(render(registry), media_type=CONTENT_TYPE)


class HttpMetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template.

    The template comes from the route Starlette matched (`scope["route"]`). A request no
    route served is labelled "unmatched": an unknown path (404), or one refused before
    routing (the gateway's 413 for a declared oversized body); its status tells which."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app answers
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.record(scope["method"], _route_template(scope), status, seconds)


def _route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE
