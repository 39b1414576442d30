"""The gateway's client keys, scopes and rates (apps/gateway/auth.py), on the real gateway
app and the real actors behind an in-memory sidecar: the hot lane and FastAPI's stack."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.toolkit.client import ActorClient
from apps.gateway import auth
from apps.gateway.hotroutes import _served
from apps.gateway.main import Settings, create_app
from tests.apps.conftest import BASE_URL

KEYS = {"shop": "key-shop-1", "warehouse": "key-wh-1", "ops": "key-ops-1", "slow": "key-slow"}


def _clients_file(tmp_path: Path) -> Path:
    clients: list[dict[str, Any]] = [
        {"id": "shop", "scopes": ["customer"], "rate": None},
        {"id": "warehouse", "scopes": ["service"], "rate": None},
        {"id": "ops", "scopes": ["operator"], "rate": None},
        {"id": "slow", "scopes": ["service"], "rate": {"per_second": 0.001, "burst": 2}},
    ]
    doc = {"clients": [{**c, "key_sha256": auth.key_digest(KEYS[str(c["id"])])} for c in clients]}
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
async def gateway(tmp_path: Path, actors: ActorClient) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(clients_file=_clients_file(tmp_path)), actors=actors)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


def _as(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[who]}"}


ORDER = {"customer_id": "c-1", "lines": [{"sku": "tea", "quantity": 1, "unit_price": 100}]}


async def _seed(gateway: httpx.AsyncClient) -> None:
    ops = _as("ops")
    assert (
        await gateway.post("/inventory/tea/restock", json={"quantity": 5}, headers=ops)
    ).status_code == 200
    assert (
        await gateway.post("/wallets/c-1/deposit", json={"amount": 1000}, headers=ops)
    ).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {KEYS['ops']}"},
        {"authorization": "Basic " + base64.b64encode(f"ops:{KEYS['ops']}".encode()).decode()},
        {"authorization": "Bearer "},
    ],
    ids=["none", "unknown key", "not bearer", "basic credentials (the console's)", "empty"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/wallets/c-1/deposit"),
        ("GET", "/wallets/c-1"),
        ("POST", "/orders"),
        ("GET", "/nowhere"),
    ],
)
async def test_without_a_known_key_every_route_answers_401(
    gateway: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    resp = await gateway.request(method, path, json={"amount": 5}, headers=headers)

    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="orderflow"'
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "auth.required"


@pytest.mark.parametrize("path", ["/healthz", "/healthz/app", "/metrics", "/openapi.json", "/docs"])
async def test_probes_metrics_and_the_docs_are_open(gateway: httpx.AsyncClient, path: str) -> None:
    assert (await gateway.get(path)).status_code == 200


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status"),
    [
        ("warehouse", "POST", "/inventory/tea/restock", {"quantity": 1}, 200),
        ("shop", "POST", "/inventory/tea/restock", {"quantity": 1}, 403),
        ("warehouse", "POST", "/wallets/c-1/deposit", {"amount": 1}, 200),
        ("shop", "POST", "/wallets/c-1/deposit", {"amount": 1}, 403),
        ("shop", "POST", "/orders", ORDER, 202),
        ("warehouse", "POST", "/orders", ORDER, 403),
        ("shop", "GET", "/wallets/c-1?consistency=strong", None, 200),
        ("warehouse", "GET", "/inventory/tea", None, 200),
        ("shop", "GET", "/inventory/tea/history", None, 403),
        ("warehouse", "GET", "/inventory/tea/history", None, 200),
        ("ops", "GET", "/inventory/tea/history", None, 200),
    ],
)
async def test_each_scope_calls_its_routes_only(
    gateway: httpx.AsyncClient, who: str, method: str, path: str, body: Any, status: int
) -> None:
    await _seed(gateway)
    headers = {**_as(who), "idempotency-key": f"k-{who}-{method}"}
    resp = await gateway.request(method, path, json=body, headers=headers)

    assert resp.status_code == status, resp.text
    if status == 403:
        problem = resp.json()
        assert problem["code"] == "auth.forbidden"
        assert who in problem["detail"]


async def test_a_refused_command_changes_nothing(gateway: httpx.AsyncClient) -> None:
    await _seed(gateway)
    refused = await gateway.post("/wallets/c-1/deposit", json={"amount": 7}, headers=_as("shop"))
    wallet = await gateway.get("/wallets/c-1?consistency=strong", headers=_as("ops"))

    assert refused.status_code == 403
    assert wallet.json()["balance"] == 1000


async def test_a_route_missing_from_the_policy_is_the_operators_alone(
    gateway: httpx.AsyncClient,
) -> None:
    assert (await gateway.get("/nowhere", headers=_as("warehouse"))).status_code == 403
    assert (await gateway.get("/nowhere", headers=_as("ops"))).status_code == 404


def test_every_route_of_the_gateway_is_in_the_policy() -> None:
    """A route added without a rule would be the operator's alone: this says so at once."""
    app = create_app(Settings(), actors=ActorClient(object()))  # type: ignore[arg-type]
    routes = {
        (method, context.path)
        for context, _ in _served(app.router.routes)
        if context.path not in auth.OPEN_PATHS
        for method in context.methods
    }
    policy = {(rule.method, rule.template) for rule in auth.POLICY}

    assert len(routes) == 12
    assert routes == policy


