"""The bench's own cluster: Orderflow's processes plus the Dapr Workflow peer and its daprd.

Started at its own port offset in a temp state dir, stopped (by pid, only what it started)
on the way out, also on Ctrl-C, SIGTERM or an error. The peer's daprd reads its own
resources dir (written here: the actor state store scoped to the peer's app id, the env
secret store, the resiliency policies), so components/ stays the product's. The peer and
its daprd get the cluster's two API tokens as the launcher gives them to its own
processes, and every bench call to a daprd carries `sidecar_headers`, every call to the
gateway's API `gateway_headers` (the operator's key: the gateway checks it, as in
production).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from cluster.config import ROOT, BasePorts, ClusterConfig
from cluster.local import LocalCluster, http_get_json, http_ok
from cluster.processes import ManagedProcess, wait_until
from cluster.tokens import ApiTokens

BENCH_PORT_OFFSET = 12875  # tests/unit/test_bench.py: clear of the working offsets
PEER_APP_ID = "bench-workflow"
# No app port: the workflow worker dials its daprd's gRPC port. gRPC ports ending in 5/6 stay
# clear of the actor hosts' (…1/…2 per replica) and every other app's.
PEER_PORTS = BasePorts(app=0, http=3900, grpc=50015, internal_grpc=50016, metrics=9590)
PEER_RESOURCES = ("statestore.yaml", "envsecrets.yaml", "resiliency.yaml")


def peer_ports(offset: int) -> tuple[int, int, int, int]:
    """The peer daprd's (http, grpc, internal grpc, metrics) ports at `offset`."""
    p = PEER_PORTS
    return (p.http + offset, p.grpc + offset, p.internal_grpc + offset, p.metrics + offset)


