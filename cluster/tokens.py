"""A local cluster's secrets, made once and kept in its state dir (`secrets/`).

Dapr's two tokens: every daprd the launcher starts gets both (`DAPR_API_TOKEN`: it
refuses calls to its API without it; `APP_API_TOKEN`: it sends it to its app), and so
does every app (actors.toolkit.apitoken). Redis's password (its `requirepass`): every
daprd's components read it (`ORDERFLOW_REDIS_PASSWORD`, through the env secret store) and
every app's own connections send it (actors.toolkit.redis_connection). The gateway's client keys
(apps/gateway/auth.py): one client per scope (GATEWAY_CLIENTS), their digests in the
clients file the gateway reads. Tools beside the cluster (the watchdog, chaos, the bench,
the tests, `python -m cluster tokens`) read the same files. Restarting a process keeps
them; `make clean` (a new state dir) makes new ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from actors.toolkit.apitoken import (
    APP_API_TOKEN_ENV,
    DAPR_API_TOKEN_ENV,
    sidecar_headers,
)
from actors.toolkit.clientkeys import key_digest
from actors.toolkit.redis_connection import REDIS_PASSWORD_ENV

DAPR_API_TOKEN_FILE: Final = "dapr-api-token"
APP_API_TOKEN_FILE: Final = "app-api-token"
REDIS_PASSWORD_FILE: Final = "redis-password"
GATEWAY_CLIENTS_FILE: Final = "gateway-clients.json"
# the local operator: the tools (tests, chaos, the bench) call the gateway as it, without a
# limit, and it signs in to the console (its Basic user), whose variable exports its key
# again
OPERATOR_CLIENT: Final = "ops"
CONSOLE_KEY_ENV: Final = "ORDERFLOW_CONSOLE_KEY"
# the local gateway's clients: (id, scope, rate, the variable `make tokens` exports its
# key as)
GATEWAY_CLIENTS: Final = (
    (OPERATOR_CLIENT, "operator", None, "ORDERFLOW_GATEWAY_KEY"),
    ("storefront", "customer", {"per_second": 100, "burst": 200}, "ORDERFLOW_STOREFRONT_KEY"),
    ("warehouse", "service", None, "ORDERFLOW_WAREHOUSE_KEY"),
)


@dataclass(frozen=True)
class ApiTokens:
    dapr: str  # DAPR_API_TOKEN: the sidecars' APIs
    app: str  # APP_API_TOKEN: the apps' daprd-facing routes
    # ORDERFLOW_REDIS_PASSWORD: Redis's requirepass (None: a Redis without one)
    redis: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """All of them, as every daprd and every app of the cluster gets them."""
        env = {DAPR_API_TOKEN_ENV: self.dapr, APP_API_TOKEN_ENV: self.app}
        if self.redis:
            env[REDIS_PASSWORD_ENV] = self.redis
        return env

    @property
    def sidecar_headers(self) -> dict[str, str]:
        """The header a call to one of the cluster's sidecars carries."""
        return sidecar_headers(self.dapr)


def secrets_dir(state_dir: Path) -> Path:
    return state_dir / "secrets"


def new_tokens() -> ApiTokens:
    """Fresh random tokens and a Redis password (256 bits each, hex)."""
    return ApiTokens(
        dapr=secrets.token_hex(32), app=secrets.token_hex(32), redis=secrets.token_hex(32)
    )


def read_tokens(state_dir: Path) -> ApiTokens | None:
    """The cluster's tokens if it has kept them (reading makes nothing)."""
    folder = secrets_dir(state_dir)
    dapr, app = folder / DAPR_API_TOKEN_FILE, folder / APP_API_TOKEN_FILE
    if not (dapr.is_file() and app.is_file()):
        return None
    redis = folder / REDIS_PASSWORD_FILE  # not there in a state dir older than it
    tokens = ApiTokens(
        dapr=dapr.read_text().strip(),
        app=app.read_text().strip(),
        redis=redis.read_text().strip() if redis.is_file() else None,
    )
    if not (tokens.dapr and tokens.app and tokens.redis != ""):
        raise ValueError(f"an empty token in {folder}: delete it and start the cluster again")
    return tokens


