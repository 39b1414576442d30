"""The cluster layout: every process has its own ports, and every app is listed."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.config import HTTP_PROTOCOL, ROOT, ROUTER_TOPICS, ClusterConfig
from cluster.local import LocalCluster, subscribed
from cluster.tokens import read_tokens


def _cluster(tmp_path: Path, *, replicas: int = 2) -> LocalCluster:
    config = ClusterConfig(
        runtime_dir=tmp_path,
        state_dir=tmp_path / "state",
        actor_host_replicas=replicas,
        with_ops=True,
    )
    return LocalCluster(config)


@pytest.mark.parametrize("replicas", [1, 2, 8, 20])
def test_no_two_processes_share_a_port(tmp_path: Path, replicas: int) -> None:
    ports = [
        p for proc in _cluster(tmp_path, replicas=replicas).processes.values() for p in proc.ports
    ]

    assert len(ports) == len(set(ports))


# app, its app and sidecar HTTP ports, the subscriptions it waits for, and a URL it lists
APPS_WITH_SIDECARS = [
    # these two read the topics' streams themselves (apps/shipping/feed.py,
    # actors/toolkit/streamfeed.py): no subscription
    ("shipping", 8200, 3600, (), "shipping partner API", "8200/docs"),
    ("projector", 8300, 3700, (), "projector (read models) stats", "8300/projector/stats"),
    ("console", 8410, 3800, ("pubsub/deadletter",), "ops console", "8410/cluster"),
]


@pytest.mark.parametrize(
    ("name", "app_port", "http_port", "subscriptions", "label", "url"),
    APPS_WITH_SIDECARS,
    ids=[row[0] for row in APPS_WITH_SIDECARS],
)
def test_an_app_runs_with_its_sidecar_on_its_ports_and_waits_for_its_subscriptions(
    tmp_path: Path,
    *,
    name: str,
    app_port: int,
    http_port: int,
    subscriptions: tuple[str, ...],
    label: str,
    url: str,
) -> None:
    cluster = _cluster(tmp_path)
    app = cluster.app(name)

    assert {name, f"{name}-daprd"} <= set(cluster.processes)
    assert (app.app_id, app.app_port, app.http_port) == (name, app_port, http_port)
    assert app.subscriptions == subscriptions
    assert (label, f"http://127.0.0.1:{url}") in cluster.urls()


def test_the_shipping_partners_sidecar_is_listed(tmp_path: Path) -> None:
    assert (
        "shipping sidecar (Dapr API)",
        "http://127.0.0.1:3600/v1.0/metadata",
    ) in _cluster(tmp_path).urls()


def test_a_subscription_counts_once_the_sidecar_reports_it() -> None:
    metadata = {"subscriptions": [{"pubsubname": "pubsub", "topic": "orders", "rules": []}]}

    assert subscribed(metadata, ("pubsub/orders",))
    assert not subscribed({}, ("pubsub/orders",))
    assert not subscribed(metadata, ("pubsub/shipments",))


def test_the_projector_reads_and_writes_the_read_models_redis(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)

    assert cluster.processes["projector"].env["ORDERFLOW_REDIS_HOST"] == "127.0.0.1:6380"


def test_with_the_dapr_feed_the_launcher_waits_for_the_projectors_subscriptions(
    tmp_path: Path,
) -> None:
    env = {"ORDERFLOW_RUNTIME_DIR": str(tmp_path), "ORDERFLOW_PROJECTOR_FEED": "dapr"}
    cluster = LocalCluster(ClusterConfig.from_env(env))

    assert cluster.app("projector").subscriptions == (
        "pubsub/orders",
        "pubsub/inventory",
        "pubsub/wallet",
        "pubsub/projector-redelivery",
    )
    assert cluster.processes["projector"].env["ORDERFLOW_PROJECTOR_FEED"] == "dapr"
    default = LocalCluster(ClusterConfig.from_env({"ORDERFLOW_RUNTIME_DIR": str(tmp_path)}))
    assert default.processes["projector"].env["ORDERFLOW_PROJECTOR_FEED"] == "streams"


def test_with_the_dapr_feed_the_launcher_waits_for_the_shipping_subscription(
    tmp_path: Path,
) -> None:
    env = {"ORDERFLOW_RUNTIME_DIR": str(tmp_path), "ORDERFLOW_SHIPPING_FEED": "dapr"}
    cluster = LocalCluster(ClusterConfig.from_env(env))

    assert cluster.app("shipping").subscriptions == ("pubsub/orders",)
    assert cluster.processes["shipping"].env["ORDERFLOW_SHIPPING_FEED"] == "dapr"
    default = LocalCluster(ClusterConfig.from_env({"ORDERFLOW_RUNTIME_DIR": str(tmp_path)}))
    assert default.app("shipping").subscriptions == ()
    assert default.processes["shipping"].env["ORDERFLOW_SHIPPING_FEED"] == "streams"


def test_one_process_can_have_an_environment_of_its_own(tmp_path: Path) -> None:
    config = ClusterConfig(
        runtime_dir=tmp_path,
        state_dir=tmp_path / "state",
        extra_app_env={"ORDERFLOW_TEST_FAULTS": "1", "ORDERFLOW_PUBLISH": "append"},
        app_env_by_name={"actor-host-2": {"ORDERFLOW_PUBLISH": "sidecar"}},
    )
    processes = LocalCluster(config).processes

    assert processes["actor-host-2"].env["ORDERFLOW_PUBLISH"] == "sidecar"
    assert processes["actor-host-1"].env["ORDERFLOW_PUBLISH"] == "append"
    assert processes["actor-host-2"].env["ORDERFLOW_TEST_FAULTS"] == "1"  # the rest stays
    assert "ORDERFLOW_PUBLISH" not in processes["actor-host-2-daprd"].env


def test_the_console_has_its_own_grpc_and_metrics_ports_and_sees_every_app(
    tmp_path: Path,
) -> None:
    cluster = _cluster(tmp_path)
    console = cluster.app("console")
    targets = json.loads(dict(console.env)["ORDERFLOW_CONSOLE_TARGETS"])

    assert (console.grpc_port, console.internal_grpc_port, console.metrics_port) == (
        50009,
        50010,
        9390,
    )
    assert [a["name"] for a in targets["apps"]] == [a.name for a in cluster.config.apps()]
    assert (targets["prometheus"], targets["zipkin"]) == (
        "http://127.0.0.1:9480",
        "http://127.0.0.1:9411",
    )


# Offsets that run side by side: `make run` (0), the test session (11000), one `dapr run -f`
# test offset (11650-11850, the first free one), the launcher tests (11500), the restart
# test's cluster (12500), the chaos suite's own cluster (12000), a helper's (12250). Offset
# 11400 (tests/cluster/test_setup_errors.py) only ever binds Redis. The watchdog tests'
# clusters (12625 in process, 12750 detached, 13125 the actor host's self-heal; three
# actor hosts each) are among the working offsets below.
SIDE_BY_SIDE = (0, 11000, 11500, 12000, 12250, 12500)
TEST_OFFSETS = (
    *(11000, 11400, 11500, 11650, 11725, 11750, 11825, 11850),
    *(12000, 12250, 12500, 12625, 12750, 13000, 13125),
)
# Offsets engineers' test clusters use side by side while working on one tree.
WORKING_SIDE_BY_SIDE = (0, 11000, 12000, 12250, 12500, 12625, 12750, 13125)
# Linux's default ip_local_port_range: a client connection may get any of these as its
# local port, and then a server cannot bind it (CI failed once on exactly that).
EPHEMERAL = range(32768, 61000)


@pytest.mark.parametrize("dapr_run_offset", [11650, 11725, 11750, 11825, 11850])
def test_clusters_at_the_offsets_in_use_never_share_a_port(
    tmp_path: Path, dapr_run_offset: int
) -> None:
    owners: dict[int, int] = {}
    for offset in (*SIDE_BY_SIDE, dapr_run_offset):
        config = ClusterConfig(
            runtime_dir=tmp_path,
            state_dir=tmp_path / str(offset),
            port_offset=offset,
            actor_host_replicas=9,
            with_ops=True,
        )
        for proc in LocalCluster(config).processes.values():
            for port in proc.ports:
                assert owners.setdefault(port, offset) == offset, f"port {port}"


def test_working_clusters_side_by_side_never_share_a_port(tmp_path: Path) -> None:
    owners: dict[int, int] = {}
    for offset in WORKING_SIDE_BY_SIDE:
        config = ClusterConfig(
            runtime_dir=tmp_path,
            state_dir=tmp_path / str(offset),
            port_offset=offset,
            actor_host_replicas=9,
        )
        for proc in LocalCluster(config).processes.values():
            for port in proc.ports:
                assert owners.setdefault(port, offset) == offset, f"port {port}"


@pytest.mark.parametrize("offset", TEST_OFFSETS)
def test_no_test_cluster_port_lies_in_the_ephemeral_range(tmp_path: Path, offset: int) -> None:
    config = ClusterConfig(
        runtime_dir=tmp_path,
        state_dir=tmp_path,
        port_offset=offset,
        actor_host_replicas=9,
        with_ops=True,
    )
    processes = LocalCluster(config).processes
    ports = [p for proc in processes.values() for p in proc.ports]

    assert {"prometheus", "zipkin"} <= set(processes)
    assert [p for p in ports if p in EPHEMERAL] == []


def test_the_launcher_waits_for_the_routers_subscriptions_only_on_the_dapr_feed(
    tmp_path: Path,
) -> None:
    env = {"ORDERFLOW_RUNTIME_DIR": str(tmp_path), "ORDERFLOW_ROUTER_FEED": "dapr"}
    dapr = LocalCluster(ClusterConfig.from_env(env))
    default = LocalCluster(ClusterConfig.from_env({"ORDERFLOW_RUNTIME_DIR": str(tmp_path)}))

    assert dapr.app("actor-host-1").subscriptions == ROUTER_TOPICS
    assert dapr.processes["actor-host-2"].env["ORDERFLOW_ROUTER_FEED"] == "dapr"
    assert default.app("actor-host-1").subscriptions == ()
    assert default.processes["actor-host-1"].env["ORDERFLOW_ROUTER_FEED"] == "streams"


def test_one_actor_host_can_run_the_other_router_feed(tmp_path: Path) -> None:
    config = ClusterConfig(
        runtime_dir=tmp_path,
        state_dir=tmp_path / "state",
        app_env_by_name={"actor-host-2": {"ORDERFLOW_ROUTER_FEED": "dapr"}},
    )
    cluster = LocalCluster(config)

    assert cluster.app("actor-host-1").subscriptions == ()
    assert cluster.app("actor-host-2").subscriptions == ROUTER_TOPICS
    assert cluster.processes["actor-host-2"].env["ORDERFLOW_ROUTER_FEED"] == "dapr"


def test_the_router_topics_the_launcher_waits_for_are_the_routers() -> None:
    from actors.reactions import build_router

    assert tuple(f"pubsub/{topic}" for topic in build_router().topics) == ROUTER_TOPICS


def _http_protocol(argv: list[str]) -> str | None:
    return argv[argv.index("--http") + 1] if "--http" in argv else None


def test_every_app_is_served_with_one_write_per_answer_wherever_it_is_started(
    tmp_path: Path,
) -> None:
    """The launcher, `dapr run -f`'s run file and the compose file: the same protocol."""
    cluster = _cluster(tmp_path)
    launched = {
        name: _http_protocol(list(proc.argv))
        for name, proc in cluster.processes.items()
        if "uvicorn" in proc.argv
    }
    run_file: dict[str, Any] = yaml.safe_load((ROOT / "dapr" / "dapr.yaml").read_text())
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    elsewhere = [app["command"] for app in run_file["apps"]] + [
        service["command"]
        for service in compose["services"].values()
        if "uvicorn" in service.get("command", [])
    ]

    assert len(launched) >= 5
    assert set(launched.values()) == {HTTP_PROTOCOL}
    assert len(elsewhere) >= 10
    assert {_http_protocol(command) for command in elsewhere} == {HTTP_PROTOCOL}


