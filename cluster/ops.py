"""The cluster's ops processes (Prometheus, Zipkin) and the files the launcher renders for them.

Prometheus scrapes, every `SCRAPE_INTERVAL`, three jobs (the alert rules and the console
query them by these names and labels; every target carries `process` and `app_id`):

- `daprd`: every sidecar's metrics port;
- `app`: every app's `/metrics` on its app port;
- `dapr-control-plane`: placement's and scheduler's metrics ports.

Each daprd exports its spans to Zipkin: the launcher renders `dapr/config.yaml` per cluster
with `tracing.zipkin.endpointAddress` on this cluster's Zipkin port and the sampling rate of
ORDERFLOW_TRACE_SAMPLING.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from cluster.config import ROOT, ClusterConfig
from cluster.errors import ClusterError
from cluster.processes import ManagedProcess

OPS_PROCESSES = ("prometheus", "zipkin")
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DAPR_CONFIG_SOURCE = ROOT / "dapr" / "config.yaml"
SCRAPE_INTERVAL = "5s"
# Zipkin keeps spans in memory; 256 MB of heap holds this many with room to spare.
ZIPKIN_MAX_SPANS = 100_000
# C1 only: starts faster. deploy/setup-ops.sh records its CDS archive with the same flags.
ZIPKIN_JVM = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


def _target(port: int, *, process: str, app_id: str) -> dict[str, Any]:
    return {"targets": [f"127.0.0.1:{port}"], "labels": {"process": process, "app_id": app_id}}


def prometheus_config(cfg: ClusterConfig, *, rules: Path = ALERT_RULES) -> dict[str, Any]:
    """The scrape configuration: every daprd, every app, placement and scheduler."""
    apps = cfg.apps()
    config: dict[str, Any] = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "daprd",
                "static_configs": [
                    _target(a.metrics_port, process=f"{a.name}-daprd", app_id=a.app_id)
                    for a in apps
                ],
            },
            {
                "job_name": "app",
                "metrics_path": "/metrics",
                "static_configs": [
                    _target(a.app_port, process=a.name, app_id=a.app_id) for a in apps
                ],
            },
            {
                "job_name": "dapr-control-plane",
                "static_configs": [
                    _target(cfg.port(9180), process="placement", app_id="placement"),
                    _target(cfg.port(9181), process="scheduler", app_id="scheduler"),
                ],
            },
        ],
    }
    if rules.exists():
        config["rule_files"] = [str(rules)]
    return config


def render_dapr_config(*, sampling: str, zipkin: str | None) -> dict[str, Any]:
    """dapr/config.yaml with a sampling rate and, given its base URL, export to a Zipkin."""
    doc: dict[str, Any] = yaml.safe_load(DAPR_CONFIG_SOURCE.read_text())
    tracing = doc["spec"].setdefault("tracing", {})
    tracing["samplingRate"] = sampling
    if zipkin is not None:
        tracing["zipkin"] = {"endpointAddress": f"{zipkin}/api/v2/spans"}
    return doc


def dapr_config(cfg: ClusterConfig) -> dict[str, Any]:
    """Every daprd's configuration in this cluster: its sampling rate and, with ops, Zipkin."""
    zipkin = f"http://127.0.0.1:{cfg.zipkin_port}" if cfg.ops_enabled else None
    return render_dapr_config(sampling=cfg.trace_sampling, zipkin=zipkin)


def compose_dapr_config() -> str:
    """deploy/compose/dapr/config.yaml: the sidecars' configuration in docker-compose."""
    doc = render_dapr_config(sampling="1", zipkin="http://zipkin:9411")
    return "# Generated from dapr/config.yaml by cluster/ops.py (a test keeps it current)\n" + (
        yaml.safe_dump(doc, sort_keys=False)
    )


def app_env(cfg: ClusterConfig) -> dict[str, str]:
    """What every app needs to export its own spans (actors/toolkit/tracing.py) as its
    daprd does: the same sampling rate and, with ops on, the same Zipkin."""
    env = {"ORDERFLOW_TRACE_SAMPLING": cfg.trace_sampling}
    if cfg.ops_enabled:
        env["ORDERFLOW_ZIPKIN_URL"] = f"http://127.0.0.1:{cfg.zipkin_port}/api/v2/spans"
    return env


def write_files(cfg: ClusterConfig) -> None:
    """The rendered Dapr configuration (always) and, with ops on, Prometheus's config."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    cfg.dapr_config_path.write_text(
        "# Rendered by the launcher (cluster/ops.py) from dapr/config.yaml\n"
        + yaml.safe_dump(dapr_config(cfg), sort_keys=False)
    )
    if cfg.ops_enabled:
        (cfg.data_dir / "prometheus").mkdir(parents=True, exist_ok=True)
        cfg.prometheus_config_path.write_text(
            "# Rendered by the launcher (cluster/ops.py)\n"
            + yaml.safe_dump(prometheus_config(cfg), sort_keys=False)
        )


def processes(cfg: ClusterConfig) -> list[ManagedProcess]:
    if not cfg.ops_enabled:
        return []
    prometheus = ManagedProcess(
        "prometheus",
        [
            "prometheus",
            f"--config.file={cfg.prometheus_config_path}",
            f"--storage.tsdb.path={cfg.data_dir / 'prometheus'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{cfg.prometheus_port}",
            f"--log.level={'debug' if cfg.log_level == 'debug' else 'info'}",
        ],
        cfg.log_dir / "prometheus.log",
        ports=(cfg.prometheus_port,),
    )
    zipkin = ManagedProcess(
        "zipkin",
        [
            "java",
            *ZIPKIN_JVM,
            *zipkin_jar_args(cfg),
            # the whole list, or Spring drops the port and binds a random one
            f"--armeria.ports[0].port={cfg.zipkin_port}",
            "--armeria.ports[0].ip=127.0.0.1",
            "--armeria.ports[0].protocols[0]=http",
            "--zipkin.storage.type=mem",
            f"--zipkin.storage.mem.max-spans={ZIPKIN_MAX_SPANS}",
        ],
        cfg.log_dir / "zipkin.log",
        ports=(cfg.zipkin_port,),
    )
    return [prometheus, zipkin]


def zipkin_jar_args(cfg: ClusterConfig) -> list[str]:
    """The extracted jar with setup's class-data-sharing archive (starts in half the time),
    else the exec jar itself."""
    cds = cfg.zipkin_jar.parent / "cds"
    extracted, archive = cds / cfg.zipkin_jar.name, cds / "zipkin.jsa"
    if (cds / "stamp").is_file() and extracted.is_file() and archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", "-jar", str(extracted)]
    return ["-jar", str(cfg.zipkin_jar)]


def readiness_url(cfg: ClusterConfig, name: str) -> str:
    if name == "prometheus":
        return f"http://127.0.0.1:{cfg.prometheus_port}/-/ready"
    return f"http://127.0.0.1:{cfg.zipkin_port}/health"


def preflight(cfg: ClusterConfig) -> None:
    """Fail before anything starts when setup did not install the ops tools."""
    if not cfg.ops_enabled:
        return
    for tool in ("prometheus", "java"):
        if shutil.which(tool) is None:
            raise ClusterError(
                f"{tool} not found on PATH: run `make ops-tools` (or `make setup`) first, "
                "or set ORDERFLOW_OPS=0 to run without Prometheus and Zipkin."
            )
    if not cfg.zipkin_jar.is_file():
        raise ClusterError(
            f"the Zipkin server jar is missing ({cfg.zipkin_jar}): run `make ops-tools` "
            "(or `make setup`) first, or set ORDERFLOW_OPS=0."
        )
