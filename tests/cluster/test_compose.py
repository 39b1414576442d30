"""docker-compose.yml stays consistent with the local cluster (checked without Docker)."""

from __future__ import annotations

import copy
import json

import yaml

from cluster.compose import compose_errors
from cluster.config import ROOT


def _doc() -> dict[str, object]:
    doc: dict[str, object] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_the_compose_file_passes_the_config_check() -> None:
    assert compose_errors(_doc()) == []


def test_a_sidecar_on_the_wrong_app_port_is_reported() -> None:
    doc = copy.deepcopy(_doc())
    services = doc["services"]
    assert isinstance(services, dict)
    cmd = services["gateway-dapr"]["command"]
    cmd[cmd.index("--app-port") + 1] = "9999"

    assert compose_errors(doc) == [
        "gateway-dapr: --app-port differs from the port gateway listens on"
    ]


def test_an_app_without_a_sidecar_is_reported() -> None:
    doc = copy.deepcopy(_doc())
    services = doc["services"]
    assert isinstance(services, dict)
    del services["actor-host-dapr"]

    assert "actor-host: no sidecar service actor-host-dapr" in compose_errors(doc)


def test_a_missing_shipping_partner_is_reported() -> None:
    doc = copy.deepcopy(_doc())
    services = doc["services"]
    assert isinstance(services, dict)
    del services["shipping"], services["shipping-dapr"]

    assert "missing app service shipping" in compose_errors(doc)


def test_a_missing_ops_console_is_reported() -> None:
    doc = copy.deepcopy(_doc())
    services = doc["services"]
    assert isinstance(services, dict)
    del services["console"], services["console-dapr"]

    assert "missing app service console" in compose_errors(doc)


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
