"""Local cluster layout: which processes run, on which ports, with which files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
DAPR_VERSION = "1.18.2"
# placement --disseminate-timeout (ORDERFLOW_PLACEMENT_DISSEMINATE_TIMEOUT). A round takes the
# actor host's drain (ORDERFLOW_DRAIN_TIMEOUT_S, 2 s) plus ~0.2 s even on a saturated machine
# (bench/freeze.py); while a host that stopped answering holds a round, every daprd holds the
# moving actor types, so this bounds that cluster-wide stall (30 s before: 23 s measured).
DEFAULT_DISSEMINATE_TIMEOUT = "5s"
ZIPKIN_VERSION = "3.6.1"  # the jar deploy/setup-ops.sh downloads (`make ops-tools`)
PROMETHEUS_BASE_PORT = 9480  # not 9090 (the gateway daprd's metrics port); 9490 meets the
# gateway's 9090 across the offsets 11850 and 12250 (tests/cluster/test_layout.py)
ZIPKIN_BASE_PORT = 9411


# uvicorn's HTTP protocol for every app (`--http`): httptools, with an answer's head and
# body written at once (actors.toolkit.onewrite); the run file and compose pass it too
HTTP_PROTOCOL: Final = "actors.toolkit.onewrite:OneWriteHttpToolsProtocol"


@dataclass(frozen=True)
class AppSpec:
    """One application process and its daprd sidecar."""

    name: str  # unique process name, e.g. "actor-host-1"
    app_id: str  # Dapr app id (replicas share it)
    target: str  # uvicorn factory, "module:function"
    app_port: int
    http_port: int
    grpc_port: int
    internal_grpc_port: int
    metrics_port: int
    actor_types: tuple[str, ...] = ()  # the sidecar must report these before "ready"
    subscriptions: tuple[str, ...] = ()  # "<pubsub>/<topic>" the sidecar must report too
    env: tuple[tuple[str, str], ...] = ()


class BasePorts(NamedTuple):
    """An app's ports before ORDERFLOW_PORT_OFFSET is added."""

    app: int
    http: int
    grpc: int
    internal_grpc: int
    metrics: int


GATEWAY_PORTS = BasePorts(app=8000, http=3500, grpc=50001, internal_grpc=50002, metrics=9090)
# Clear of the actor-host block for any replica count (its gRPC ports end in 1 and 2),
# and of every other port at the offsets the tests use.
SHIPPING_PORTS = BasePorts(app=8200, http=3600, grpc=50007, internal_grpc=50008, metrics=9190)
# The same rule (tests/cluster/test_layout.py checks it at every offset the tests use).
PROJECTOR_PORTS = BasePorts(app=8300, http=3700, grpc=50003, internal_grpc=50004, metrics=9290)
# The ops console (apps/console): its sidecar subscribes to the router's dead letters. App port
# 8410, not 8400: 8400 met the gateway's 8000 between the offsets 11850 and 12250.
CONSOLE_PORTS = BasePorts(app=8410, http=3800, grpc=50009, internal_grpc=50010, metrics=9390)
CONSOLE_TOPICS: tuple[str, ...] = ("pubsub/deadletter",)
# what the projector's sidecar subscribes to with ORDERFLOW_PROJECTOR_FEED=dapr; by default
# the projector reads those streams itself (actors/toolkit/streamfeed.py) and its sidecar has none
PROJECTOR_TOPICS: tuple[str, ...] = (
    "pubsub/orders",
    "pubsub/inventory",
    "pubsub/wallet",
    "pubsub/projector-redelivery",  # its own dead-letter loop (apps/projector/events.py)
)


# what each actor host's sidecar subscribes to with ORDERFLOW_ROUTER_FEED=dapr (the event
# router's topics: actors/reactions.py, a test keeps them equal); by default the actor hosts
# read those streams themselves (apps/actor_host/feed.py) and their sidecars have none
ROUTER_TOPICS: tuple[str, ...] = (
    "pubsub/deposits",
    "pubsub/inventory",
    "pubsub/orders",
    "pubsub/restocks",
    "pubsub/shipments",
    "pubsub/wallet",
)
ROUTER_FEED_ENV = "ORDERFLOW_ROUTER_FEED"
# what the shipping partner's sidecar subscribes to with ORDERFLOW_SHIPPING_FEED=dapr; by
# default it reads the orders stream itself (apps/shipping/feed.py) and its sidecar has none
SHIPPING_TOPICS: tuple[str, ...] = ("pubsub/orders",)


