"""What the console watches: every app with its sidecar, and the infrastructure, by address.

The launcher hands the layout over as JSON in ORDERFLOW_CONSOLE_TARGETS (docker-compose
names its services there); the console never imports the launcher.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

TARGETS_ENV = "ORDERFLOW_CONSOLE_TARGETS"


class AppTarget(BaseModel):
    """One app process and its daprd."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str  # process name, e.g. "actor-host-1"
    app_id: str
    host: str = "127.0.0.1"
    app_port: int
    http_port: int  # its daprd's HTTP API
    metrics_port: int  # its daprd's metrics
    actor_types: tuple[str, ...] = ()

    @property
    def app_url(self) -> str:
        return f"http://{self.host}:{self.app_port}"

    @property
    def sidecar_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def app_metrics_url(self) -> str:
        return f"{self.app_url}/metrics"

    @property
    def sidecar_metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"


class Targets(BaseModel):
    """The cluster as the console sees it (base URLs without a trailing slash)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    apps: tuple[AppTarget, ...] = ()
    redis: str = "127.0.0.1:6380"
    placement: str = "http://127.0.0.1:50105"  # its health port: /healthz, /placement/state
    scheduler: str = "http://127.0.0.1:50106"  # its health port
    prometheus: str = "http://127.0.0.1:9480"  # cluster.config.PROMETHEUS_BASE_PORT
    zipkin: str = "http://127.0.0.1:9411"
    dapr_config: str = ""  # the Configuration file every daprd runs with (a path), if known

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Targets:
        env = os.environ if env is None else env
        raw = env.get(TARGETS_ENV)
        return cls.model_validate_json(raw) if raw else cls()

    def trace_url(self, trace_id: str) -> str:
        return f"{self.zipkin}/zipkin/traces/{trace_id}"
