"""The ops processes' files: Prometheus scrapes every process, every daprd exports to Zipkin."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cluster import ops
from cluster.config import ROOT, ClusterConfig
from cluster.local import LocalCluster, stop_stages


def _config(tmp_path: Path, *, with_ops: bool = True, trace_sampling: str = "1") -> ClusterConfig:
    return ClusterConfig(
        runtime_dir=tmp_path / "runtime",
        state_dir=tmp_path / "state",
        port_offset=11000,
        actor_host_replicas=3,
        with_ops=with_ops,
        trace_sampling=trace_sampling,
    )


def _targets(prometheus: dict[str, object], job: str) -> dict[str, str]:
    """{process label: target} of one scrape job."""
    jobs = prometheus["scrape_configs"]
    assert isinstance(jobs, list)
    (scrape,) = [j for j in jobs if j["job_name"] == job]
    return {s["labels"]["process"]: s["targets"][0] for s in scrape["static_configs"]}


def test_prometheus_scrapes_every_daprd_every_app_and_the_control_plane(tmp_path: Path) -> None:
    config = _config(tmp_path)
    rules = tmp_path / "alerts.yml"
    rules.write_text("groups: []\n")

    prometheus = ops.prometheus_config(config, rules=rules)

    apps = config.apps()
    assert _targets(prometheus, "daprd") == {
        f"{a.name}-daprd": f"127.0.0.1:{a.metrics_port}" for a in apps
    }
    assert _targets(prometheus, "app") == {a.name: f"127.0.0.1:{a.app_port}" for a in apps}
    assert _targets(prometheus, "dapr-control-plane") == {
        "placement": "127.0.0.1:20180",
        "scheduler": "127.0.0.1:20181",
    }
    assert {"actor-host-3", "gateway", "shipping", "projector"} <= {a.name for a in apps}
    assert prometheus["rule_files"] == [str(rules)]


def test_without_a_rules_file_prometheus_loads_no_rules(tmp_path: Path) -> None:
    prometheus = ops.prometheus_config(_config(tmp_path), rules=tmp_path / "absent.yml")

    assert "rule_files" not in prometheus


def test_every_daprd_exports_to_this_clusters_zipkin_at_the_configured_sampling(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, trace_sampling="0.25")
    cluster = LocalCluster(config)
    cluster.write_files()

    rendered = yaml.safe_load(config.dapr_config_path.read_text())
    source = yaml.safe_load((ROOT / "dapr" / "config.yaml").read_text())

    assert rendered["spec"]["tracing"] == {
        "samplingRate": "0.25",
        "zipkin": {"endpointAddress": "http://127.0.0.1:20411/api/v2/spans"},
    }
    assert rendered["spec"]["features"] == source["spec"]["features"]
    for name in (n for n in cluster.processes if n.endswith("-daprd")):
        argv = list(cluster.processes[name].argv)
        assert argv[argv.index("--config") + 1] == str(config.dapr_config_path)


def test_every_app_exports_its_own_spans_to_the_same_zipkin_at_the_same_sampling(
    tmp_path: Path,
) -> None:
    cluster = LocalCluster(_config(tmp_path, trace_sampling="0.5"))
    quiet = LocalCluster(_config(tmp_path, with_ops=False))

    for app in cluster.config.apps():
        env = cluster.processes[app.name].env
        assert env["ORDERFLOW_ZIPKIN_URL"] == "http://127.0.0.1:20411/api/v2/spans"
        assert env["ORDERFLOW_TRACE_SAMPLING"] == "0.5"
        assert "ORDERFLOW_ZIPKIN_URL" not in quiet.processes[app.name].env


def test_without_ops_no_prometheus_or_zipkin_runs_and_no_exporter_is_set(tmp_path: Path) -> None:
    config = _config(tmp_path, with_ops=False)
    cluster = LocalCluster(config)
    cluster.write_files()

    assert not {"prometheus", "zipkin"} & set(cluster.processes)
    assert "zipkin" not in yaml.safe_load(config.dapr_config_path.read_text())["spec"]["tracing"]
    assert not config.prometheus_config_path.exists()
    assert not [label for label, _ in cluster.urls() if label.startswith(("prometheus", "zipkin"))]


def test_ops_run_with_make_run_and_are_loopback_only_on_offset_ports(tmp_path: Path) -> None:
    config = ClusterConfig.from_env(
        {"ORDERFLOW_PORT_OFFSET": "11000", "ORDERFLOW_STATE_DIR": str(tmp_path)}
    )
    cluster = LocalCluster(config)

    assert (config.prometheus_port, config.zipkin_port) == (20480, 20411)
    assert cluster.processes["prometheus"].ports == (20480,)
    assert "--web.listen-address=127.0.0.1:20480" in cluster.processes["prometheus"].argv
    zipkin = list(cluster.processes["zipkin"].argv)
    assert {"--armeria.ports[0].port=20411", "--armeria.ports[0].ip=127.0.0.1"} <= set(zipkin)
    assert ("prometheus (metrics, alerts)", "http://127.0.0.1:20480") in cluster.urls()
    assert ("zipkin (traces)", "http://127.0.0.1:20411/zipkin/") in cluster.urls()
    assert not ClusterConfig.from_env({"ORDERFLOW_OPS": "0"}).ops_enabled


def test_a_sampling_rate_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="ORDERFLOW_TRACE_SAMPLING"):
        ClusterConfig.from_env({"ORDERFLOW_TRACE_SAMPLING": "all"})
    assert ClusterConfig.from_env({"ORDERFLOW_TRACE_SAMPLING": "0"}).trace_sampling == "0"


def test_prometheus_and_zipkin_stop_after_the_apps_and_before_redis(tmp_path: Path) -> None:
    stages = stop_stages(list(LocalCluster(_config(tmp_path)).processes))

    flat = [name for stage in stages for name in stage]
    assert ["prometheus", "zipkin"] in stages
    assert flat.index("prometheus") > max(flat.index(n) for n in ("projector", "actor-host-1"))
    assert flat.index("zipkin") < flat.index("placement") < flat.index("redis")


def test_setup_downloads_the_zipkin_version_the_launcher_runs_with_its_jvm_flags() -> None:
    script = (ROOT / "deploy" / "setup-ops.sh").read_text()

    version = re.search(r"^ZIPKIN_VERSION=(\S+)$", script, re.MULTILINE)
    flags = re.search(r"^ZIPKIN_JVM=\((.*)\)$", script, re.MULTILINE)
    assert version is not None
    assert flags is not None  # a class-data-sharing archive needs the same GC and flags
    assert ClusterConfig.from_env({}).zipkin_jar.name == f"zipkin-server-{version[1]}-exec.jar"
    assert tuple(flags[1].split()) == ops.ZIPKIN_JVM


def test_zipkin_runs_from_setups_class_data_sharing_archive_when_there_is_one(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    assert ops.zipkin_jar_args(config) == ["-jar", str(config.zipkin_jar)]
    cds = config.zipkin_jar.parent / "cds"
    cds.mkdir(parents=True)
    for name in ("stamp", "zipkin.jsa", config.zipkin_jar.name):
        (cds / name).write_text("")

    assert ops.zipkin_jar_args(config) == [
        f"-XX:SharedArchiveFile={cds / 'zipkin.jsa'}",
        "-jar",
        str(cds / config.zipkin_jar.name),
    ]


def test_promtool_accepts_the_generated_config_with_the_rules_it_loads(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make ops-tools` (make test does)")
    config = _config(tmp_path)
    LocalCluster(config).write_files()

    check = subprocess.run(
        [promtool, "check", "config", str(config.prometheus_config_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert check.returncode == 0, check.stdout + check.stderr
    if ops.ALERT_RULES.exists():  # promtool checked the rules it names, too
        assert str(ops.ALERT_RULES) in check.stdout + check.stderr


def test_promtool_refuses_a_config_whose_rules_file_is_broken(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make ops-tools` (make test does)")
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        "groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: up ==\n"
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(ops.prometheus_config(_config(tmp_path), rules=rules)))

    check = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )

    assert check.returncode != 0
    assert "alerts.yml" in check.stdout + check.stderr