def test_daprd_keeps_gos_own_gc_target_unless_asked_wherever_it_is_started(
    tmp_path: Path,
) -> None:
    """Go's default everywhere daprd starts (the launcher, compose, `make dapr-run`); a GOGC
    asked for with ORDERFLOW_DAPRD_GOGC reaches every sidecar and no Python app."""
    default = _cluster(tmp_path).processes
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    daprd_services = [
        service for service in compose["services"].values() if "daprd" in service.get("image", "")
    ]
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndapr-run:", 1)[1].split("\n\n", 1)[0]

    assert len(daprd_services) >= 5
    assert all("GOGC" not in p.env for p in default.values())
    assert all("GOGC" not in service.get("environment", {}) for service in daprd_services)
    assert "GOGC" not in recipe

    asked = ClusterConfig.from_env(
        {"ORDERFLOW_DAPRD_GOGC": " 400 ", "ORDERFLOW_STATE_DIR": str(tmp_path / "asked")}
    )
    processes = LocalCluster(asked).processes
    sidecars = [p for name, p in processes.items() if name.endswith("-daprd")]
    assert len(sidecars) >= 5
    assert {p.env["GOGC"] for p in sidecars} == {"400"}
    assert all(
        "GOGC" not in p.env for name, p in processes.items() if name in ("gateway", "projector")
    )