def actor_host_ports(replica: int) -> BasePorts:
    """Replica 1, 2, ...: app 8101.., Dapr HTTP 3501.., gRPC 50011, 50021.., metrics 9091.."""
    return BasePorts(
        app=8100 + replica,
        http=3500 + replica,
        grpc=50001 + 10 * replica,
        internal_grpc=50002 + 10 * replica,
        metrics=9090 + replica,
    )


@dataclass(frozen=True)
class ClusterConfig:
    """Everything the launcher needs; `from_env` applies ORDERFLOW_* overrides."""

    runtime_dir: Path
    state_dir: Path  # data, logs and the pid file of this cluster instance
    port_offset: int = 0
    actor_host_replicas: int = 2
    redis_fsync: str = "always"  # appendfsync: an acknowledged write survives kill -9
    log_level: str = "info"
    # how long a LOCK/UPDATE/UNLOCK round waits for every daprd before kicking the ones that
    # did not answer (Go duration; see DEFAULT_DISSEMINATE_TIMEOUT)
    placement_disseminate_timeout: str = DEFAULT_DISSEMINATE_TIMEOUT
    with_apps: bool = True  # False: only Redis, placement, scheduler (for `dapr run -f`)
    # Prometheus and Zipkin (cluster/ops.py), with the apps only; `make run` turns them on
    # (ORDERFLOW_OPS, default 1), clusters built in code (tests, chaos) leave them off.
    with_ops: bool = False
    # the sidecar watchdog (cluster/watchdog.py) in the launcher's foreground mode: restarts
    # an actor host's daprd whose actor calls all hang; `make run` turns it on
    # (ORDERFLOW_WATCHDOG, default 1), clusters built in code (tests, chaos, bench) leave it off.
    with_watchdog: bool = False
    # every daprd's tracing.samplingRate ("0" turns tracing off; ORDERFLOW_TRACE_SAMPLING)
    trace_sampling: str = "1"
    # Go's GOGC for every daprd (ORDERFLOW_DAPRD_GOGC); None: Go's default (100). A daprd's
    # live heap is ~7 MB and every actor call allocates: under load the busiest sidecar
    # collects ~7 times a second. 400 cost 2-4 % less CPU per command side by side, but its
    # busy daprds held ~30 % more RSS, and their slow growth under load was twice as fast
    # (README, "Performance": an option, not the default).
    daprd_gogc: str | None = None
    # Go's GOMAXPROCS for every Go process of the cluster: daprd, placement and the
    # scheduler (ORDERFLOW_GO_MAXPROCS); None ("auto"): Go's own, every core the process
    # may use. A local cluster runs 7-8 of them on one box beside the apps and Redis.
    # With both cores each, their threads hand work to one another: at 10 orders/s the Go
    # processes woke ~290 times per order, with 1 ~180, and spent 9-24 % less CPU (the
    # actor host's daprd 16-18 % less against its app; README, "Performance"). One core
    # is ~2500 actor calls a second at ~400 µs of a daprd per call: far above this box.
    go_maxprocs: str | None = "1"
    extra_app_env: dict[str, str] = field(default_factory=dict)
    # one process's own extra environment, by process name (e.g. "actor-host-2"), on top
    # of extra_app_env: the integration cluster runs one actor host on each publish path
    app_env_by_name: dict[str, dict[str, str]] = field(default_factory=dict)
    # where the projector's events come from: "streams" (its own consumer group) or "dapr"
    # (its sidecar's subscriptions); ORDERFLOW_PROJECTOR_FEED
    projector_feed: str = "streams"
    # where the actor hosts' event router reads its events: "streams" (its own consumer
    # group) or "dapr" (its sidecar's subscriptions); ORDERFLOW_ROUTER_FEED (one process
    # may have its own in app_env_by_name or extra_app_env)
    router_feed: str = "streams"
    # where the shipping partner reads the confirmed orders: "streams" (its own consumer
    # group) or "dapr" (its sidecar's subscription); ORDERFLOW_SHIPPING_FEED
    shipping_feed: str = "streams"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ClusterConfig:
        env = dict(os.environ if env is None else env)
        runtime_dir = Path(env.get("ORDERFLOW_RUNTIME_DIR", ROOT / ".runtime"))
        name = env.get("ORDERFLOW_CLUSTER_NAME", "local")
        return cls(
            runtime_dir=runtime_dir,
            state_dir=Path(env.get("ORDERFLOW_STATE_DIR", runtime_dir / "clusters" / name)),
            port_offset=int(env.get("ORDERFLOW_PORT_OFFSET", "0")),
            actor_host_replicas=int(env.get("ORDERFLOW_ACTOR_HOSTS", "2")),
            redis_fsync=env.get("ORDERFLOW_REDIS_FSYNC", "always"),
            log_level=env.get("ORDERFLOW_LOG_LEVEL", "info"),
            placement_disseminate_timeout=env.get(
                "ORDERFLOW_PLACEMENT_DISSEMINATE_TIMEOUT", DEFAULT_DISSEMINATE_TIMEOUT
            ),
            with_ops=env.get("ORDERFLOW_OPS", "1") != "0",
            with_watchdog=env.get("ORDERFLOW_WATCHDOG", "1") != "0",
            trace_sampling=sampling_rate(env.get("ORDERFLOW_TRACE_SAMPLING", "1")),
            daprd_gogc=gogc(env["ORDERFLOW_DAPRD_GOGC"]) if "ORDERFLOW_DAPRD_GOGC" in env else None,
            go_maxprocs=go_maxprocs(env.get("ORDERFLOW_GO_MAXPROCS", "1")),
            projector_feed=env.get("ORDERFLOW_PROJECTOR_FEED", "streams").strip().lower(),
            router_feed=env.get(ROUTER_FEED_ENV, "streams").strip().lower(),
            shipping_feed=env.get("ORDERFLOW_SHIPPING_FEED", "streams").strip().lower(),
        )

    @property
    def go_env(self) -> dict[str, str]:
        """What every Go process started here (daprd, placement, scheduler) gets in its
        environment for the Go runtime."""
        return {"GOMAXPROCS": self.go_maxprocs} if self.go_maxprocs is not None else {}

    @property
    def daprd_env(self) -> dict[str, str]:
        """What every daprd started here gets in its environment for the Go runtime."""
        gc = {"GOGC": self.daprd_gogc} if self.daprd_gogc is not None else {}
        return {**self.go_env, **gc}

    # --- binaries -----------------------------------------------------------
    @property
    def dapr_bin(self) -> Path:
        return self.runtime_dir / "dapr" / ".dapr" / "bin"

    # --- infrastructure ports -------------------------------------------------
    def port(self, base: int) -> int:
        port = base + self.port_offset
        if not 0 < port < 65536:
            raise ValueError(
                f"ORDERFLOW_PORT_OFFSET={self.port_offset} moves port {base} to {port}, "
                "outside 1-65535 (default ports go up to 52380: offsets up to 13155 work, and "
                "11000-13155 keeps every port clear of Linux's ephemeral range, 32768-60999)"
            )
        return port

    @property
    def redis_port(self) -> int:
        return self.port(6380)

    @property
    def placement_port(self) -> int:
        return self.port(50005)

    @property
    def scheduler_port(self) -> int:
        return self.port(50006)

    @property
    def redis_host(self) -> str:
        return f"127.0.0.1:{self.redis_port}"

    @property
    def ops_enabled(self) -> bool:
        return self.with_ops and self.with_apps

    @property
    def prometheus_port(self) -> int:
        return self.port(PROMETHEUS_BASE_PORT)

    @property
    def zipkin_port(self) -> int:
        return self.port(ZIPKIN_BASE_PORT)

    @property
    def zipkin_jar(self) -> Path:
        return self.runtime_dir / "zipkin" / f"zipkin-server-{ZIPKIN_VERSION}-exec.jar"

    @property
    def dapr_config_path(self) -> Path:
        """dapr/config.yaml as rendered for this cluster (cluster/ops.py), every daprd's."""
        return self.state_dir / "dapr-config.yaml"

    @property
    def prometheus_config_path(self) -> Path:
        return self.state_dir / "prometheus.yml"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    # --- applications ---------------------------------------------------------
    def apps(self) -> list[AppSpec]:
        """Every app with a sidecar, in start order."""
        if not self.with_apps:
            return []
        apps = [self._actor_host(i + 1) for i in range(self.actor_host_replicas)]
        apps.append(
            self._app(
                "gateway",
                app_id="gateway",
                target="apps.gateway.main:create_app",
                ports=GATEWAY_PORTS,
            )
        )
        apps.append(
            self._app(
                "shipping",
                app_id="shipping",
                target="apps.shipping.main:create_app",
                ports=SHIPPING_PORTS,
                subscriptions=SHIPPING_TOPICS if self.shipping_feed == "dapr" else (),
                env=(("ORDERFLOW_SHIPPING_FEED", self.shipping_feed),),
            )
        )
        apps.append(
            self._app(
                "projector",
                app_id="projector",
                target="apps.projector.main:create_app",
                ports=PROJECTOR_PORTS,
                subscriptions=PROJECTOR_TOPICS if self.projector_feed == "dapr" else (),
                env=(("ORDERFLOW_PROJECTOR_FEED", self.projector_feed),),
            )
        )
        apps.append(
            self._app(
                "console",
                app_id="console",
                target="apps.console.main:create_app",
                ports=CONSOLE_PORTS,
                subscriptions=CONSOLE_TOPICS,
                env=self._console_env(apps),
            )
        )
        return apps

    def _actor_host(self, replica: int) -> AppSpec:
        name = f"actor-host-{replica}"
        feed = self.router_feed_of(name)
        return self._app(
            name,
            app_id="actor-host",
            target="apps.actor_host.main:create_app",
            ports=actor_host_ports(replica),
            actor_types=ACTOR_TYPES,
            subscriptions=ROUTER_TOPICS if feed == "dapr" else (),
            env=((ROUTER_FEED_ENV, feed),),
        )

    def router_feed_of(self, name: str) -> str:
        """The ORDERFLOW_ROUTER_FEED process `name` runs with (its own env wins)."""
        for env in (self.app_env_by_name.get(name, {}), self.extra_app_env):
            if ROUTER_FEED_ENV in env:
                return env[ROUTER_FEED_ENV].strip().lower()
        return self.router_feed

    def _console_env(self, apps: list[AppSpec]) -> tuple[tuple[str, str], ...]:
        """What the console watches (apps/console/targets.py), itself included."""
        ports = CONSOLE_PORTS
        listed = [*apps, self._app("console", app_id="console", target="", ports=ports)]
        targets = {
            "apps": [
                {
                    "name": a.name,
                    "app_id": a.app_id,
                    "app_port": a.app_port,
                    "http_port": a.http_port,
                    "metrics_port": a.metrics_port,
                    "actor_types": list(a.actor_types),
                }
                for a in listed
            ],
            "redis": self.redis_host,
            "placement": f"http://127.0.0.1:{self.port(50105)}",
            "scheduler": f"http://127.0.0.1:{self.port(50106)}",
            "prometheus": f"http://127.0.0.1:{self.prometheus_port}",
            "zipkin": f"http://127.0.0.1:{self.zipkin_port}",
            "dapr_config": str(self.dapr_config_path),
        }
        return (
            ("ORDERFLOW_CONSOLE_TARGETS", json.dumps(targets)),
            ("ORDERFLOW_CONSOLE_VENDOR_DIR", str(self.runtime_dir / "console")),
        )

    def _app(
        self,
        name: str,
        *,
        app_id: str,
        target: str,
        ports: BasePorts,
        actor_types: tuple[str, ...] = (),
        subscriptions: tuple[str, ...] = (),
        env: tuple[tuple[str, str], ...] = (),
    ) -> AppSpec:
        return AppSpec(
            name=name,
            app_id=app_id,
            target=target,
            app_port=self.port(ports.app),
            http_port=self.port(ports.http),
            grpc_port=self.port(ports.grpc),
            internal_grpc_port=self.port(ports.internal_grpc),
            metrics_port=self.port(ports.metrics),
            actor_types=actor_types,
            subscriptions=subscriptions,
            env=env,
        )