async def test_a_client_over_its_rate_gets_429_with_when_to_retry(
    gateway: httpx.AsyncClient,
) -> None:
    await _seed(gateway)
    answers = [await gateway.get("/inventory/tea", headers=_as("slow")) for _ in range(3)]

    assert [a.status_code for a in answers[:2]] == [200, 200]  # its burst of 2
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[0].headers["ratelimit-remaining"] == "1"
    over = answers[2]
    assert over.status_code == 429
    assert over.json()["code"] == "rate.limited"
    assert int(over.headers["retry-after"]) >= 1
    assert over.headers["ratelimit-remaining"] == "0"
    # another client is not held back by it
    assert (await gateway.get("/inventory/tea", headers=_as("warehouse"))).status_code != 429


def test_a_bucket_refills_at_its_rate() -> None:
    bucket = auth.Bucket(auth.RateSpec(per_second=10, burst=2))
    now = bucket.stamp

    assert [bucket.take(now), bucket.take(now), bucket.take(now)] == [True, True, False]
    assert bucket.retry_after() == 1
    assert bucket.take(now + 0.15) is True  # one token back after 1/10 s
    assert bucket.take(now + 0.15) is False
    assert bucket.take(now + 10) is True  # never more than the burst
    assert bucket.take(now + 10) is True
    assert bucket.take(now + 10) is False


async def test_the_hot_lane_answers_the_same_after_the_check(gateway: httpx.AsyncClient) -> None:
    """A deposit (served by the hot lane) with the right scope is answered as without auth."""
    resp = await gateway.post("/wallets/c-9/deposit", json={"amount": 12}, headers=_as("warehouse"))

    assert resp.status_code == 200
    assert resp.json()["balance"] == 12


