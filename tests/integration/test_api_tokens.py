"""The Dapr API token and the app API token on the real cluster (cluster/tokens.py).

Every daprd refuses a call to its API without the cluster's DAPR_API_TOKEN, and every app
refuses a call on a route its daprd calls without the APP_API_TOKEN; the rest of the
suite runs with both, so they are also what every other test's calls carry.
"""

from __future__ import annotations

import httpx
import pytest
import redis

from cluster.local import LocalCluster

NO_TOKEN: dict[str, str] = {}
WRONG = {"dapr-api-token": "not-the-token"}


@pytest.mark.parametrize("headers", [NO_TOKEN, WRONG], ids=["none", "wrong"])
def test_every_sidecar_refuses_its_api_without_the_dapr_api_token(
    cluster: LocalCluster, headers: dict[str, str], uid: str
) -> None:
    for app in cluster.config.apps():
        base = f"http://127.0.0.1:{app.http_port}/v1.0"
        actor = httpx.post(f"{base}/actors/BeaconActor/{uid}/method/Get", headers=headers)
        meta = httpx.get(f"{base}/metadata", headers=headers)
        publish = httpx.post(f"{base}/publish/pubsub/restocks", json={}, headers=headers)

        assert (actor.status_code, meta.status_code, publish.status_code) == (401, 401, 401), (
            app.name
        )
        assert "invalid api token" in actor.text
        # its health stays open: probes and the launcher need no token
        assert httpx.get(f"{base}/healthz").status_code == 204, app.name


def test_with_the_token_a_sidecar_serves_the_call(cluster: LocalCluster, uid: str) -> None:
    app = cluster.app("gateway")
    resp = httpx.post(
        f"http://127.0.0.1:{app.http_port}/v1.0/actors/BeaconActor/{uid}/method/Get",
        headers=cluster.tokens.sidecar_headers,
        timeout=30,
    )

    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True


# (app, method, path): routes each app's daprd calls on it
DAPR_FACING = [
    ("actor-host-1", "PUT", "/actors/BeaconActor/{uid}/method/Get"),
    ("actor-host-1", "PUT", "/actors/WalletActor/{uid}/method/remind/deadline"),
    ("actor-host-2", "DELETE", "/actors/BeaconActor/{uid}"),
    ("actor-host-1", "GET", "/dapr/config"),
    ("actor-host-2", "POST", "/events/orders"),
    ("projector", "POST", "/events/orders"),
    ("projector", "GET", "/dapr/subscribe"),
    ("shipping", "POST", "/events/orders"),
    ("console", "POST", "/deadletters/inbox"),
]


@pytest.mark.parametrize(("name", "method", "path"), DAPR_FACING)
@pytest.mark.parametrize("headers", [NO_TOKEN, WRONG], ids=["none", "wrong"])
def test_an_app_refuses_a_call_on_a_daprd_route_from_anyone_but_its_sidecar(
    cluster: LocalCluster, name: str, method: str, path: str, headers: dict[str, str], uid: str
) -> None:
    app = cluster.app(name)
    resp = httpx.request(
        method,
        f"http://127.0.0.1:{app.app_port}{path.format(uid=uid)}",
        json={"id": uid},
        headers=headers,
        timeout=10,
    )

    assert resp.status_code == 401, resp.text
    assert resp.json()["title"] == "Unauthorized"


@pytest.mark.parametrize("name", ["actor-host-1", "projector", "shipping", "console", "gateway"])
def test_an_apps_probes_and_metrics_need_no_token(cluster: LocalCluster, name: str) -> None:
    base = f"http://127.0.0.1:{cluster.app(name).app_port}"

    assert httpx.get(f"{base}/healthz/app", timeout=10).status_code == 200
    metrics = httpx.get(f"{base}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "# TYPE" in metrics.text


def test_the_gateways_public_api_takes_a_client_key_not_a_dapr_token(
    cluster: LocalCluster, uid: str
) -> None:
    base = f"http://127.0.0.1:{cluster.app('gateway').app_port}"
    path = f"{base}/wallets/{uid}/deposit"
    keys = cluster.gateway_keys

    anonymous = httpx.post(path, json={"amount": 5}, timeout=30)
    with_dapr_token = httpx.post(
        path, json={"amount": 5}, timeout=30, headers=cluster.tokens.sidecar_headers
    )
    storefront = httpx.post(
        path, json={"amount": 5}, timeout=30, headers=keys.headers("storefront")
    )
    warehouse = httpx.post(path, json={"amount": 5}, timeout=30, headers=keys.headers("warehouse"))
    wallet = httpx.get(
        f"{base}/wallets/{uid}?consistency=strong", headers=keys.headers(), timeout=30
    )

    assert (anonymous.status_code, with_dapr_token.status_code) == (401, 401)
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="orderflow"'
    assert storefront.status_code == 403, storefront.text  # a customer client may not deposit
    assert warehouse.status_code == 200, warehouse.text  # a service may
    assert wallet.json()["balance"] == 5  # the refused ones changed nothing
    read = httpx.get(f"{base}/wallets/{uid}", headers=keys.headers("storefront"), timeout=30)
    assert read.headers["ratelimit-limit"] == "200"  # a limited client's answers carry its rate
    assert int(read.headers["ratelimit-remaining"]) < 200


def test_a_storefront_places_an_order_a_warehouse_may_not(cluster: LocalCluster, uid: str) -> None:
    base = f"http://127.0.0.1:{cluster.app('gateway').app_port}"
    keys = cluster.gateway_keys
    order = {
        "customer_id": f"c-{uid}",
        "lines": [{"sku": f"s-{uid}", "quantity": 1, "unit_price": 1}],
    }

    def place(client: str) -> httpx.Response:
        headers = {**keys.headers(client), "idempotency-key": f"{client}-{uid}"}
        return httpx.post(f"{base}/orders", json=order, headers=headers, timeout=30)

    assert place("warehouse").status_code == 403
    placed = place("storefront")
    assert placed.status_code == 202, placed.text
    assert (
        httpx.get(
            f"{base}{placed.headers['location']}", headers=keys.headers("warehouse"), timeout=30
        ).status_code
        == 200
    )  # a service reads orders


def test_redis_refuses_a_client_without_the_clusters_password(
    cluster: LocalCluster, redis_client: redis.Redis
) -> None:
    """The local cluster's Redis has a requirepass (cluster/tokens.py): a process on the
    box that reaches its loopback port reads and writes nothing without it."""
    stranger = redis.Redis(host="127.0.0.1", port=cluster.config.redis_port)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            stranger.xlen("orders")
        wrong = redis.Redis(host="127.0.0.1", port=cluster.config.redis_port, password="x" * 64)
        with pytest.raises(redis.exceptions.AuthenticationError):
            wrong.ping()
        wrong.close()
    finally:
        stranger.close()
    assert redis_client.ping() is True  # the tests' client has it, as every app does