def write_peer_resources(target: Path) -> None:
    """components/ files the peer's daprd needs, the state store scoped to the peer only."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PEER_RESOURCES:
        doc: dict[str, Any] = yaml.safe_load((ROOT / "components" / name).read_text())
        if "scopes" in doc:
            doc["scopes"] = [PEER_APP_ID]
        (target / name).write_text(yaml.safe_dump(doc, sort_keys=False))


class BenchCluster:
    """Orderflow's LocalCluster plus the peer; `pids()` names every process measured."""

    def __init__(
        self,
        *,
        offset: int = BENCH_PORT_OFFSET,
        replicas: int = 1,
        redis_fsync: str = "always",
        daprd_gogc: str | None = None,
        go_maxprocs: str = "1",
    ) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="orderflow-bench-"))
        self.config = ClusterConfig.from_env(
            {
                "ORDERFLOW_STATE_DIR": str(self.state_dir),
                "ORDERFLOW_PORT_OFFSET": str(offset),
                "ORDERFLOW_ACTOR_HOSTS": str(replicas),
                "ORDERFLOW_OPS": "0",  # no figure here needs Prometheus or Zipkin
                "ORDERFLOW_TRACE_SAMPLING": "0",  # nothing exports spans: do not make them
                "ORDERFLOW_RUNTIME_DIR": str(ROOT / ".runtime"),
                "ORDERFLOW_REDIS_FSYNC": redis_fsync,  # appendfsync: "always" unless asked
                **({"ORDERFLOW_DAPRD_GOGC": daprd_gogc} if daprd_gogc is not None else {}),
                "ORDERFLOW_GO_MAXPROCS": go_maxprocs,  # "1" or "auto" as well as a number
            }
        )
        self.cluster = LocalCluster(self.config)
        self.offset = offset
        self.peer = self._peer_processes()

    # --- addresses --------------------------------------------------------------------
    def url(self, app: str) -> str:
        return f"http://127.0.0.1:{self.cluster.app(app).app_port}"

    def dapr(self, app: str) -> str:
        return f"http://127.0.0.1:{self.cluster.app(app).http_port}"

    @property
    def tokens(self) -> ApiTokens:
        """The cluster's Dapr API and app API tokens (cluster/tokens.py)."""
        return self.cluster.tokens

    @property
    def sidecar_headers(self) -> dict[str, str]:
        """What every call to one of the cluster's daprds (the peer's too) carries."""
        return self.tokens.sidecar_headers

    @property
    def gateway_headers(self) -> dict[str, str]:
        """What every call to the gateway's API carries: the operator's client key (every
        route, no rate limit; cluster/tokens.py GatewayKeys)."""
        return self.cluster.gateway_keys.headers()

    @property
    def peer_dapr(self) -> str:
        return f"http://127.0.0.1:{peer_ports(self.offset)[0]}"

    def pids(self, *, peer: bool) -> dict[str, int]:
        """Every process of the cluster (and, with `peer`, the peer's two) by name."""
        procs = dict(self.cluster.processes)
        if peer:
            procs.update({p.name: p for p in self.peer})
        return {name: p.pid for name, p in procs.items() if p.pid is not None and p.alive()}

    # --- lifecycle --------------------------------------------------------------------
    def _peer_processes(self) -> list[ManagedProcess]:
        cfg, (http, grpc, internal, metrics) = self.config, peer_ports(self.offset)
        resources = self.state_dir / "peer-resources"
        daprd = [
            str(cfg.dapr_bin / "daprd"),
            *("--app-id", PEER_APP_ID, "--dapr-listen-addresses", "127.0.0.1"),
            *("--dapr-http-port", str(http), "--dapr-grpc-port", str(grpc)),
            *("--dapr-internal-grpc-port", str(internal)),
            *("--dapr-internal-grpc-listen-address", "127.0.0.1"),
            *("--metrics-port", str(metrics), "--metrics-listen-address", "127.0.0.1"),
            *("--placement-host-address", f"127.0.0.1:{cfg.placement_port}"),
            *("--scheduler-host-address", f"127.0.0.1:{cfg.scheduler_port}"),
            *("--resources-path", str(resources), "--config", str(cfg.dapr_config_path)),
            *("--log-level", "warn", "--mode", "standalone"),
        ]
        env = {
            "DAPR_HOST_IP": "127.0.0.1",
            "ORDERFLOW_REDIS_HOST": cfg.redis_host,
            **cfg.daprd_env,  # the same Go tuning as the cluster's sidecars
            **self.tokens.env,  # as the launcher gives every daprd: its API wants the token
        }
        app_env = {
            "PYTHONPATH": str(ROOT),
            "DAPR_HTTP_PORT": str(http),
            "DAPR_GRPC_PORT": str(grpc),
            # as the launcher gives every app: the workflow SDK's clients read
            # DAPR_API_TOKEN themselves (dapr.conf.settings), its httpx client is given it
            **self.tokens.env,
        }
        logs = cfg.log_dir
        return [
            ManagedProcess(
                "workflow-peer-daprd",
                daprd,
                logs / "workflow-peer-daprd.log",
                env=env,
                ports=(http, grpc, internal, metrics),
            ),
            ManagedProcess(
                "workflow-peer",
                [sys.executable, "-m", "bench.peers.workflow_saga"],
                logs / "workflow-peer.log",
                env=app_env,
                cwd=ROOT,
            ),
        ]

    def _start_peer(self) -> None:
        write_peer_resources(self.state_dir / "peer-resources")
        daprd, app = self.peer
        daprd.start()
        wait_until(
            lambda: http_ok(f"{self.peer_dapr}/v1.0/healthz"),
            timeout=60,
            what="the workflow peer's daprd to be healthy",
            watch=[daprd],
            next_step=f"read {daprd.log_path}",
        )
        app.start()
        wait_until(
            lambda: self._peer_workers() > 0,
            timeout=60,
            what="the workflow peer to connect its worker",
            watch=[daprd, app],
            next_step=f"read {app.log_path}",
        )
        for proc in self.peer:
            proc.release_ports()

    def _peer_workers(self) -> int:
        url = f"{self.peer_dapr}/v1.0/metadata"
        return workers(http_get_json(url, headers=self.sidecar_headers))

    def stop(self) -> None:
        for proc in reversed(self.peer):  # the worker first, then its daprd
            proc.stop(timeout=5)
            proc.release_ports()
        self.cluster.stop(timeout=10)

    @contextlib.contextmanager
    def running(self, *, keep_logs: bool = False, peer: bool = True) -> Iterator[BenchCluster]:
        """Start everything; stop it on the way out (SIGTERM counts as Ctrl-C meanwhile).

        SIGINT gets Python's default handler even where the shell started us with it
        ignored (a background job), so Ctrl-C and SIGTERM always stop the cluster."""
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            try:
                self.cluster.start()  # stops what it started if it fails
                if peer:
                    self._start_peer()
                yield self
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would orphan
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what is still to be stopped
                self.stop()
                signal.signal(signal.SIGTERM, previous)
                signal.signal(signal.SIGINT, previous_int)
        finally:
            if not keep_logs:
                shutil.rmtree(self.state_dir, ignore_errors=True)


def workers(metadata: dict[str, Any]) -> int:
    """How many workflow workers daprd's metadata reports connected."""
    found = metadata.get("workflows") or {}
    return int(found.get("connectedWorkers") or 0)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM takes Ctrl-C's path: inside asyncio.run, the runner's SIGINT handler cancels
    the main task and run() raises KeyboardInterrupt (a KeyboardInterrupt raised here
    instead could land inside a task and be lost, leaving the run going)."""
    signal.raise_signal(signal.SIGINT)