async def test_the_openapi_document_declares_the_bearer_key(gateway: httpx.AsyncClient) -> None:
    doc = (await gateway.get("/openapi.json")).json()

    assert doc["components"]["securitySchemes"]["clientKey"] == {"type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"clientKey": []}]
    deposit = doc["paths"]["/wallets/{customer_id}/deposit"]["post"]["responses"]
    problem = {"$ref": "#/components/schemas/Problem"}
    for status in ("401", "403", "429"):
        assert deposit[status]["content"]["application/problem+json"]["schema"] == problem


def test_without_clients_the_openapi_document_names_no_key_or_refusal() -> None:
    doc = create_app(Settings(), actors=ActorClient(object())).openapi()  # type: ignore[arg-type]

    assert "security" not in doc
    assert "401" not in doc["paths"]["/wallets/{customer_id}/deposit"]["post"]["responses"]


async def test_refusals_are_counted_per_route_template(gateway: httpx.AsyncClient) -> None:
    await gateway.post("/wallets/c-1/deposit", json={"amount": 1})
    await gateway.post("/wallets/c-2/deposit", json={"amount": 1}, headers=_as("shop"))
    metrics = (await gateway.get("/metrics")).text

    for status in ("401", "403"):
        line = re.search(
            r'orderflow_http_requests_total\{method="POST",route="/wallets/\{customer_id\}/deposit",'
            rf'status="{status}"\}} (\S+)',
            metrics,
        )
        assert line is not None, status
        assert float(line.group(1)) == 1.0


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ("not json", "Invalid JSON"),
        (
            json.dumps(
                {"clients": [{"id": "a", "scopes": [], "key_sha256": "0" * 64, "rate": None}]}
            ),
            "scopes",
        ),
        (
            json.dumps(
                {"clients": [{"id": "a", "scopes": ["root"], "key_sha256": "0" * 64, "rate": None}]}
            ),
            "scopes",
        ),
        (
            json.dumps({"clients": [{"id": "a", "scopes": ["operator"], "key_sha256": "0" * 64}]}),
            "rate",
        ),
        (
            json.dumps(
                {
                    "clients": [
                        {"id": "a", "scopes": ["operator"], "key_sha256": "plain-key", "rate": None}
                    ]
                }
            ),
            "key_sha256",
        ),
        (
            json.dumps(
                {
                    "clients": [
                        {"id": n, "scopes": ["operator"], "key_sha256": "0" * 64, "rate": None}
                        for n in "ab"
                    ]
                }
            ),
            "two clients share key_sha256",
        ),
    ],
)
def test_a_bad_clients_file_stops_the_gateway_with_what_is_wrong(
    tmp_path: Path, doc: str, error: str
) -> None:
    path = tmp_path / "clients.json"
    path.write_text(doc)

    with pytest.raises(auth.ClientsFileError, match=re.escape(error)):
        create_app(Settings(clients_file=path), actors=ActorClient(object()))  # type: ignore[arg-type]


def test_the_add_command_prints_a_key_once_and_keeps_only_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clients.json"
    assert (
        auth.main(
            [
                "add",
                "--file",
                str(path),
                "--id",
                "shop",
                "--scope",
                "customer",
                "--rate",
                "5",
                "--burst",
                "10",
            ]
        )
        == 0
    )
    key = capsys.readouterr().out.strip()
    assert auth.main(["add", "--file", str(path), "--id", "shop", "--scope", "service"]) == 2

    (client,) = auth.load_clients(path)
    assert client.key_sha256 == auth.key_digest(key)
    assert key not in path.read_text()
    assert client.scopes == ["customer"]
    assert client.rate == auth.RateSpec(per_second=5, burst=10)


async def test_a_changed_clients_file_takes_effect_without_a_restart(
    tmp_path: Path,
    actors: ActorClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = [time.monotonic()]
    monkeypatch.setattr("apps.gateway.auth.time.monotonic", lambda: clock[0])
    path = _clients_file(tmp_path)
    app = create_app(Settings(clients_file=path), actors=actors)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as gateway:

        async def stock(headers: dict[str, str]) -> int:
            return (await gateway.get("/inventory/tea", headers=headers)).status_code

        for _ in range(2):  # the limited client spends its burst
            await stock(_as("slow"))
        assert await stock(_as("slow")) == 429
        assert auth.main(["add", "--file", str(path), "--id", "new", "--scope", "service"]) == 0
        new = {"authorization": f"Bearer {capsys.readouterr().out.strip()}"}
        doc = json.loads(path.read_text())
        doc["clients"] = [c for c in doc["clients"] if c["id"] != "warehouse"]
        path.write_text(json.dumps(doc))  # the warehouse removed, "new" added

        assert (await stock(_as("warehouse")), await stock(new)) == (200, 401)  # not yet read
        clock[0] += auth.ClientsFileWatch.CHECK_EVERY_S  # the next check reads the file
        assert (await stock(_as("warehouse")), await stock(new)) == (401, 200)
        assert await stock(_as("slow")) == 429  # its spent bucket kept across the reload
        assert "clients file changed: 4 clients now" in caplog.text

        path.write_text("{broken")
        clock[0] += auth.ClientsFileWatch.CHECK_EVERY_S
        assert await stock(new) == 200  # a broken file keeps the clients it had
        assert "kept the clients as they were" in caplog.text