def test_every_go_process_runs_on_one_core_unless_asked(tmp_path: Path) -> None:
    """GOMAXPROCS 1 for daprd, placement and the scheduler by default (ORDERFLOW_GO_MAXPROCS);
    `auto` leaves Go its own choice; no Python app or Redis gets it."""
    default = _cluster(tmp_path).processes
    go = {name for name in default if name.endswith("-daprd")} | {"placement", "scheduler"}
    others = set(default) - go

    assert len(go) >= 7
    assert {default[name].env.get("GOMAXPROCS") for name in go} == {"1"}
    assert all("GOMAXPROCS" not in default[name].env for name in others)

    asked = ClusterConfig.from_env(
        {"ORDERFLOW_GO_MAXPROCS": " 2 ", "ORDERFLOW_STATE_DIR": str(tmp_path / "two")}
    )
    assert {LocalCluster(asked).processes[name].env.get("GOMAXPROCS") for name in go} == {"2"}
    auto = ClusterConfig.from_env(
        {"ORDERFLOW_GO_MAXPROCS": "Auto", "ORDERFLOW_STATE_DIR": str(tmp_path / "auto")}
    )
    assert all("GOMAXPROCS" not in p.env for p in LocalCluster(auto).processes.values())


def test_the_go_maxprocs_is_a_setting_with_a_clear_refusal() -> None:
    assert ClusterConfig.from_env({}).go_maxprocs == "1"
    assert ClusterConfig.from_env({"ORDERFLOW_GO_MAXPROCS": "04"}).go_maxprocs == "4"
    assert ClusterConfig.from_env({"ORDERFLOW_GO_MAXPROCS": "auto"}).go_maxprocs is None
    for bad in ("0", "-1", "all", "1.5", ""):
        with pytest.raises(ValueError, match="ORDERFLOW_GO_MAXPROCS"):
            ClusterConfig.from_env({"ORDERFLOW_GO_MAXPROCS": bad})


