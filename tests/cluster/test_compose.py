"""docker-compose.yml stays consistent with the local cluster (checked without Docker)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import ops
from cluster.compose import CLIENTS_READERS, CLIENTS_SOURCE, TOKENS, compose_errors
from cluster.config import ROOT


def _doc() -> dict[str, object]:
    doc: dict[str, object] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def _doc_and_services() -> tuple[dict[str, object], dict[str, Any]]:
    """A fresh copy of the compose file to break, and its services."""
    doc = copy.deepcopy(_doc())
    services = doc["services"]
    assert isinstance(services, dict)
    return doc, services


def test_the_compose_file_passes_the_config_check() -> None:
    assert compose_errors(_doc()) == []


def test_a_sidecar_on_the_wrong_app_port_is_reported() -> None:
    doc, services = _doc_and_services()
    cmd = services["gateway-dapr"]["command"]
    cmd[cmd.index("--app-port") + 1] = "9999"

    assert compose_errors(doc) == [
        "gateway-dapr: --app-port differs from the port gateway listens on"
    ]


def test_a_sidecar_without_a_restart_policy_is_reported() -> None:
    """The actor host shuts a wedged sidecar down for the restart policy to start again."""
    doc, services = _doc_and_services()
    del services["actor-host-dapr"]["restart"]

    assert compose_errors(doc) == [
        "actor-host-dapr: needs a restart policy (unless-stopped or always)"
    ]


def test_the_actor_host_heals_its_sidecar_in_compose_and_nowhere_is_it_left_out() -> None:
    doc, services = _doc_and_services()
    assert float(services["actor-host"]["environment"]["ORDERFLOW_SIDECAR_SELF_HEAL_S"]) > 0
    services["actor-host"]["environment"] = {
        k: v
        for k, v in services["actor-host"]["environment"].items()
        if k != "ORDERFLOW_SIDECAR_SELF_HEAL_S"
    }

    assert compose_errors(doc) == [
        "actor-host: ORDERFLOW_SIDECAR_SELF_HEAL_S must be set (no watchdog here)"
    ]


def test_the_consoles_targets_in_compose_are_valid_json_naming_every_app() -> None:
    services = _doc()["services"]
    assert isinstance(services, dict)
    targets = json.loads(services["console"]["environment"]["ORDERFLOW_CONSOLE_TARGETS"])

    assert {a["name"] for a in targets["apps"]} == {
        "actor-host",
        "gateway",
        "shipping",
        "projector",
        "console",
    }


@pytest.mark.parametrize(
    ("removed", "error"),
    [
        (("actor-host-dapr",), "actor-host: no sidecar service actor-host-dapr"),
        (("shipping", "shipping-dapr"), "missing app service shipping"),
        (("console", "console-dapr"), "missing app service console"),
        (("prometheus",), "missing service prometheus"),
        (("zipkin",), "missing service zipkin"),
    ],
    ids=["an app without a sidecar", "shipping", "ops console", "prometheus", "zipkin"],
)
def test_a_missing_service_is_reported(removed: tuple[str, ...], error: str) -> None:
    doc, services = _doc_and_services()
    for name in removed:
        del services[name]

    assert error in compose_errors(doc)


def test_an_app_that_prometheus_does_not_scrape_is_reported(tmp_path: Path) -> None:
    doc, services = _doc_and_services()
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        job["static_configs"] = [
            s for s in job["static_configs"] if not s["targets"][0].startswith("shipping:")
        ]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    services["prometheus"]["volumes"][0] = f"{path}:/etc/prometheus/prometheus.yml:ro"

    assert compose_errors(doc) == [
        "prometheus: job daprd does not scrape shipping:9090",
        "prometheus: job app does not scrape shipping:8200",
    ]


def test_the_dashboard_is_optional_and_not_taken_for_an_app() -> None:
    doc, services = _doc_and_services()
    assert services["dashboard"]["profiles"] == ["dashboard"]
    del services["dashboard"]

    assert compose_errors(doc) == []


def test_every_compose_sidecar_exports_to_the_zipkin_service() -> None:
    services = _doc()["services"]
    assert isinstance(services, dict)
    mounted = {
        str(v).split(":")[0]
        for name, svc in services.items()
        if name.endswith("-dapr")
        for v in svc.get("volumes", [])
        if str(v).split(":")[1] == "/config/config.yaml"
    }

    assert mounted == {"./deploy/compose/dapr/config.yaml"}
    assert (ROOT / "deploy" / "compose" / "dapr" / "config.yaml").read_text() == (
        ops.compose_dapr_config()
    ), "deploy/compose/dapr/config.yaml is stale: write cluster.ops.compose_dapr_config() there"


def test_promtool_accepts_the_compose_prometheus_config_with_the_alert_rules(
    tmp_path: Path,
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make ops-tools` (make test does)")
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / "alerts.yml")]  # its mount
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))

    check = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )

    assert check.returncode == 0, check.stdout + check.stderr


def _sidecars_and_apps(services: dict[str, Any]) -> list[str]:
    return [n for n in services if n.endswith("-dapr") or f"{n}-dapr" in services]


def test_every_sidecar_and_app_takes_both_tokens_from_required_compose_variables() -> None:
    """One Dapr API token and one app token for every daprd and every app, from .env:
    `${NAME:?message}` makes compose refuse to start without them."""
    services = _doc()["services"]
    assert isinstance(services, dict)
    names = _sidecars_and_apps(services)

    assert len(names) == 10
    for name in names:
        env = services[name]["environment"]
        for variable, source in TOKENS.items():
            assert env[variable].startswith(f"${{{source}:?"), (name, variable)
            assert "openssl rand -hex 32" in env[variable], (name, variable)
    assert compose_errors(_doc()) == []


def test_a_token_given_as_a_list_entry_is_found() -> None:
    doc, services = _doc_and_services()
    services["gateway"]["environment"] = [
        f"{k}={v}" for k, v in services["gateway"]["environment"].items()
    ]

    assert compose_errors(doc) == []


@pytest.mark.parametrize(
    ("service", "variable", "value", "error"),
    [
        (
            "console",  # it has its own environment, not the apps' anchor
            "APP_API_TOKEN",
            None,
            "console: no APP_API_TOKEN (every daprd and app needs it: "
            "${ORDERFLOW_APP_API_TOKEN:?...})",
        ),
        (
            "gateway-dapr",
            "DAPR_API_TOKEN",
            None,
            "gateway-dapr: no DAPR_API_TOKEN (every daprd and app needs it: "
            "${ORDERFLOW_DAPR_API_TOKEN:?...})",
        ),
        (
            "actor-host",
            "DAPR_API_TOKEN",
            "${ORDERFLOW_DAPR_API_TOKEN:-changeme}",
            "actor-host: DAPR_API_TOKEN must be ${ORDERFLOW_DAPR_API_TOKEN:?<how to make one>}, "
            "a required variable (no default, no token written in)",
        ),
        (
            "shipping-dapr",
            "APP_API_TOKEN",
            "3f1c0ffee",
            "shipping-dapr: APP_API_TOKEN must be ${ORDERFLOW_APP_API_TOKEN:?<how to make one>}, "
            "a required variable (no default, no token written in)",
        ),
        (
            "projector",
            "APP_API_TOKEN",
            "${ORDERFLOW_DAPR_API_TOKEN:?set it}",
            "projector: APP_API_TOKEN must be ${ORDERFLOW_APP_API_TOKEN:?<how to make one>}, "
            "a required variable (no default, no token written in)",
        ),
    ],
    ids=["app without", "sidecar without", "a default", "written in", "the other variable"],
)
def test_a_service_without_its_token_from_the_required_variable_is_reported(
    service: str, variable: str, value: str | None, error: str
) -> None:
    doc, services = _doc_and_services()
    env = services[service]["environment"] = dict(services[service]["environment"])
    if value is None:
        del env[variable]
    else:
        env[variable] = value

    assert compose_errors(doc) == [error]


def test_the_env_example_names_every_required_variable_and_holds_no_value() -> None:
    text = (ROOT / "deploy" / "compose" / "env.example").read_text()
    lines = text.splitlines()
    entries = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    assert entries == dict.fromkeys([*TOKENS.values(), CLIENTS_SOURCE], "")
    assert "-m apps.gateway.auth add --file deploy/compose/gateway-clients.json" in text


def test_redis_asks_for_the_password_every_daprd_and_app_is_given() -> None:
    services = _doc()["services"]
    assert isinstance(services, dict)
    redis = services["redis"]
    script = redis["command"][-1]

    assert redis["environment"]["ORDERFLOW_REDIS_PASSWORD"].startswith(
        "${ORDERFLOW_REDIS_PASSWORD:?"
    )
    assert "requirepass $$ORDERFLOW_REDIS_PASSWORD" in script  # compose's $$: sh expands it
    assert "--appendfsync always" in script
    assert "requirepass" not in " ".join(redis["command"][:-1])  # not an argument of its own


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (
            lambda r: r["environment"].pop("ORDERFLOW_REDIS_PASSWORD"),
            "redis: ORDERFLOW_REDIS_PASSWORD must be ${ORDERFLOW_REDIS_PASSWORD:?...}",
        ),
        (
            lambda r: r.update(
                command=["redis-server", "--appendonly", "yes", "--appendfsync", "always"]
            ),
            "redis: its command must set requirepass $$ORDERFLOW_REDIS_PASSWORD",
        ),
        (
            lambda r: r["command"].__setitem__(
                -1, r["command"][-1].replace("--appendfsync always", "--appendfsync everysec")
            ),
            "redis: needs --appendonly yes --appendfsync always (durability)",
        ),
    ],
    ids=["no password variable", "no requirepass", "fsync everysec"],
)
def test_a_redis_without_the_password_or_fsync_is_reported(
    edit: Callable[[dict[str, Any]], object], error: str
) -> None:
    doc, services = _doc_and_services()
    edit(services["redis"])

    assert compose_errors(doc) == [error]


def test_an_app_without_the_redis_password_is_reported() -> None:
    doc, services = _doc_and_services()
    env = services["projector"]["environment"] = dict(services["projector"]["environment"])
    del env["ORDERFLOW_REDIS_PASSWORD"]

    assert compose_errors(doc) == [
        "projector: no ORDERFLOW_REDIS_PASSWORD (every daprd and app needs it: "
        "${ORDERFLOW_REDIS_PASSWORD:?...})"
    ]


# ORDERFLOW_GATEWAY_CLIENTS and ORDERFLOW_CONSOLE_CLIENTS in compose
CLIENTS_PATH = "/run/orderflow/gateway-clients.json"


@pytest.mark.parametrize("name", sorted(CLIENTS_READERS))
def test_the_gateway_and_the_console_read_the_clients_file_from_a_required_read_only_bind(
    name: str,
) -> None:
    """Compose refuses to start without ORDERFLOW_GATEWAY_CLIENTS_FILE (its message says
    how to make the file), and a wrong path is an error, not a directory made there. The
    console admits the operators of the same file."""
    services = _doc()["services"]
    assert isinstance(services, dict)
    service = services[name]
    (volume,) = service["volumes"]
    variable, _ = CLIENTS_READERS[name]

    assert service["environment"][variable] == CLIENTS_PATH
    assert volume["type"] == "bind"
    assert volume["target"] == CLIENTS_PATH
    assert volume["read_only"] is True
    assert volume["bind"]["create_host_path"] is False
    assert volume["source"].startswith(f"${{{CLIENTS_SOURCE}:?")
    assert "apps.gateway.auth add --file deploy/compose/gateway-clients.json" in volume["source"]
    # the gateway keeps every other variable of the apps' anchor
    gateway = services["gateway"]
    assert gateway["environment"].items() > services["shipping"]["environment"].items()
    for other, service in services.items():
        if other not in CLIENTS_READERS:
            for reads, _ in CLIENTS_READERS.values():
                assert reads not in (service.get("environment") or {}), other


def test_git_ignores_the_compose_clients_file() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()

    assert "deploy/compose/gateway-clients.json" in ignored


def test_a_clients_file_given_in_the_short_syntax_is_found() -> None:
    doc, services = _doc_and_services()
    (volume,) = services["gateway"]["volumes"]
    services["gateway"]["volumes"] = [f"{volume['source']}:{CLIENTS_PATH}:ro"]

    assert compose_errors(doc) == []


HOW = "${ORDERFLOW_GATEWAY_CLIENTS_FILE:?<how to make it: python -m apps.gateway.auth add ...>}"


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (
            lambda g: g["environment"].pop("ORDERFLOW_GATEWAY_CLIENTS"),
            "gateway: no ORDERFLOW_GATEWAY_CLIENTS (without it the API is open to anyone): "
            f"bind {HOW}",
        ),
        (
            lambda g: g.pop("volumes"),
            f"gateway: ORDERFLOW_GATEWAY_CLIENTS is {CLIENTS_PATH}, but nothing is mounted "
            f"there: bind {HOW}",
        ),
        (
            lambda g: g["volumes"][0].update(target="/run/orderflow/clients.json"),
            f"gateway: ORDERFLOW_GATEWAY_CLIENTS is {CLIENTS_PATH}, but nothing is mounted "
            f"there: bind {HOW}",
        ),
        (
            lambda g: g["volumes"][0].update(source="./deploy/compose/gateway-clients.json"),
            f"gateway: the clients file at {CLIENTS_PATH} must come from {HOW}, a required "
            "variable (a missing file would be mounted as a new directory)",
        ),
        (
            lambda g: g["volumes"][0].update(
                source="${ORDERFLOW_GATEWAY_CLIENTS_FILE:-./deploy/compose/gateway-clients.json}"
            ),
            f"gateway: the clients file at {CLIENTS_PATH} must come from {HOW}, a required "
            "variable (a missing file would be mounted as a new directory)",
        ),
        (
            lambda g: g["volumes"][0].pop("read_only"),
            f"gateway: mount the clients file at {CLIENTS_PATH} read-only",
        ),
        (
            lambda g: g.update(volumes=[f"${{ORDERFLOW_GATEWAY_CLIENTS_FILE:?x}}:{CLIENTS_PATH}"]),
            f"gateway: mount the clients file at {CLIENTS_PATH} read-only",
        ),
    ],
    ids=[
        "no variable",
        "no mount",
        "mounted elsewhere",
        "a fixed path",
        "a default",
        "writable",
        "writable short syntax",
    ],
)
def test_a_gateway_without_its_clients_file_from_the_required_variable_is_reported(
    edit: Callable[[dict[str, Any]], object], error: str
) -> None:
    doc, services = _doc_and_services()
    gateway = services["gateway"]
    gateway["environment"] = dict(gateway["environment"])
    edit(gateway)

    assert compose_errors(doc) == [error]


def test_a_console_without_the_clients_file_is_reported() -> None:
    doc, services = _doc_and_services()
    console = services["console"]
    console["environment"] = dict(console["environment"])
    console["environment"].pop("ORDERFLOW_CONSOLE_CLIENTS")
    console["volumes"][0].pop("read_only")

    assert compose_errors(doc) == [
        "console: no ORDERFLOW_CONSOLE_CLIENTS (without it the console is open to anyone): "
        f"bind {HOW}"
    ]
    console["environment"]["ORDERFLOW_CONSOLE_CLIENTS"] = CLIENTS_PATH
    assert compose_errors(doc) == [f"console: mount the clients file at {CLIENTS_PATH} read-only"]
