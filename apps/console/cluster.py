"""The cluster page's facts, read live: apps, sidecars, actors, placement, infrastructure,
and who reads each topic's stream (its consumer groups).

Every probe is a read with a short timeout; one that fails says why instead of raising,
so a page always renders (a process that is down shows as down).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from actors import catalog
from actors.toolkit.apitoken import sidecar_headers
from apps.console.targets import AppTarget, Targets

PROBE_TIMEOUT_S = 1.5
# every topic's stream: the feeds (router, projector, shipping) and daprd's subscriptions
# alike read them through consumer groups
TOPIC_STREAMS: Final = (
    catalog.ORDERS,
    catalog.INVENTORY,
    catalog.WALLET,
    catalog.SHIPMENTS,
    catalog.RESTOCKS,
    catalog.DEPOSITS,
    catalog.DEAD_LETTERS,
)


@dataclass(frozen=True)
class Probe:
    """One health check: up, down (with why), or not running at all."""

    up: bool
    detail: str = ""


@dataclass(frozen=True)
class AppStatus:
    target: AppTarget
    app: Probe
    sidecar: Probe
    version: str = ""  # daprd's runtime version
    uptime_s: float | None = None  # daprd's, from its process_start_time_seconds
    app_uptime_s: float | None = None  # the app's, from its own /metrics
    features: tuple[str, ...] = ()  # daprd's enabled preview features (its Configuration)
    actors: tuple[tuple[str, int], ...] = ()  # (actor type, active count)
    placement: str = ""  # daprd's view of its placement connection
    components: tuple[dict[str, Any], ...] = ()
    subscriptions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Consumer:
    name: str
    pending: int  # entries it read and has not acknowledged
    idle_ms: int  # since its last read or claim


@dataclass(frozen=True)
class StreamGroup:
    """One consumer group of one topic's stream (XINFO GROUPS, XINFO CONSUMERS)."""

    stream: str
    length: int
    group: str
    consumers: tuple[Consumer, ...]
    pending: int  # read by a consumer, not acknowledged
    lag: int | None  # not read by the group yet (None: Redis cannot tell)


@dataclass(frozen=True)
class PlacementHost:
    name: str
    app_id: str
    actor_types: tuple[str, ...]


@dataclass(frozen=True)
class ClusterView:
    apps: list[AppStatus]
    infrastructure: dict[str, Probe]
    placement_hosts: list[PlacementHost] = field(default_factory=list)
    placement_version: str = ""
    configuration: str = ""  # the Dapr Configuration every daprd runs with (YAML)
    stream_groups: list[StreamGroup] = field(default_factory=list)
    stream_groups_error: str = ""  # why they could not be read ("" when they were)


