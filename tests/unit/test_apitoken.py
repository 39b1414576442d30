"""actors.toolkit.apitoken and cluster/tokens.py: the Dapr API token and the app API token.

The guard runs in front of a real FastAPI app (the toolkit's fast routes included) through
httpx's ASGI transport; the tokens are real files in a temporary state dir.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from actors.toolkit.apitoken import (
    HEADER,
    AppTokenGuard,
    TokenError,
    app_api_token_from_env,
    dapr_api_token_from_env,
    dapr_facing,
    sidecar_headers,
)
from actors.toolkit.fastpath import Answer, FastRoute, FastRoutes
from apps.gateway.auth import key_digest, load_clients
from apps.gateway.auth import main as auth_main
from cluster.tokens import (
    ApiTokens,
    keep_gateway_keys,
    keep_tokens,
    new_tokens,
    read_tokens,
    secrets_dir,
)

TOKEN = "s3cr3t-app-token"


def _app(token: str | None) -> FastAPI:
    app = FastAPI()

    async def turn(params: dict[str, str], body: bytes, scope: object) -> Answer:
        return Answer(200, b'{"turn": "%s"}' % params["id"].encode())

    route = FastRoute("PUT", re.compile(r"/actors/Wallet/(?P<id>[^/]+)/method/Get"), turn)
    app.add_middleware(FastRoutes, routes=[route])

    @app.get("/dapr/config")
    async def config() -> dict[str, list[str]]:
        return {"entities": ["Wallet"]}

    @app.post("/events/{topic}")
    async def deliver(topic: str) -> dict[str, str]:
        return {"status": "SUCCESS"}

    for path in ("/healthz", "/healthz/app", "/metrics", "/actors/stats", "/wallets/c1"):

        @app.get(path)
        async def open_route() -> dict[str, str]:
            return {"ok": "yes"}

    app.add_middleware(AppTokenGuard, token=token)
    return app


async def _call(app: FastAPI, method: str, path: str, token: str | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.request(method, path, headers=sidecar_headers(token))


DAPR_CALLS = [
    ("GET", "/dapr/config"),
    ("PUT", "/actors/Wallet/w1/method/Get"),  # served beneath FastAPI, by FastRoutes
    ("POST", "/events/orders"),
]
OPEN = ["/healthz", "/healthz/app", "/metrics", "/actors/stats", "/wallets/c1"]


@pytest.mark.parametrize(("method", "path"), DAPR_CALLS)
@pytest.mark.parametrize("sent", [None, "", "wrong", TOKEN + "x", TOKEN[:-1]])
async def test_a_daprd_facing_route_refuses_a_call_without_the_app_token(
    method: str, path: str, sent: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await _call(_app(TOKEN), method, path, sent)

    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert HEADER in resp.json()["detail"]
    assert f"refused {method} {path} from" in caplog.text  # the operator sees who
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(("method", "path"), DAPR_CALLS)
async def test_a_daprd_facing_route_serves_its_sidecar(method: str, path: str) -> None:
    resp = await _call(_app(TOKEN), method, path, TOKEN)

    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("path", OPEN)
async def test_probes_metrics_and_public_routes_need_no_token(path: str) -> None:
    resp = await _call(_app(TOKEN), "GET", path, None)

    assert resp.status_code == 200


@pytest.mark.parametrize(("method", "path"), DAPR_CALLS)
async def test_without_an_app_token_nothing_is_checked(method: str, path: str) -> None:
    resp = await _call(_app(None), method, path, None)

    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("path", "facing"),
    [
        ("/dapr/config", True),
        ("/dapr/subscribe", True),
        ("/actors/OrderActor/o-1", True),  # deactivation
        ("/actors/OrderActor/o-1/method/remind/deadline", True),
        ("/actors/stats", False),
        ("/actors/", False),
        ("/events/wallet", True),
        ("/deadletters/inbox", True),
        ("/deadletters", False),
        ("/orders/o-1", False),
        ("/healthz", False),
        ("/metrics", False),
    ],
)
def test_which_routes_are_daprd_facing(path: str, facing: bool) -> None:
    assert dapr_facing(path) is facing


def test_tokens_come_from_daprs_own_variables() -> None:
    env = {"DAPR_API_TOKEN": "d-1", "APP_API_TOKEN": "a-1"}

    assert dapr_api_token_from_env(env) == "d-1"
    assert app_api_token_from_env(env) == "a-1"
    assert dapr_api_token_from_env({"DAPR_API_TOKEN": ""}) is None
    assert app_api_token_from_env({}) is None
    assert sidecar_headers(None) == {}


@pytest.mark.parametrize("bad", ["two words", "line\nbreak", " padded", "naïve", "tab\tin"])
def test_a_token_that_cannot_be_a_header_value_is_refused_with_a_fix(bad: str) -> None:
    with pytest.raises(TokenError, match="openssl rand -hex 32"):
        dapr_api_token_from_env({"DAPR_API_TOKEN": bad})


def test_a_cluster_keeps_its_first_tokens_private_and_distinct(tmp_path: Path) -> None:
    assert read_tokens(tmp_path) is None  # reading makes nothing
    assert not secrets_dir(tmp_path).exists()

    made = new_tokens()
    kept = keep_tokens(tmp_path, made)
    later = keep_tokens(tmp_path, new_tokens())  # a token already kept stays

    assert kept == later == read_tokens(tmp_path) == made
    assert made.redis is not None
    assert len({made.dapr, made.app, made.redis}) == 3
    for secret in (made.dapr, made.app, made.redis):
        assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert made.env == {
        "DAPR_API_TOKEN": made.dapr,
        "APP_API_TOKEN": made.app,
        "ORDERFLOW_REDIS_PASSWORD": made.redis,  # every daprd's components, every app
    }
    assert made.sidecar_headers == {"dapr-api-token": made.dapr}
    folder = secrets_dir(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["app-api-token", "dapr-api-token", "redis-password"]
    assert new_tokens() != made


def test_a_state_dir_kept_before_redis_had_a_password_gets_one_at_the_next_start(
    tmp_path: Path,
) -> None:
    old = ApiTokens(dapr="d" * 64, app="a" * 64)  # as sessions before 26 kept them
    keep_tokens(tmp_path, old)
    assert read_tokens(tmp_path) == old  # `make tokens` on a cluster still running so
    assert "ORDERFLOW_REDIS_PASSWORD" not in old.env
    kept = keep_tokens(tmp_path, new_tokens())  # the launcher's next start
    assert (kept.dapr, kept.app) == (old.dapr, old.app)
    assert kept.redis is not None
    assert re.fullmatch(r"[0-9a-f]{64}", kept.redis)


def test_an_emptied_token_file_is_an_error_not_an_open_sidecar(tmp_path: Path) -> None:
    keep_tokens(tmp_path, new_tokens())
    (secrets_dir(tmp_path) / "dapr-api-token").write_text("\n")

    with pytest.raises(ValueError, match="delete it"):
        read_tokens(tmp_path)


def test_the_local_gateway_keys_match_the_clients_file_the_gateway_reads(tmp_path: Path) -> None:
    keys = keep_gateway_keys(tmp_path)
    clients = {c.id: c for c in load_clients(keys.clients_file)}

    assert sorted(clients) == ["ops", "storefront", "warehouse"]
    assert [clients[c].scopes for c in ("ops", "storefront", "warehouse")] == [
        ["operator"],
        ["customer"],
        ["service"],
    ]
    for client, key in keys.keys.items():
        assert clients[client].key_sha256 == key_digest(key)
        assert key not in keys.clients_file.read_text()
        assert (
            stat.S_IMODE((secrets_dir(tmp_path) / f"gateway-key-{client}").stat().st_mode) == 0o600
        )
    assert keys.headers() == {"authorization": f"Bearer {keys.keys['ops']}"}
    assert keep_gateway_keys(tmp_path) == keys  # kept, not made again
    assert set(keys.env) == {
        "ORDERFLOW_GATEWAY_KEY",
        "ORDERFLOW_STOREFRONT_KEY",
        "ORDERFLOW_WAREHOUSE_KEY",
        "ORDERFLOW_CONSOLE_KEY",  # the operator's again, for the console and its CLI
    }
    assert keys.env["ORDERFLOW_CONSOLE_KEY"] == keys.keys["ops"]
    assert keys.console_auth() == ("ops", keys.keys["ops"])


async def test_a_flood_of_refusals_is_logged_once_per_period_with_a_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("actors.toolkit.apitoken.time.monotonic", lambda: clock[0])
    app = _app(TOKEN)
    for _ in range(50):
        assert (await _call(app, "GET", "/dapr/config", None)).status_code == 401
    clock[0] += AppTokenGuard.LOG_EVERY_S
    assert (await _call(app, "POST", "/events/orders", "wrong")).status_code == 401

    lines = [r.getMessage() for r in caplog.records if r.name == "orderflow.apitoken"]
    assert len(lines) == 2
    assert lines[0].startswith("refused GET /dapr/config from")
    assert lines[1].startswith("refused POST /events/orders from")
    assert lines[1].endswith("(49 more refused since the last line)")


def test_a_client_added_to_the_local_clients_file_survives_the_next_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = keep_gateway_keys(tmp_path)
    assert (
        auth_main(["add", "--file", str(keys.clients_file), "--id", "bi", "--scope", "service"])
        == 0
    )
    added_key = capsys.readouterr().out.strip()

    again = keep_gateway_keys(tmp_path)  # the launcher's next start
    clients = {c.id: c for c in load_clients(again.clients_file)}

    assert again == keys
    assert sorted(clients) == ["bi", "ops", "storefront", "warehouse"]
    assert clients["bi"].key_sha256 == key_digest(added_key)
