"""Composition root of the ops console: cluster, orders, dead letters (redrive), plots.

Operators only, with the clients file's operator keys (apps/console/auth.py); the launcher
binds it to loopback too. It reads; the one write is a redrive, a publish through its own
sidecar.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from actors.catalog import PUBSUB
from actors.order.saga import ORDER
from actors.toolkit import lifecycle, logs
from actors.toolkit.apitoken import (
    AppTokenGuard,
    app_api_token_from_env,
    dapr_api_token_from_env,
)
from actors.toolkit.client import ActorClient, TypedClient
from actors.toolkit.clientkeys import ClientsFileWatch
from actors.toolkit.metrics import mount_metrics, new_registry
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.redis_connection import (
    DEFAULT_REDIS_HOST,
    redis_client,
    redis_host_from_env,
    redis_password_from_env,
)
from actors.toolkit.sidecar import SidecarHTTP, SidecarTransport
from apps.console import api, auth, pages
from apps.console.cluster import ClusterProbe
from apps.console.deadletters import DEFAULT_PREFIX, LetterStore, Redriver
from apps.console.deps import Console
from apps.console.plots import Plotter
from apps.console.targets import Targets
from readmodels.keys import DEFAULT_BASE, Layout, prefix_from_env
from readmodels.queries import ReadModels

STATIC = Path(__file__).parent / "static"
UPLOT_DIST = Path("node_modules") / "uplot" / "dist"


@dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3800
    redis_host: str = DEFAULT_REDIS_HOST  # the read models and the console's own keys
    redis_password: str | None = None  # ORDERFLOW_REDIS_PASSWORD (actors.toolkit.redis_connection)
    read_model_prefix: str = DEFAULT_BASE
    prefix: str = DEFAULT_PREFIX  # the console's keys (dead letters)
    stuck_after_s: float = 60.0
    vendor_dir: Path | None = None  # where `make console-deps` put uPlot (npm prefix)
    targets: Targets = field(default_factory=Targets)
    # DAPR_API_TOKEN: its calls to its own daprd and its probes of every sidecar's metadata
    dapr_api_token: str | None = None
    app_api_token: str | None = None  # APP_API_TOKEN: what its daprd's calls carry
    # who may use it (apps/console/auth.py); None: anyone who reaches the port
    clients_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        runtime = Path(env.get("ORDERFLOW_RUNTIME_DIR", Path(__file__).parents[2] / ".runtime"))
        return cls(
            dapr_http_port=int(env.get("DAPR_HTTP_PORT", "3800")),
            redis_host=redis_host_from_env(env),
            redis_password=redis_password_from_env(env),
            read_model_prefix=prefix_from_env(env),
            stuck_after_s=float(env.get("ORDERFLOW_CONSOLE_STUCK_AFTER_S", "60")),
            vendor_dir=Path(env.get("ORDERFLOW_CONSOLE_VENDOR_DIR", runtime / "console")),
            targets=Targets.from_env(env),
            dapr_api_token=dapr_api_token_from_env(env),
            app_api_token=app_api_token_from_env(env),
            clients_file=Path(env[auth.CLIENTS_ENV]) if env.get(auth.CLIENTS_ENV) else None,
        )


def create_app(
    settings: Settings | None = None,
    *,
    sidecar: SidecarTransport | None = None,
    redis: Redis | None = None,
    http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The console; `sidecar`, `redis`, `http` (the probes' client) replace what settings
    would build (tests), and their callers close them."""
    logs.configure(app="console")
    resolved = settings or Settings.from_env()
    uplot = resolved.vendor_dir / UPLOT_DIST if resolved.vendor_dir else None
    vendor = uplot if uplot is not None and (uplot / "uPlot.iife.min.js").is_file() else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            transport: SidecarTransport
            if sidecar is None:
                port = resolved.dapr_http_port
                own = SidecarHTTP(port, max_connections=16, api_token=resolved.dapr_api_token)
                transport = await stack.enter_async_context(own)
            else:
                transport = sidecar
            client = redis
            if client is None:
                client = redis_client(resolved.redis_host, password=resolved.redis_password)
                stack.push_async_callback(client.aclose)
            probes = http if http is not None else httpx.AsyncClient()
            if http is None:
                stack.push_async_callback(probes.aclose)
            letters = LetterStore(client, prefix=resolved.prefix)
            app.state.console = Console(
                targets=resolved.targets,
                letters=letters,
                redriver=Redriver(letters, SidecarPublisher(transport, pubsub=PUBSUB)),
                probe=ClusterProbe(
                    probes, resolved.targets, client, sidecar_token=resolved.dapr_api_token
                ),
                plotter=Plotter(probes, resolved.targets.prometheus),
                readmodels=ReadModels(client, layout=Layout(resolved.read_model_prefix)),
                orders=TypedClient(ActorClient(transport), ORDER),
                stuck_after=dt.timedelta(seconds=resolved.stuck_after_s),
                vendor_dir=vendor,
            )
            stack.callback(delattr, app.state, "console")
            lifecycle.app_started()  # the heap frozen, uvicorn's tick slowed
            yield

    app = FastAPI(title="Orderflow ops console", lifespan=lifespan, docs_url="/api/docs")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if vendor is not None:
        app.mount("/vendor/uplot", StaticFiles(directory=vendor), name="uplot")
    app.include_router(api.router)
    app.include_router(pages.router)
    mount_metrics(app, new_registry())  # Prometheus scrapes every app (job "app")
    # the pages and the API: operators only
    if resolved.clients_file is not None:
        clients = auth.load_clients(resolved.clients_file)  # a bad file stops the start
        watch = ClientsFileWatch(resolved.clients_file, setting=auth.CLIENTS_ENV)
        app.add_middleware(auth.OperatorGuard, clients=clients, watch=watch)
    else:
        logging.getLogger("orderflow.console").warning(
            "the console is open to anyone who reaches its port: %s is not set "
            "(apps/console/auth.py)",
            auth.CLIENTS_ENV,
        )
    # daprd's calls (the dead-letter subscription): its app token
    app.add_middleware(AppTokenGuard, token=resolved.app_api_token)

    @app.get("/healthz/app", tags=["ops"])
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    return app
