"""A config check of docker-compose.yml, for machines without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cluster.config import DAPR_VERSION, ROOT

INFRA = ("redis", "placement", "scheduler")
OPS = ("prometheus", "zipkin")  # required; the Dapr dashboard (profile "dashboard") is optional
NOT_APPS = (*INFRA, *OPS, "dashboard")
# what starts a sidecar again once it exits: the actor host's self-heal shuts a wedged
# one down (actors/toolkit/sidecarprobe.py), and a crashed one must come back too
RESTARTS = ("unless-stopped", "always")
# Dapr's two tokens (actors/toolkit/apitoken.py) and Redis's password: the variable every
# daprd and every app gets, and the compose variable it comes from, required
# (`${NAME:?how to make one}`): compose refuses to start without it, and no secret is
# written in the file.
TOKENS = {
    "DAPR_API_TOKEN": "ORDERFLOW_DAPR_API_TOKEN",
    "APP_API_TOKEN": "ORDERFLOW_APP_API_TOKEN",
    "ORDERFLOW_REDIS_PASSWORD": "ORDERFLOW_REDIS_PASSWORD",
}
REQUIRED = re.compile(r"\$\{(?P<name>\w+):\?[^}]+\}")  # a whole value ${NAME:?message}
# The clients file (actors/toolkit/clientkeys.py): the variable each app that reads it
# takes its path from (the gateway: apps/gateway/auth.py; the console, its operators:
# apps/console/auth.py), and the required compose variable naming the host file bound
# there (a bind mount of a file that is not there would make Docker create a directory in
# its place).
CLIENTS_READERS = {
    "gateway": ("ORDERFLOW_GATEWAY_CLIENTS", "the API is open to anyone"),
    "console": ("ORDERFLOW_CONSOLE_CLIENTS", "the console is open to anyone"),
}
CLIENTS_SOURCE = "ORDERFLOW_GATEWAY_CLIENTS_FILE"


def _flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, given as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    pairs = (str(item).partition("=") for item in env)
    return {key: value for key, _, value in pairs}


def _check_tokens(name: str, service: dict[str, Any]) -> list[str]:
    """Both tokens, each from its required compose variable (TOKENS)."""
    env = _environment(service)
    errors = []
    for variable, source in TOKENS.items():
        required = REQUIRED.fullmatch(env.get(variable, ""))
        if variable not in env:
            errors.append(
                f"{name}: no {variable} (every daprd and app needs it: ${{{source}:?...}})"
            )
        elif required is None or required["name"] != source:
            errors.append(
                f"{name}: {variable} must be ${{{source}:?<how to make one>}}, a required "
                "variable (no default, no token written in)"
            )
    return errors


def _check_sidecar(name: str, app: dict[str, Any], sidecar: dict[str, Any] | None) -> list[str]:
    if sidecar is None:
        return [f"{name}: no sidecar service {name}-dapr"]
    errors = _check_tokens(f"{name}-dapr", sidecar)
    if sidecar.get("network_mode") != f"service:{name}":
        errors.append(f"{name}-dapr: network_mode must be service:{name}")
    if sidecar.get("image") != f"daprio/daprd:{DAPR_VERSION}":
        errors.append(
            f"{name}-dapr: image must be daprio/daprd:{DAPR_VERSION} (the pinned runtime)"
        )
    cmd = [str(c) for c in sidecar.get("command", [])]
    if _flag(cmd, "--app-port") != _flag([str(c) for c in app.get("command", [])], "--port"):
        errors.append(f"{name}-dapr: --app-port differs from the port {name} listens on")
    if _flag(cmd, "--app-id") is None or _flag(cmd, "--scheduler-host-address") is None:
        errors.append(f"{name}-dapr: needs --app-id and --scheduler-host-address")
    if sidecar.get("restart") not in RESTARTS:
        errors.append(f"{name}-dapr: needs a restart policy ({' or '.join(RESTARTS)})")
    for volume in sidecar.get("volumes", []):
        source = str(volume).split(":", 1)[0]
        if source.startswith(".") and not (ROOT / source).exists():
            errors.append(f"{name}-dapr: mounts {source}, which does not exist")
    return errors


def compose_errors(doc: dict[str, Any]) -> list[str]:
    services: dict[str, Any] = doc.get("services") or {}
    errors = [f"missing service {svc}" for svc in INFRA if svc not in services]
    errors += [f"missing service {svc}" for svc in OPS if svc not in services]
    apps = [n for n, s in services.items() if n not in NOT_APPS and not n.endswith("-dapr")]
    for name in ("actor-host", "gateway", "projector", "shipping", "console"):
        if name not in apps:
            errors.append(f"missing app service {name}")
    for name in apps:
        errors += _check_tokens(name, services[name])
        errors += _check_sidecar(name, services[name], services.get(f"{name}-dapr"))
        if services[name].get("build") and not (ROOT / "Dockerfile").exists():
            errors.append(f"{name}: builds from ., but there is no Dockerfile")
    for name in CLIENTS_READERS:
        if name in services:
            errors += _check_clients(name, services[name])
    if "redis" in services:
        errors += _check_redis(services["redis"])
    heal = ((services.get("actor-host") or {}).get("environment") or {}).get(
        "ORDERFLOW_SIDECAR_SELF_HEAL_S", "0"
    )
    if "actor-host" in services and float(heal) == 0:
        errors.append("actor-host: ORDERFLOW_SIDECAR_SELF_HEAL_S must be set (no watchdog here)")
    if "prometheus" in services:
        errors += _check_prometheus(services["prometheus"], {a: services[a] for a in apps})
    return errors


def _check_redis(redis: dict[str, Any]) -> list[str]:
    """Redis asks for the password every daprd and app is given (requirepass from the
    required ORDERFLOW_REDIS_PASSWORD), with AOF on and `appendfsync always`."""
    errors = []
    source = TOKENS["ORDERFLOW_REDIS_PASSWORD"]
    required = REQUIRED.fullmatch(_environment(redis).get("ORDERFLOW_REDIS_PASSWORD", ""))
    if required is None or required["name"] != source:
        errors.append(f"redis: ORDERFLOW_REDIS_PASSWORD must be ${{{source}:?...}}")
    command = " ".join(str(part) for part in redis.get("command") or [])
    if "requirepass $$ORDERFLOW_REDIS_PASSWORD" not in command:
        errors.append("redis: its command must set requirepass $$ORDERFLOW_REDIS_PASSWORD")
    if "--appendfsync always" not in command or "--appendonly yes" not in command:
        errors.append("redis: needs --appendonly yes --appendfsync always (durability)")
    return errors


def _bind(volume: object) -> tuple[str, str, bool]:
    """(source, target, read-only) of a service's volume, in the short or long syntax."""
    if isinstance(volume, dict):
        source, target = str(volume.get("source", "")), str(volume.get("target", ""))
        return source, target, volume.get("read_only") is True
    text = str(volume)
    # a ${NAME:?message} source holds colons of its own
    cut = text.index("}") + 1 if text.startswith("${") and "}" in text else text.find(":")
    source, rest = text[:cut], text[cut:].removeprefix(":")
    target, _, mode = rest.partition(":")
    return source, target, "ro" in mode.split(",")


