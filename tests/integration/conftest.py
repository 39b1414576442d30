"""A real local cluster (Redis, placement, scheduler, daprd per app) for the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from cluster.config import ClusterConfig
from cluster.local import LocalCluster

# Far from the defaults, so `make test` runs beside a `make run` cluster.
TEST_PORT_OFFSET = int(os.environ.get("ORDERFLOW_TEST_PORT_OFFSET", "11000"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def cluster_config(
    state_dir: Path,
    *,
    port_offset: int,
    step_timeout_s: int,
    shipping_timeout_s: int,
    with_ops: bool = False,
) -> ClusterConfig:
    """A cluster of two actor hosts with test faults on and the given saga deadlines
    (with Prometheus and Zipkin when `with_ops`)."""
    return ClusterConfig(
        runtime_dir=ClusterConfig.from_env().runtime_dir,
        state_dir=state_dir,
        port_offset=port_offset,
        actor_host_replicas=2,
        with_ops=with_ops,
        extra_app_env={
            "ORDERFLOW_TEST_FAULTS": "1",  # lets a test crash a host mid-command
            "ORDERFLOW_ORDER_STEP_TIMEOUT_S": str(step_timeout_s),
            "ORDERFLOW_SHIPPING_TIMEOUT_S": str(shipping_timeout_s),
        },
        # actor-host-1 publishes within its appends (the default), actor-host-2 through
        # its sidecar after them: every test runs both paths against real daprd, mixed as
        # in a rolling change of ORDERFLOW_PUBLISH (test_publish_paths.py checks both).
        # Likewise the router: actor-host-1 reads the streams itself (the default),
        # actor-host-2's daprd delivers through subscriptions, in the same consumer group
        app_env_by_name={
            "actor-host-2": {"ORDERFLOW_PUBLISH": "sidecar", "ORDERFLOW_ROUTER_FEED": "dapr"}
        },
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    config = cluster_config(
        Path(tmp_path_factory.mktemp("cluster")),
        port_offset=TEST_PORT_OFFSET,
        step_timeout_s=30,
        shipping_timeout_s=8,  # the silent-partner test waits for it
        with_ops=True,  # Prometheus and Zipkin (tests/integration/test_observability.py)
    )
    local = LocalCluster(config)
    with local.running():
        yield local


@pytest.fixture(autouse=True)
def _fail_fast_on_dead_process(request: pytest.FixtureRequest) -> None:
    """Before each integration test: every cluster process must still be alive."""
    if "cluster" in request.fixturenames:
        cluster: LocalCluster = request.getfixturevalue("cluster")
        for proc in cluster.processes.values():
            proc.check_alive()


@pytest.fixture(scope="session")
def gateway_sidecar(cluster: LocalCluster) -> Iterator[httpx.Client]:
    """The gateway's daprd: actor calls are placement-routed to the actor hosts."""
    with httpx.Client(
        base_url=f"http://127.0.0.1:{cluster.app('gateway').http_port}",
        timeout=30,
        headers=cluster.tokens.sidecar_headers,  # the cluster's DAPR_API_TOKEN
    ) as c:
        yield c


@pytest.fixture(scope="session")
def sidecar_of(cluster: LocalCluster) -> Iterator[Callable[[str], httpx.Client]]:
    """The daprd of an app process by name ("shipping", "actor-host-1"...): an event is
    published through the app id the pub/sub component grants its topic to (the partner's
    shipments through shipping's, an OrderActor's event through an actor host's:
    actors/catalog.py PUBLISHES)."""
    clients: dict[str, httpx.Client] = {}

    def of(name: str) -> httpx.Client:
        if name not in clients:
            base = f"http://127.0.0.1:{cluster.app(name).http_port}"
            clients[name] = httpx.Client(
                base_url=base, timeout=30, headers=cluster.tokens.sidecar_headers
            )
        return clients[name]

    yield of
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[httpx.Client]:
    """The gateway's public HTTP API (its app port, not its sidecar)."""
    base = f"http://127.0.0.1:{cluster.app('gateway').app_port}"
    # as its operator: every route, no rate limit (apps/gateway/auth.py)
    with httpx.Client(base_url=base, timeout=60, headers=cluster.gateway_keys.headers()) as client:
        yield client


@pytest.fixture(scope="module")
def zipkin(cluster: LocalCluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{cluster.config.zipkin_port}", timeout=10) as c:
        yield c


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def redis_client(cluster: LocalCluster) -> Iterator[redis.Redis]:
    """The cluster's Redis, to read pub/sub streams (topics) directly."""
    client = redis.Redis(
        host="127.0.0.1",
        port=cluster.config.redis_port,
        password=cluster.tokens.redis,  # the cluster's requirepass (cluster/tokens.py)
        decode_responses=True,
    )
    yield client
    client.close()