def sampling_rate(value: str) -> str:
    """ORDERFLOW_TRACE_SAMPLING: a probability from 0 (tracing off) to 1 (every request)."""
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"ORDERFLOW_TRACE_SAMPLING={value!r}: expected a number from 0 to 1")
    return value


GOGC_EXPECTED: Final = (
    "expected a whole number of percent (Go's GOGC, e.g. 400; 100 is Go's default) or off"
)


def gogc(value: str) -> str:
    """ORDERFLOW_DAPRD_GOGC: Go's GOGC, a whole percentage (1 or more) or "off"."""
    found = value.strip().lower()
    if found != "off" and not (found.isdigit() and int(found) > 0):
        raise ValueError(f"ORDERFLOW_DAPRD_GOGC={value!r}: {GOGC_EXPECTED}")
    return found


GO_MAXPROCS_EXPECTED: Final = (
    "expected a whole number of cores (1 or more; Go's GOMAXPROCS) or auto (Go's own: every core)"
)


def go_maxprocs(value: str) -> str | None:
    """ORDERFLOW_GO_MAXPROCS: a whole number of cores (1 or more), or "auto" (None: Go's
    own choice, every core the process may use)."""
    found = value.strip().lower()
    if found == "auto":
        return None
    if not (found.isdigit() and int(found) > 0):
        raise ValueError(f"ORDERFLOW_GO_MAXPROCS={value!r}: {GO_MAXPROCS_EXPECTED}")
    return str(int(found))


# The actor types every actor host registers; readiness waits for all of them.
ACTOR_TYPES: tuple[str, ...] = ("BeaconActor",)