def test_the_daprd_gogc_is_a_setting_with_a_clear_refusal() -> None:
    assert ClusterConfig.from_env({}).daprd_gogc is None
    assert ClusterConfig.from_env({"ORDERFLOW_DAPRD_GOGC": "OFF"}).daprd_gogc == "off"
    assert ClusterConfig.from_env({"ORDERFLOW_DAPRD_GOGC": "200"}).daprd_gogc == "200"
    for bad in ("0", "-5", "fast", "1.5", ""):
        with pytest.raises(ValueError, match="ORDERFLOW_DAPRD_GOGC"):
            ClusterConfig.from_env({"ORDERFLOW_DAPRD_GOGC": bad})


def test_every_daprd_and_app_gets_the_clusters_two_tokens(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    tokens = cluster.tokens
    dapr_side = {n: p for n, p in cluster.processes.items() if n.endswith("-daprd")}
    apps = {
        n.removesuffix("-daprd"): cluster.processes[n.removesuffix("-daprd")] for n in dapr_side
    }

    assert len(dapr_side) == len(cluster.config.apps()) >= 6
    for proc in [*dapr_side.values(), *apps.values()]:
        assert proc.env["DAPR_API_TOKEN"] == tokens.dapr, proc.name
        assert proc.env["APP_API_TOKEN"] == tokens.app, proc.name
    for name in ("redis", "placement", "scheduler", "prometheus", "zipkin"):
        if name in cluster.processes:
            assert "DAPR_API_TOKEN" not in cluster.processes[name].env, name
    # kept in the state dir at once: any launcher over it (a restart, the detached
    # watchdog, `make tokens`, a test's view of a cluster `up --detach` starts) has them
    assert read_tokens(tmp_path / "state") == tokens
    assert _cluster(tmp_path).tokens == tokens
    assert _cluster(tmp_path / "elsewhere").tokens != tokens


def test_the_gateway_alone_reads_the_clusters_clients_file(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    keys = cluster.gateway_keys
    env = {name: proc.env for name, proc in cluster.processes.items()}

    assert env["gateway"]["ORDERFLOW_GATEWAY_CLIENTS"] == str(keys.clients_file)
    assert [n for n, e in env.items() if "ORDERFLOW_GATEWAY_CLIENTS" in e] == ["gateway"]
    # the console admits the operators of the same file (apps/console/auth.py)
    assert env["console"]["ORDERFLOW_CONSOLE_CLIENTS"] == str(keys.clients_file)
    assert [n for n, e in env.items() if "ORDERFLOW_CONSOLE_CLIENTS" in e] == ["console"]
    assert _cluster(tmp_path).gateway_keys == keys  # kept across launchers


def test_redis_requires_the_clusters_password_and_every_daprd_and_app_has_it(
    tmp_path: Path,
) -> None:
    cluster = _cluster(tmp_path)
    password = cluster.tokens.redis
    assert password
    cluster.write_files()
    conf = tmp_path / "state" / "redis.conf"

    assert f"requirepass {password}" in conf.read_text().splitlines()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # the password's file is the owner's
    for name, proc in cluster.processes.items():
        has = proc.env.get("ORDERFLOW_REDIS_PASSWORD")
        if name in ("redis", "placement", "scheduler", "prometheus", "zipkin", "watchdog"):
            assert has is None, name
        else:  # a daprd's components (the env secret store), an app's own connections
            assert has == password, name
