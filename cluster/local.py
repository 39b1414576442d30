"""The local cluster: Redis, placement, scheduler, and every app with its own daprd."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cluster import ops
from cluster.config import HTTP_PROTOCOL, ROOT, AppSpec, ClusterConfig
from cluster.processes import (
    STOP_TIMEOUT_S,
    ClusterError,
    ManagedProcess,
    Stopped,
    ensure_binary,
    stop_in_stages,
    wait_until,
)
from cluster.tokens import keep_gateway_keys, keep_tokens, new_tokens, secrets_dir

READY_TIMEOUT = 60.0
OPS_READY_TIMEOUT = 120.0  # Zipkin's JVM: ~6 s alone, 16 s or more beside a starting cluster
PROBE_ACTOR = "BeaconActor/readiness-probe"  # a read-only call that proves routing
# An actor host is ready when one of these ids, called through its own sidecar, is served
# by that host (BeaconActor.Get names its replica); placement spreads them over the hosts.
HOST_PROBE_IDS = tuple(f"readiness-probe-{n}" for n in range(24))
# The scheduler is ready when every running actor host's sidecar registers this reminder
# (due in an hour, removed at once; daprd refuses reminders of types its app does not
# host): a scheduler killed with SIGKILL answers its health route at once but schedules
# nothing until its cron leadership lease expires (~20 s; README "Operating under faults").
REMINDER_PROBE = f"{PROBE_ACTOR}/reminders/scheduler-probe"
# uvicorn's --timeout-graceful-shutdown: after SIGTERM, cancel what still runs (a gateway
# long-poll waits up to 30 s) instead of waiting on it.
APP_GRACEFUL_SHUTDOWN_S = 3
# daprd forces its exit this long after SIGTERM (default 5); what it did not ack is redelivered
DAPRD_GRACEFUL_SHUTDOWN_S = 3
# how often the foreground mode runs the sidecar watchdog's check (cluster/watchdog.py)
WATCH_INTERVAL_S = 5.0
# the process `up --detach` starts beside the cluster to run that check (`cluster watch`)
WATCHDOG = "watchdog"


def _request(
    url: str, method: str, body: bytes | None, headers: Mapping[str, str] | None
) -> urllib.request.Request:
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body:
        req.add_header("Content-Type", "application/json")
    return req


def http_get_json(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> Any:
    with urllib.request.urlopen(_request(url, "GET", None, headers), timeout=timeout) as resp:
        body = resp.read()
        return json.loads(body) if body else {}


def http_ok(url: str, timeout: float = 2.0) -> bool:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return 200 <= int(resp.status) < 300


def http_post_ok(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> bool:
    with urllib.request.urlopen(_request(url, "POST", b"", headers), timeout=timeout) as resp:
        return 200 <= int(resp.status) < 300


def reminder_round_trip(
    sidecar_port: int, timeout: float = 3.0, headers: Mapping[str, str] | None = None
) -> bool:
    """Register the probe reminder through a sidecar, then remove it; both answered 2xx."""
    url = f"http://127.0.0.1:{sidecar_port}/v1.0/actors/{REMINDER_PROBE}"
    for method, body in (("PUT", b'{"dueTime": "1h"}'), ("DELETE", None)):
        with urllib.request.urlopen(_request(url, method, body, headers), timeout=timeout) as resp:
            if not 200 <= int(resp.status) < 300:
                return False
    return True


def http_post_json(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> Any:
    with urllib.request.urlopen(_request(url, "POST", b"", headers), timeout=timeout) as resp:
        body = resp.read()
        return json.loads(body) if body else {}


def _quiet(stopped: Stopped) -> None:
    """The default `report` of `LocalCluster.stop`: say nothing."""


def stop_stages(names: list[str]) -> list[list[str]]:
    """The order `stop` and `down` use: each stage gets SIGTERM at once, then the next.

    The detached watchdog and the gateway app first (no restarts, no new orders), then
    every daprd while its app, Redis, placement and scheduler still answer: a daprd's
    shutdown finishes in-flight pub/sub deliveries and deactivates its actors through its
    app, and with the app or Redis gone it hangs until its 5 s grace runs out ("Graceful
    shutdown timeout exceeded"). Then the apps (nothing calls them any more), Prometheus
    and Zipkin, placement and scheduler, Redis last.
    """
    sidecars = [n for n in names if n.endswith("-daprd")]
    infra = {"redis", "placement", "scheduler", *ops.OPS_PROCESSES}
    first = [n for n in names if n in (WATCHDOG, "gateway")]
    apps = [n for n in names if n not in infra and n not in sidecars and n not in first]
    stages = [
        first,
        sidecars,
        apps,
        [n for n in names if n in ops.OPS_PROCESSES],
        [n for n in names if n in ("placement", "scheduler")],
        [n for n in names if n == "redis"],
    ]
    return [stage for stage in stages if stage]


def _on_localhost(prefix: str, port: int) -> tuple[str, ...]:
    """`--<prefix>port <port> --<prefix>listen-address 127.0.0.1`: how placement, scheduler
    and daprd take a port and bind it to loopback only."""
    return (f"--{prefix}port", str(port), f"--{prefix}listen-address", "127.0.0.1")


def placement_hosts(state: dict[str, Any]) -> set[str]:
    tables = (state.get("tables") or {}).values()
    return {str(h.get("name")) for table in tables for h in table.get("hosts") or []}


def redis_ping(port: int, password: str | None = None) -> bool:
    """Redis answers PING (after AUTH with `password`, the cluster's requirepass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        if password:
            sock.sendall(_command(b"AUTH", password.encode()))
            if not _reply(sock).startswith(b"+OK"):
                return False
        sock.sendall(b"PING\r\n")
        return _reply(sock).startswith(b"+PONG")


def _command(*parts: bytes) -> bytes:
    """One command in RESP (an argument may hold any byte)."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _reply(sock: socket.socket) -> bytes:
    """One simple reply line (+OK, +PONG, -ERR ...)."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data


class LocalCluster:
    """Builds, starts, watches and stops every process of one cluster instance."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.processes: dict[str, ManagedProcess] = {}
        self.last_stop: list[Stopped] = []  # what the last `stop` did, process by process
        # every daprd and every app gets both (cluster/tokens.py): a sidecar refuses calls
        # to its API without the Dapr API token, an app daprd's calls without the app token.
        # The ones kept in the state dir, else new ones, kept there at once: whoever builds
        # a LocalCluster over a state dir (the launcher, a test before `up --detach`, the
        # detached watchdog, `make tokens`) has the same two.
        self.tokens = keep_tokens(config.state_dir, new_tokens())
        # the gateway's clients (apps/gateway/auth.py): the tools call as "ops", the operator
        self.gateway_keys = keep_gateway_keys(config.state_dir)
        self._define()

    # --- definition -------------------------------------------------------------
    def _define(self) -> None:
        cfg = self.config
        logs = cfg.log_dir
        self._add(
            ManagedProcess(
                "redis",
                ["redis-server", str(cfg.state_dir / "redis.conf")],
                logs / "redis.log",
                ports=(cfg.redis_port,),
            )
        )
        self._add(
            ManagedProcess(
                "placement",
                [
                    str(cfg.dapr_bin / "placement"),
                    *_on_localhost("", cfg.placement_port),
                    *_on_localhost("healthz-", cfg.port(50105)),
                    *_on_localhost("metrics-", cfg.port(9180)),
                    *(
                        "--id",
                        "placement-0",
                        "--initial-cluster",
                        f"placement-0=127.0.0.1:{cfg.port(50205)}",
                    ),
                    # ORDERFLOW_PLACEMENT_DISSEMINATE_TIMEOUT; must exceed the actor host's
                    # drain timeout, or a rebalance under load kicks the draining host.
                    *("--disseminate-timeout", cfg.placement_disseminate_timeout),
                    *("--metadata-enabled", "--log-level", cfg.log_level),
                ],
                logs / "placement.log",
                env=cfg.go_env,  # GOMAXPROCS (ORDERFLOW_GO_MAXPROCS)
                ports=(cfg.placement_port, cfg.port(50105), cfg.port(9180), cfg.port(50205)),
            )
        )
        self._add(
            ManagedProcess(
                "scheduler",
                [
                    str(cfg.dapr_bin / "scheduler"),
                    *_on_localhost("", cfg.scheduler_port),
                    *_on_localhost("healthz-", cfg.port(50106)),
                    *_on_localhost("metrics-", cfg.port(9181)),
                    *("--etcd-data-dir", str(cfg.data_dir / "scheduler")),
                    *_on_localhost("etcd-client-", cfg.port(52379)),
                    *("--id", "scheduler-0"),
                    *("--etcd-initial-cluster", f"scheduler-0=http://127.0.0.1:{cfg.port(52380)}"),
                    *("--log-level", cfg.log_level),
                ],
                logs / "scheduler.log",
                env=cfg.go_env,
                ports=(
                    cfg.scheduler_port,
                    cfg.port(50106),
                    cfg.port(9181),
                    cfg.port(52379),
                    cfg.port(52380),
                ),
            )
        )
        for app in cfg.apps():
            self._add(self._app_process(app))
            self._add(self._sidecar_process(app))
        for proc in ops.processes(cfg):
            self._add(proc)

    def _add(self, proc: ManagedProcess) -> None:
        self.processes[proc.name] = proc

    def _app_process(self, app: AppSpec) -> ManagedProcess:
        env = {
            "PYTHONPATH": str(ROOT),
            "DAPR_HTTP_PORT": str(app.http_port),
            "DAPR_GRPC_PORT": str(app.grpc_port),
            "ORDERFLOW_APP_NAME": app.name,
            "ORDERFLOW_REDIS_HOST": self.config.redis_host,  # read models (redis-py)
            **self.tokens.env,
            **ops.app_env(self.config),  # the apps' own spans go where daprd's go
            **dict(app.env),
            **self.config.extra_app_env,
            **self.config.app_env_by_name.get(app.name, {}),
        }
        if app.app_id == "gateway":  # who may call its API (apps/gateway/auth.py)
            env.setdefault("ORDERFLOW_GATEWAY_CLIENTS", str(self.gateway_keys.clients_file))
        if app.app_id == "console":  # its operators: the same file's (apps/console/auth.py)
            env.setdefault("ORDERFLOW_CONSOLE_CLIENTS", str(self.gateway_keys.clients_file))
        argv = [
            sys.executable,
            *("-m", "uvicorn", app.target, "--factory"),
            *("--host", "127.0.0.1", "--port", str(app.app_port)),
            *("--no-access-log", "--log-level", "warning"),
            *("--http", HTTP_PROTOCOL),  # an answer's head and body in one write
            *("--timeout-graceful-shutdown", str(APP_GRACEFUL_SHUTDOWN_S)),
        ]
        return ManagedProcess(
            app.name,
            argv,
            self.config.log_dir / f"{app.name}.log",
            env=env,
            cwd=ROOT,
            ports=(app.app_port,),
        )

    def _sidecar_process(self, app: AppSpec) -> ManagedProcess:
        cfg = self.config
        argv = [
            str(cfg.dapr_bin / "daprd"),
            *("--app-id", app.app_id, "--app-port", str(app.app_port), "--app-protocol", "http"),
            *("--app-channel-address", "127.0.0.1", "--dapr-listen-addresses", "127.0.0.1"),
            *("--dapr-http-port", str(app.http_port), "--dapr-grpc-port", str(app.grpc_port)),
            *("--dapr-internal-grpc-port", str(app.internal_grpc_port)),
            *("--dapr-internal-grpc-listen-address", "127.0.0.1"),
            *_on_localhost("metrics-", app.metrics_port),
            *("--placement-host-address", f"127.0.0.1:{cfg.placement_port}"),
            *("--scheduler-host-address", f"127.0.0.1:{cfg.scheduler_port}"),
            *(
                "--resources-path",
                str(ROOT / "components"),
                "--config",
                str(cfg.dapr_config_path),  # dapr/config.yaml with this cluster's tracing
            ),
            *("--log-level", cfg.log_level, "--mode", "standalone"),
            # On SIGTERM, stop every subscription and cancel its retries FIRST, while the
            # actor runtime still serves: otherwise the router's deliveries, whose actor
            # calls fail once the actor runtime stops, are retried until the graceful
            # shutdown's grace runs out ("Graceful shutdown timeout exceeded"). Subscriptions
            # stop at the start of the block; the block itself only has to be short.
            *("--dapr-block-shutdown-duration", "500ms"),
            *("--dapr-graceful-shutdown-seconds", str(DAPRD_GRACEFUL_SHUTDOWN_S)),
        ]
        env = {
            "DAPR_HOST_IP": "127.0.0.1",  # the address placement hands to other sidecars
            **cfg.daprd_env,  # GOMAXPROCS, and Go's GC target when ORDERFLOW_DAPRD_GOGC asks
            # read by components/ through the env secret store
            "ORDERFLOW_REDIS_HOST": cfg.redis_host,
            **self.tokens.env,
        }
        ports = (app.http_port, app.grpc_port, app.internal_grpc_port, app.metrics_port)
        return ManagedProcess(
            f"{app.name}-daprd", argv, cfg.log_dir / f"{app.name}-daprd.log", env=env, ports=ports
        )

    # --- lifecycle --------------------------------------------------------------
    def preflight(self) -> None:
        """Check binaries before anything starts, so errors name the make target."""
        if shutil.which("redis-server") is None:
            raise ClusterError(
                "redis-server not found on PATH: run `make redis` (or `make setup`) first."
            )
        for name in ("daprd", "placement", "scheduler"):
            ensure_binary(self.config.dapr_bin / name, "runtime")
        ops.preflight(self.config)

    def write_files(self) -> None:
        cfg = self.config
        (cfg.data_dir / "redis").mkdir(parents=True, exist_ok=True)
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        # requirepass: the cluster's Redis password (cluster/tokens.py); the file is the
        # owner's alone, as the secrets are
        conf = cfg.state_dir / "redis.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        password = [f"requirepass {self.tokens.redis}"] if self.tokens.redis else []
        conf.write_text(
            "\n".join(
                [
                    f"port {cfg.redis_port}",
                    *password,
                    "bind 127.0.0.1",
                    "protected-mode yes",
                    f"dir {cfg.data_dir / 'redis'}",
                    "appendonly yes",
                    f"appendfsync {cfg.redis_fsync}",
                    'save ""',
                    "daemonize no",
                    'logfile ""',
                ]
            )
            + "\n"
        )
        ops.write_files(cfg)

    def start(self) -> None:
        self.preflight()
        self.write_files()
        for proc in self.processes.values():  # no client may take a port of ours meanwhile
            proc.reservation.hold(proc.ports)
        try:
            started_ops = [n for n in ops.OPS_PROCESSES if n in self.processes]
            for name in started_ops:  # first: Zipkin's JVM starts while everything else does
                self.processes[name].start()
            for name in ("redis", "placement", "scheduler"):
                self._start_infra(name)
            apps = self.config.apps()
            for app in apps:
                for name in (app.name, f"{app.name}-daprd"):
                    self.processes[name].start()
            for app in apps:
                self.wait_app_ready(app)
            self.wait_actors_routable()
            for name in started_ops:
                self.wait_ops_ready(name)
        except BaseException:
            self.stop(timeout=5)
            raise
        finally:
            for proc in self.processes.values():
                proc.release_ports()
        self.write_pid_file()

    def _start_infra(self, name: str) -> ManagedProcess:
        proc = self.processes[name]
        proc.start()
        self.wait_infra_ready(name)
        return proc

    def wait_infra_ready(self, name: str) -> None:
        cfg = self.config
        checks = {
            "redis": lambda: redis_ping(cfg.redis_port, self.tokens.redis),
            "placement": lambda: http_ok(f"http://127.0.0.1:{cfg.port(50105)}/healthz"),
            "scheduler": lambda: http_ok(f"http://127.0.0.1:{cfg.port(50106)}/healthz"),
        }
        proc = self.processes[name]
        wait_until(
            checks[name],
            timeout=READY_TIMEOUT,
            what=f"{name} to be healthy",
            watch=[proc],
            next_step=f"read {proc.log_path}",
        )

    def wait_reminders_scheduled(self, timeout: float = READY_TIMEOUT) -> None:
        """Every running actor host's sidecar registers and removes a reminder: the
        scheduler schedules.

        The scheduler's health route answers as soon as it listens; after a SIGKILL its
        cron waits for the leadership lease the killed process held (~20 s) before it
        serves jobs, reminders or the sidecars' watch of its hosts.
        """
        scheduler = self.processes["scheduler"]
        for app in self.config.apps():
            daprd = self.processes.get(f"{app.name}-daprd")
            if not app.actor_types or daprd is None or not daprd.alive():
                continue
            wait_until(
                functools.partial(
                    reminder_round_trip, app.http_port, headers=self.tokens.sidecar_headers
                ),
                timeout=timeout,
                what=f"a reminder registered through {app.name}'s sidecar (the scheduler serving)",
                watch=[scheduler, daprd],
                next_step=f"read {scheduler.log_path} ('Cron is ready' follows a restart "
                f"once the old leadership lease expires) and {daprd.log_path}",
            )

    def wait_ops_ready(self, name: str) -> None:
        proc = self.processes[name]
        url = ops.readiness_url(self.config, name)
        wait_until(
            lambda: http_ok(url),
            timeout=OPS_READY_TIMEOUT,
            what=f"{name} to be ready ({url})",
            watch=[proc],
            next_step=f"read {proc.log_path}",
        )

    def wait_app_ready(self, app: AppSpec, timeout: float = READY_TIMEOUT) -> None:
        """App answers; sidecar healthy; actor types registered with placement; subscribed."""
        daprd = self.processes[f"{app.name}-daprd"]
        watch = [self.processes[app.name], daprd]
        base = f"http://127.0.0.1:{app.http_port}/v1.0"
        auth = self.tokens.sidecar_headers
        wait_until(  # the app itself, not its daprd's memory of it
            lambda: http_ok(f"http://127.0.0.1:{app.app_port}/healthz/app"),
            timeout=timeout,
            what=f"{app.name} to answer GET /healthz/app on port {app.app_port}",
            watch=watch,
            next_step=f"read {self.processes[app.name].log_path} (did it finish its startup?)",
        )
        wait_until(
            lambda: http_ok(f"{base}/healthz"),
            timeout=timeout,
            what=f"{app.name}-daprd health ({base}/healthz)",
            watch=watch,
            next_step=f"read {daprd.log_path}",
        )
        if app.actor_types:
            wait_until(
                lambda: actors_registered(
                    http_get_json(f"{base}/metadata", headers=auth), app.actor_types
                ),
                timeout=timeout,
                what=f"{app.name}-daprd to register actor types {app.actor_types} with placement",
                watch=watch,
                next_step=f"read {daprd.log_path} and {self.processes['placement'].log_path}",
            )
        if app.subscriptions:
            wait_until(
                lambda: subscribed(
                    http_get_json(f"{base}/metadata", headers=auth), app.subscriptions
                ),
                timeout=timeout,
                what=f"{app.name}-daprd to subscribe to {app.subscriptions}",
                watch=watch,
                next_step=f"read {daprd.log_path} (GET /dapr/subscribe on the app)",
            )

    def wait_actors_routable(self, timeout: float = READY_TIMEOUT) -> None:
        """Placement lists every actor host, every sidecar routes an actor call, and every
        actor host serves an actor through its own sidecar.

        Until placement has disseminated a table with all hosts, a call can be
        retried mid-rebalance and run twice; tests and `make run` start after that.
        """
        hosts = {f"127.0.0.1:{a.internal_grpc_port}" for a in self.config.apps() if a.actor_types}
        if not hosts:
            return
        placement = self.processes["placement"]
        state_url = f"http://127.0.0.1:{self.config.port(50105)}/placement/state"
        wait_until(
            lambda: hosts <= placement_hosts(http_get_json(state_url)),
            timeout=timeout,
            what=f"placement to list actor hosts {sorted(hosts)}",
            watch=list(self.processes.values()),
            next_step=f"read {placement.log_path}; 'dissemination timeout' there: see README "
            "Troubleshooting",
        )
        for app in self.config.apps():
            url = f"http://127.0.0.1:{app.http_port}/v1.0/actors/{PROBE_ACTOR}/method/Get"
            wait_until(
                functools.partial(http_post_ok, url, headers=self.tokens.sidecar_headers),
                timeout=timeout,
                what=f"an actor call through {app.name}'s sidecar ({url})",
                watch=list(self.processes.values()),
                next_step=f"read {self.processes[app.name + '-daprd'].log_path} and "
                f"{placement.log_path}",
            )
            if app.actor_types:
                wait_until(
                    functools.partial(self.serves_actors, app),
                    timeout=timeout,
                    what=f"{app.name} to serve an actor call through its own sidecar",
                    watch=list(self.processes.values()),
                    next_step=f"read {self.processes[app.name].log_path} and "
                    f"{self.processes[app.name + '-daprd'].log_path}",
                )

    def serves_actors(self, app: AppSpec) -> bool:
        """Whether some probe actor, called through `app`'s sidecar, is served by `app`."""
        base = f"http://127.0.0.1:{app.http_port}/v1.0/actors/BeaconActor"
        for actor_id in HOST_PROBE_IDS:
            answer = http_post_json(
                f"{base}/{actor_id}/method/Get", headers=self.tokens.sidecar_headers
            )
            if (answer.get("result") or {}).get("replica") == app.name:
                return True
        return False

    def start_detached_watchdog(self) -> None:
        """`python -m cluster watch` beside a detached cluster, in the pid file as WATCHDOG:
        the sidecar watchdog `make run` runs in its own loop (cluster/watchdog.py)."""
        proc = ManagedProcess(
            name=WATCHDOG,
            argv=[sys.executable, "-m", "cluster", "watch"],
            log_path=self.config.log_dir / f"{WATCHDOG}.log",
            cwd=ROOT,
        )
        self.processes[WATCHDOG] = proc
        proc.start()
        self.write_pid_file()

    def app(self, name: str) -> AppSpec:
        return next(a for a in self.config.apps() if a.name == name)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def restart(self, name: str, *, wait: bool = True) -> None:
        """Start a stopped or killed process again (and wait until it is ready)."""
        proc = self.processes[name]
        proc.stop()
        try:
            proc.start()
            if wait:
                self.wait_restarted(name)
        finally:
            proc.release_ports()
        self.write_pid_file()

    def wait_restarted(self, name: str) -> None:
        if name in ("redis", "placement", "scheduler"):
            self.wait_infra_ready(name)
            if name == "scheduler":
                self.wait_reminders_scheduled()
            return
        if name in ops.OPS_PROCESSES:
            self.wait_ops_ready(name)
            return
        app = self.app(name.removesuffix("-daprd"))
        partner = app.name if name.endswith("-daprd") else f"{app.name}-daprd"
        if not self.processes[partner].alive():
            return  # readiness needs both halves: restarting the partner waits
        self.wait_app_ready(app)
        self.wait_actors_routable()

    def stop(
        self, *, timeout: float = STOP_TIMEOUT_S, report: Callable[[Stopped], None] = _quiet
    ) -> list[Stopped]:
        """Stop every process in `stop_stages` order; SIGKILL only after `timeout`.

        The result (also kept in `last_stop`) says how long each process took and
        whether it had to be killed.
        """
        stages = [[self.processes[n] for n in stage] for stage in stop_stages(list(self.processes))]
        self.last_stop = stop_in_stages(stages, timeout=timeout, report=report)
        for proc in self.processes.values():
            if proc.popen is not None:
                proc.popen.wait()  # reap
            proc.release_ports()
        self.pid_file.unlink(missing_ok=True)
        return self.last_stop

    @contextmanager
    def running(self) -> Iterator[LocalCluster]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # --- pid file, for `down` and `status` from another shell --------------------
    @property
    def pid_file(self) -> Path:
        return self.config.state_dir / "cluster.json"

    def write_pid_file(self) -> None:
        entries = {
            name: {"pid": p.pid, "exe": str(p.argv[0]), "log": str(p.log_path)}
            for name, p in self.processes.items()
            if p.pid is not None
        }
        self.pid_file.write_text(
            json.dumps({"launcher": os.getpid(), "processes": entries}, indent=2)
        )

    def urls(self) -> list[tuple[str, str]]:
        apps = self.config.apps()
        labels = {
            "gateway": ("gateway API", "/docs"),
            "shipping": ("shipping partner API", "/docs"),
            "projector": ("projector (read models) stats", "/projector/stats"),
            "console": ("ops console", "/cluster"),
        }
        rows = [
            (labels[a.app_id][0], f"http://127.0.0.1:{a.app_port}{labels[a.app_id][1]}")
            for a in apps
            if a.app_id in labels
        ]
        # sidecars: the apps above first, then the actor hosts
        rows += [
            (f"{a.name} sidecar (Dapr API)", f"http://127.0.0.1:{a.http_port}/v1.0/metadata")
            for a in sorted(apps, key=lambda a: bool(a.actor_types))
        ]
        if self.config.ops_enabled:
            rows += [
                ("prometheus (metrics, alerts)", f"http://127.0.0.1:{self.config.prometheus_port}"),
                ("zipkin (traces)", f"http://127.0.0.1:{self.config.zipkin_port}/zipkin/"),
            ]
        rows += [
            ("redis", f"redis://{self.config.redis_host}"),
            ("placement", f"127.0.0.1:{self.config.placement_port}"),
            ("scheduler", f"127.0.0.1:{self.config.scheduler_port}"),
            ("logs", str(self.config.log_dir)),
            # every sidecar's API wants the header `dapr-api-token: $DAPR_API_TOKEN`, the
            # gateway `Authorization: Bearer $ORDERFLOW_GATEWAY_KEY` (or another client's),
            # the console an operator: user ops, password $ORDERFLOW_CONSOLE_KEY
            (
                "tokens and gateway keys",
                f'eval "$(make -s tokens)"  ({secrets_dir(self.config.state_dir)})',
            ),
            ("ops console sign-in", "user ops, password $ORDERFLOW_CONSOLE_KEY (make -s tokens)"),
        ]
        return rows


def actors_registered(metadata: dict[str, Any], actor_types: tuple[str, ...]) -> bool:
    runtime = metadata.get("actorRuntime") or {}
    types = {
        entry.get("type") for entry in runtime.get("activeActors") or metadata.get("actors") or []
    }
    placement = str(runtime.get("placement", ""))
    return set(actor_types) <= types and bool(runtime.get("hostReady")) and "connected" in placement


def subscribed(metadata: dict[str, Any], subscriptions: tuple[str, ...]) -> bool:
    active = {
        f"{s.get('pubsubname')}/{s.get('topic')}" for s in metadata.get("subscriptions") or []
    }
    return set(subscriptions) <= active


def wait_forever(cluster: LocalCluster, watch: Callable[[], object] | None = None) -> None:
    """Foreground mode: report processes that die until interrupted, and call `watch`
    (the sidecar watchdog's check) every WATCH_INTERVAL_S."""
    reported: set[str] = set()
    next_watch = time.monotonic() + WATCH_INTERVAL_S
    while True:
        for name, proc in cluster.processes.items():
            if name not in reported and proc.popen is not None and not proc.alive():
                reported.add(name)
                print(
                    f"!! {name} exited (code {proc.popen.returncode}); see {proc.log_path}",
                    flush=True,
                )
        if watch is not None and time.monotonic() >= next_watch:
            watch()
            next_watch = time.monotonic() + WATCH_INTERVAL_S
        time.sleep(1)