class ClusterProbe:
    """Reads the cluster's state over HTTP (and Redis) on each call."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        targets: Targets,
        redis: Redis,
        *,
        sidecar_token: str | None = None,
    ) -> None:
        self._http = http
        self._targets = targets
        self._redis = redis
        # the sidecars' DAPR_API_TOKEN, sent to their APIs only (not to other targets)
        self._sidecar = sidecar_headers(sidecar_token)

    async def view(self) -> ClusterView:
        t = self._targets
        apps, infra, placement, groups = await asyncio.gather(
            asyncio.gather(*(self.app(a) for a in t.apps)),
            self.infrastructure(),
            self._json(f"{t.placement}/placement/state"),
            self._stream_groups(),
        )
        hosts, version = placement_table(placement if isinstance(placement, dict) else {})
        view = ClusterView(list(apps), infra, hosts, version, configuration(t.dapr_config))
        if isinstance(groups, str):
            return dataclasses.replace(view, stream_groups_error=groups)
        return dataclasses.replace(view, stream_groups=groups)

    async def _stream_groups(self) -> list[StreamGroup] | str:
        """Every consumer group of every topic's stream; why not, when Redis does not say."""
        try:
            found: list[StreamGroup] = []
            for stream in TOPIC_STREAMS:
                found += await self._groups_of(stream)
            return found
        except (RedisError, OSError) as exc:
            return f"Redis did not answer ({type(exc).__name__})"

    async def _groups_of(self, stream: str) -> list[StreamGroup]:
        if not await self._redis.exists(stream):
            return []
        length = int(await self._redis.xlen(stream))
        groups = []
        for info in await self._redis.xinfo_groups(stream):
            name = str(info.get("name"))
            consumers = tuple(
                Consumer(str(c.get("name")), int(c.get("pending") or 0), int(c.get("idle") or 0))
                for c in await self._redis.xinfo_consumers(stream, name)
            )
            lag = info.get("lag")
            pending = int(info.get("pending") or 0)
            lag_count = None if lag is None else int(lag)
            groups.append(StreamGroup(stream, length, name, consumers, pending, lag_count))
        return groups

    async def app(self, target: AppTarget) -> AppStatus:
        app, sidecar, metadata, metrics, app_metrics = await asyncio.gather(
            self._probe(f"{target.app_url}/healthz/app"),
            self._probe(f"{target.sidecar_url}/v1.0/healthz"),
            self._json(f"{target.sidecar_url}/v1.0/metadata", headers=self._sidecar),
            self._text(target.sidecar_metrics_url),
            self._text(target.app_metrics_url),
        )
        meta = metadata if isinstance(metadata, dict) else {}
        runtime = meta.get("actorRuntime") or {}
        started = start_time(metrics or "")
        app_started = start_time(app_metrics or "")
        return AppStatus(
            target=target,
            app=app,
            sidecar=sidecar,
            version=str(meta.get("runtimeVersion", "")),
            uptime_s=None if started is None else max(0.0, time.time() - started),
            app_uptime_s=None if app_started is None else max(0.0, time.time() - app_started),
            features=tuple(str(f) for f in meta.get("enabledFeatures") or ()),
            actors=tuple(
                (str(a.get("type")), int(a.get("count", 0)))
                for a in runtime.get("activeActors") or ()
            ),
            placement=str(runtime.get("placement", "")),
            components=tuple(meta.get("components") or ()),
            subscriptions=tuple(meta.get("subscriptions") or ()),
        )

    async def infrastructure(self) -> dict[str, Probe]:
        t = self._targets
        names = ("placement", "scheduler", "prometheus", "zipkin")
        probes = await asyncio.gather(
            self._probe(f"{t.placement}/healthz"),
            self._probe(f"{t.scheduler}/healthz"),
            self._probe(f"{t.prometheus}/-/ready"),
            self._probe(f"{t.zipkin}/health"),
        )
        return {"redis": await self._redis_probe(), **dict(zip(names, probes, strict=True))}

    async def _redis_probe(self) -> Probe:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            return Probe(False, f"not running ({type(exc).__name__})")
        return Probe(True, self._targets.redis)

    async def _probe(self, url: str) -> Probe:
        try:
            resp = await self._http.get(url, timeout=PROBE_TIMEOUT_S)
        except httpx.ConnectError:
            return Probe(False, "not running")
        except httpx.HTTPError as exc:
            return Probe(False, f"no answer ({type(exc).__name__})")
        if resp.status_code >= 300:
            return Probe(False, f"HTTP {resp.status_code}")
        return Probe(True, f"HTTP {resp.status_code}")

    async def _json(self, url: str, *, headers: dict[str, str] | None = None) -> Any:
        text = await self._text(url, headers=headers)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    async def _text(self, url: str, *, headers: dict[str, str] | None = None) -> str | None:
        try:
            resp = await self._http.get(url, headers=headers, timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return None
        return resp.text if resp.status_code < 300 else None


def configuration(path: str) -> str:
    """The Dapr Configuration file's text ("" when unknown or unreadable)."""
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def start_time(metrics: str) -> float | None:
    """`process_start_time_seconds` from a Prometheus text exposition, if present."""
    for line in metrics.splitlines():
        if line.startswith("process_start_time_seconds"):
            try:
                return float(line.split()[-1])
            except ValueError:
                return None
    return None


def placement_table(state: dict[str, Any]) -> tuple[list[PlacementHost], str]:
    """Placement's hosts and table version from its /placement/state (either layout)."""
    raw = list(state.get("hostList") or [])
    for table in (state.get("tables") or {}).values():
        raw += (table or {}).get("hosts") or []
    hosts: dict[str, PlacementHost] = {}
    for h in raw:
        name = str(h.get("name", ""))
        types = tuple(sorted(h.get("entities") or h.get("actorTypes") or ()))
        hosts[name] = PlacementHost(name, str(h.get("appId") or h.get("id") or ""), types)
    version = str(state.get("tableVersion", ""))
    return sorted(hosts.values(), key=lambda h: h.name), version


def uptime_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
