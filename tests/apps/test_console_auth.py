"""The ops console admits the operators of its clients file (apps/console/auth.py):
in-process, the real app with the in-memory sidecar and a real Redis."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from actors.reactions import build_router
from actors.toolkit.clientkeys import ClientsFileError, ClientsFileWatch, key_digest
from actors.toolkit.testing import InMemorySidecar
from apps.console import redrive
from apps.console.main import Settings, create_app
from tests.apps.test_console_app import TARGETS, _lifespan, cluster_answers, deliver, letter

KEYS = {"ops": "ops-key-1", "warehouse": "warehouse-key-1", "night": "night-key-1"}


def write_clients(path: Path, *ids_scopes: tuple[str, str]) -> Path:
    clients = [
        {"id": i, "scopes": [scope], "key_sha256": key_digest(KEYS[i]), "rate": None}
        for i, scope in ids_scopes
    ]
    path.write_text(json.dumps({"clients": clients}))
    return path


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    return write_clients(tmp_path / "clients.json", ("ops", "operator"), ("warehouse", "service"))


@pytest.fixture
def sidecar() -> InMemorySidecar:
    return InMemorySidecar(router=build_router())


@pytest.fixture
async def console(
    clients_file: Path, sidecar: InMemorySidecar, redis: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    probes = httpx.AsyncClient(transport=httpx.MockTransport(cluster_answers))
    settings = Settings(targets=TARGETS, vendor_dir=None, clients_file=clients_file)
    app = create_app(settings, sidecar=sidecar, redis=redis, http=probes)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")
    async with probes, client, _lifespan(client):
        yield client


def bearer(client: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[client]}"}


async def test_without_a_key_every_page_and_api_route_asks_to_sign_in(
    console: httpx.AsyncClient,
) -> None:
    for path in ("/", "/cluster", "/orders", "/deadletters", "/plots", "/api/deadletters"):
        resp = await console.get(path)
        assert resp.status_code == 401, path
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["code"] == "auth.required"
        challenges = resp.headers.get_list("www-authenticate")
        assert 'Basic realm="Orderflow ops console", charset="UTF-8"' in challenges
    assert (
        await console.post("/api/deadletters/redrive", params={"all": "true"})
    ).status_code == 401


async def test_an_operator_signs_in_with_basic_credentials_or_a_bearer_key(
    console: httpx.AsyncClient,
) -> None:
    assert (await console.get("/cluster", auth=("ops", KEYS["ops"]))).status_code == 200
    assert (await console.get("/api/deadletters", headers=bearer("ops"))).status_code == 200
    # Basic credentials name the client whose key they carry, and a wrong key is no key
    assert (await console.get("/cluster", auth=("warehouse", KEYS["ops"]))).status_code == 401
    assert (await console.get("/cluster", auth=("ops", "not-the-key"))).status_code == 401
    assert (
        await console.get("/cluster", headers={"authorization": "Basic %%%"})
    ).status_code == 401


async def test_a_client_without_the_operator_scope_is_refused(console: httpx.AsyncClient) -> None:
    resp = await console.get("/cluster", auth=("warehouse", KEYS["warehouse"]))
    assert resp.status_code == 403
    assert resp.json()["code"] == "auth.forbidden"
    assert "warehouse" in resp.json()["detail"]


async def test_probes_metrics_and_daprds_routes_need_no_operator(
    console: httpx.AsyncClient,
) -> None:
    assert (await console.get("/healthz/app")).status_code == 200
    assert (await console.get("/metrics")).status_code == 200
    assert (await console.get("/dapr/subscribe")).status_code == 200
    assert await deliver(console, letter("inventory.reservation_not_found")) == "SUCCESS"


async def test_a_redrive_is_logged_with_the_operator_who_made_it(
    console: httpx.AsyncClient, sidecar: InMemorySidecar, caplog: pytest.LogCaptureFixture
) -> None:
    event = letter("inventory.reservation_not_found", source="ev-7")
    await deliver(console, event)
    with caplog.at_level(logging.INFO, logger="orderflow.console.auth"):
        resp = await console.post(f"/api/deadletters/{event['id']}/redrive", headers=bearer("ops"))
    assert resp.status_code == 200, resp.text
    assert len(sidecar.published) == 1
    assert f"POST /api/deadletters/{event['id']}/redrive by operator ops" in caplog.text
    (kept,) = (await console.get("/api/deadletters?status=all", headers=bearer("ops"))).json()[
        "letters"
    ]
    assert (kept["status"], kept["redriven_by"]) == ("redriven", "ops")  # on the letter too
    page = await console.get("/deadletters?status=all", headers=bearer("ops"))
    assert "last by ops" in page.text


async def test_a_changed_clients_file_takes_effect_without_a_restart(
    console: httpx.AsyncClient, clients_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [time.monotonic()]
    monkeypatch.setattr("apps.console.auth.time.monotonic", lambda: clock[0])
    night = ("night", KEYS["night"])
    assert (await console.get("/cluster", auth=night)).status_code == 401
    write_clients(clients_file, ("night", "operator"))  # ops removed, night added
    clock[0] += ClientsFileWatch.CHECK_EVERY_S
    assert (await console.get("/cluster", auth=night)).status_code == 200
    assert (await console.get("/cluster", auth=("ops", KEYS["ops"]))).status_code == 401


def test_a_clients_file_the_console_cannot_take_stops_its_start(tmp_path: Path) -> None:
    bad = tmp_path / "clients.json"
    bad.write_text('{"clients": [{"id": "ops"}]}')
    with pytest.raises(ClientsFileError, match="ORDERFLOW_CONSOLE_CLIENTS="):
        create_app(Settings(targets=TARGETS, vendor_dir=None, clients_file=bad))


def test_the_clients_file_comes_from_its_variable(tmp_path: Path) -> None:
    path = str(tmp_path / "clients.json")
    assert Settings.from_env({"ORDERFLOW_CONSOLE_CLIENTS": path}).clients_file == Path(path)
    assert Settings.from_env({}).clients_file is None


async def test_without_a_clients_file_the_console_is_open_and_says_so(
    sidecar: InMemorySidecar, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="orderflow.console"):
        app = create_app(Settings(targets=TARGETS, vendor_dir=None), sidecar=sidecar, redis=redis)
    assert "the console is open to anyone who reaches its port" in caplog.text
    probes = httpx.AsyncClient(transport=httpx.MockTransport(cluster_answers))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")
    async with probes, client, _lifespan(client):
        assert (await client.get("/api/deadletters")).status_code == 200


def test_the_redrive_cli_sends_the_operators_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def console(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"letters": []})

    monkeypatch.setenv(redrive.KEY_ENV, "the-key")
    with httpx.Client(transport=httpx.MockTransport(console)) as http:
        assert redrive.run(["--list", "--console", "http://c"], http=http) == 0
    assert seen == ["Bearer the-key"]


def test_the_redrive_cli_says_which_key_a_401_wants(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(redrive.KEY_ENV, raising=False)
    refusal = httpx.Response(401, json={"detail": "sign in as an operator"})
    with httpx.Client(transport=httpx.MockTransport(lambda _: refusal)) as http:
        assert redrive.run(["--list", "--console", "http://c"], http=http) == 2
    assert redrive.KEY_ENV in capsys.readouterr().err