def keep_tokens(state_dir: Path, tokens: ApiTokens) -> ApiTokens:
    """Write `tokens` to `<state_dir>/secrets/` (0600 files in a 0700 folder) where none
    is kept yet; answer what is kept there (a token already there stays)."""
    folder = secrets_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _keep(folder / DAPR_API_TOKEN_FILE, tokens.dapr)
    _keep(folder / APP_API_TOKEN_FILE, tokens.app)
    if tokens.redis:
        _keep(folder / REDIS_PASSWORD_FILE, tokens.redis)
    kept = read_tokens(state_dir)
    assert kept is not None
    return kept


def _keep(path: Path, token: str) -> None:
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        with contextlib.suppress(FileExistsError):  # another process kept one first
            os.link(tmp, path)  # atomic, and never over a token already there
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class GatewayKeys:
    keys: dict[str, str]  # client id -> its key
    clients_file: Path  # what the gateway reads (ORDERFLOW_GATEWAY_CLIENTS)

    def headers(self, client: str = OPERATOR_CLIENT) -> dict[str, str]:
        """What a call to the gateway as `client` carries (the operator by default)."""
        return {"authorization": f"Bearer {self.keys[client]}"}

    @property
    def env(self) -> dict[str, str]:
        """Each key under the variable `make tokens` exports it as, and the operator's
        again as the console's (its user `ops`: apps/console/auth.py)."""
        keys = {variable: self.keys[client] for client, _, _, variable in GATEWAY_CLIENTS}
        return {**keys, CONSOLE_KEY_ENV: self.keys[OPERATOR_CLIENT]}

    def console_auth(self) -> tuple[str, str]:
        """Basic credentials for the console: (client id, key) of its operator."""
        return OPERATOR_CLIENT, self.keys[OPERATOR_CLIENT]


def keep_gateway_keys(state_dir: Path) -> GatewayKeys:
    """The local gateway's client keys, one file each in `<state_dir>/secrets/` (made if
    absent), and the clients file with their digests, written from them; clients added to
    that file by hand (`python -m apps.gateway.auth add`) are kept after them."""
    folder = secrets_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys: dict[str, str] = {}
    clients: list[dict[str, object]] = []
    for client, scope, rate, _ in GATEWAY_CLIENTS:
        path = folder / f"gateway-key-{client}"
        _keep(path, secrets.token_urlsafe(32))
        keys[client] = path.read_text().strip()
        digest = key_digest(keys[client])
        clients.append({"id": client, "scopes": [scope], "key_sha256": digest, "rate": rate})
    clients_file = folder / GATEWAY_CLIENTS_FILE
    clients += _added_by_hand(clients_file)
    text = json.dumps({"clients": clients}, indent=2) + "\n"
    if not clients_file.is_file() or clients_file.read_text() != text:
        tmp = folder / f".{GATEWAY_CLIENTS_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text(text)
        tmp.replace(clients_file)
    return GatewayKeys(keys=keys, clients_file=clients_file)


def _added_by_hand(clients_file: Path) -> list[dict[str, object]]:
    """The clients of an existing clients file that GATEWAY_CLIENTS does not make."""
    if not clients_file.is_file():
        return []
    try:
        entries = json.loads(clients_file.read_text()).get("clients") or []
    except (ValueError, AttributeError) as exc:
        raise ValueError(
            f"{clients_file} is not a clients file ({exc}): fix it, or delete it to start over"
        ) from exc
    ours = {client for client, _, _, _ in GATEWAY_CLIENTS}
    return [e for e in entries if isinstance(e, dict) and e.get("id") not in ours]
