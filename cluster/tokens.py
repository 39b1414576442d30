"""A local cluster's two Dapr tokens, made once and kept in its state dir.

Every daprd the launcher starts gets both (`DAPR_API_TOKEN`: it refuses calls to its API
without it; `APP_API_TOKEN`: it sends it to its app), and so does every app
(actors.toolkit.apitoken). Tools beside the cluster (the watchdog, chaos, the bench, the
tests, `python -m cluster token`) read the same files. Restarting a process keeps them;
`make clean` (a new state dir) makes new ones.
"""

from __future__ import annotations

import contextlib
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

DAPR_API_TOKEN_FILE: Final = "dapr-api-token"
APP_API_TOKEN_FILE: Final = "app-api-token"


@dataclass(frozen=True)
class ApiTokens:
    dapr: str  # DAPR_API_TOKEN: the sidecars' APIs
    app: str  # APP_API_TOKEN: the apps' daprd-facing routes

    @property
    def env(self) -> dict[str, str]:
        """Both, as every daprd and every app of the cluster gets them."""
        return {DAPR_API_TOKEN_ENV: self.dapr, APP_API_TOKEN_ENV: self.app}

    @property
    def sidecar_headers(self) -> dict[str, str]:
        """The header a call to one of the cluster's sidecars carries."""
        return sidecar_headers(self.dapr)


def secrets_dir(state_dir: Path) -> Path:
    return state_dir / "secrets"


def new_tokens() -> ApiTokens:
    """Two fresh random tokens (256 bits each, hex)."""
    return ApiTokens(dapr=secrets.token_hex(32), app=secrets.token_hex(32))


def read_tokens(state_dir: Path) -> ApiTokens | None:
    """The cluster's tokens if it has kept them (reading makes nothing)."""
    folder = secrets_dir(state_dir)
    dapr, app = folder / DAPR_API_TOKEN_FILE, folder / APP_API_TOKEN_FILE
    if not (dapr.is_file() and app.is_file()):
        return None
    tokens = ApiTokens(dapr=dapr.read_text().strip(), app=app.read_text().strip())
    if not (tokens.dapr and tokens.app):
        raise ValueError(f"an empty token in {folder}: delete it and start the cluster again")
    return tokens


def keep_tokens(state_dir: Path, tokens: ApiTokens) -> ApiTokens:
    """Write `tokens` to `<state_dir>/secrets/` (0600 files in a 0700 folder) where none
    is kept yet; answer what is kept there (a token already there stays)."""
    folder = secrets_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _keep(folder / DAPR_API_TOKEN_FILE, tokens.dapr)
    _keep(folder / APP_API_TOKEN_FILE, tokens.app)
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
