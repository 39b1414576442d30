"""Client keys: the clients file that says who may call an app, and how a caller says who
it is.

The file (JSON) lists each client with the SHA-256 of its key (an app never holds a key
itself), its scopes and its rate:

    {"clients": [
      {"id": "storefront", "scopes": ["customer"], "key_sha256": "<64 hex>",
       "rate": {"per_second": 50, "burst": 100}},
      {"id": "ops", "scopes": ["operator"], "key_sha256": "...", "rate": null}
    ]}

The gateway reads it (apps/gateway/auth.py: scopes per route, rates), and so does the ops
console, which admits the operators among them (apps/console/auth.py). A caller presents
its key as `Authorization: Bearer <key>`, or, where a browser asks for it, as HTTP Basic
credentials `<client id>:<key>` (`presented`). `ClientsFileWatch` notices a changed file
within a second, so a client added, removed or re-scoped takes effect without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CUSTOMER: Final = "customer"
SERVICE: Final = "service"
OPERATOR: Final = "operator"
ALL: Final = frozenset({CUSTOMER, SERVICE, OPERATOR})

ScopeName = Literal["customer", "service", "operator"]

log = logging.getLogger("orderflow.clientkeys")


class RateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: Annotated[float, Field(gt=0, le=1_000_000)]
    burst: Annotated[int, Field(ge=1, le=1_000_000)]


class ClientSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    scopes: Annotated[list[ScopeName], Field(min_length=1)]
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    rate: RateSpec | None  # required: null says "no limit" out loud


class ClientsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[ClientSpec]


class ClientsFileError(ValueError):
    """The clients file cannot be read, or says something the app cannot take."""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_clients(path: Path, *, setting: str) -> list[ClientSpec]:
    """The clients of `path`; ClientsFileError naming `setting` (the variable that named
    the file), the file and what is wrong."""
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ClientsFileError(f"{setting}={path}: cannot read it ({exc})") from exc
    try:
        clients = ClientsFile.model_validate_json(raw).clients
    except ValidationError as exc:
        raise ClientsFileError(f"{setting}={path}: {exc}") from exc
    for attr in ("id", "key_sha256"):
        seen = [getattr(c, attr) for c in clients]
        dupes = sorted({v for v in seen if seen.count(v) > 1})
        if dupes:
            raise ClientsFileError(f"{setting}={path}: two clients share {attr} {dupes}")
    return clients


@dataclass(frozen=True)
class Presented:
    """What a request's Authorization header says: the key, and the client id Basic
    credentials name (None for a bearer key)."""

    key: str
    client_id: str | None = None


def presented(authorization: bytes | None) -> Presented | None:
    """`Bearer <key>` or `Basic base64(<client id>:<key>)`; None for anything else."""
    if authorization is None:
        return None
    kind, _, rest = authorization.decode("latin-1").partition(" ")
    rest = rest.strip()
    if not rest:
        return None
    if kind.lower() == "bearer":
        return Presented(rest)
    if kind.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(rest, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, key = decoded.partition(":")
    return Presented(key, client_id) if colon and key else None


class ClientsFileWatch:
    """The clients file, looked at (one stat) at most once per CHECK_EVERY_S: a changed
    file is read again, so a client added, removed or re-scoped takes effect without a
    restart (a Kubernetes Secret's update too, once the kubelet has synced it). A file that
    no longer reads, or says something the app cannot take, keeps the clients it had, and
    says so in the log."""

    CHECK_EVERY_S: Final = 1.0

    def __init__(self, path: Path, *, setting: str) -> None:
        self.path = path
        self.setting = setting
        self._seen = self._signature()
        self._checked = time.monotonic()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def changed(self, now: float) -> list[ClientSpec] | None:
        """The file's clients if it changed since it was last read, else None."""
        if now - self._checked < self.CHECK_EVERY_S:
            return None
        self._checked = now
        seen = self._signature()
        if seen == self._seen:
            return None
        self._seen = seen
        try:
            return load_clients(self.path, setting=self.setting)
        except ClientsFileError as exc:
            log.error("kept the clients as they were: %s", exc)
            return None