def _check_clients(name: str, service: dict[str, Any]) -> list[str]:
    """The gateway and the console read the clients file, bound read-only from the
    required variable: without it, anyone who reaches the port may call every route."""
    variable, open_to = CLIENTS_READERS[name]
    source = CLIENTS_SOURCE
    how = f"${{{source}:?<how to make it: python -m apps.gateway.auth add ...>}}"
    path = _environment(service).get(variable)
    if not path:
        return [f"{name}: no {variable} (without it {open_to}): bind {how}"]
    binds = [_bind(v) for v in service.get("volumes") or []]
    found = [(src, read_only) for src, target, read_only in binds if target == path]
    if not found:
        return [f"{name}: {variable} is {path}, but nothing is mounted there: bind {how}"]
    errors = []
    (src, read_only), *_ = found
    required = REQUIRED.fullmatch(src)
    if required is None or required["name"] != source:
        errors.append(
            f"{name}: the clients file at {path} must come from {how}, a required variable "
            "(a missing file would be mounted as a new directory)"
        )
    if not read_only:
        errors.append(f"{name}: mount the clients file at {path} read-only")
    return errors


def _mounted(service: dict[str, Any], target: str) -> Path | None:
    """The local file a service mounts at `target`, if it exists."""
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target and (ROOT / source).is_file():
            return ROOT / source
    return None


def _check_prometheus(prometheus: dict[str, Any], apps: dict[str, Any]) -> list[str]:
    """Prometheus's config scrapes every app's daprd (:9090) and every app's /metrics."""
    path = _mounted(prometheus, "/etc/prometheus/prometheus.yml")
    if path is None or _mounted(prometheus, "/etc/prometheus/alerts.yml") is None:
        return ["prometheus: must mount its config and the alert rules (files that exist)"]
    jobs = {j["job_name"]: j for j in yaml.safe_load(path.read_text())["scrape_configs"]}
    scraped = {
        (job, target)
        for job, j in jobs.items()
        for static in j.get("static_configs", [])
        for target in static["targets"]
    }
    errors = []
    for name, app in apps.items():
        port = _flag([str(c) for c in app.get("command", [])], "--port")
        if ("daprd", f"{name}:9090") not in scraped:
            errors.append(f"prometheus: job daprd does not scrape {name}:9090")
        if ("app", f"{name}:{port}") not in scraped:
            errors.append(f"prometheus: job app does not scrape {name}:{port}")
    return errors


def check_compose(path: Path) -> int:
    doc = yaml.safe_load(path.read_text())
    errors = compose_errors(doc)
    for error in errors:
        print(f"{path}: {error}")
    if not errors:
        print(f"{path}: OK ({len(doc['services'])} services, daprd {DAPR_VERSION})")
    return 1 if errors else 0
