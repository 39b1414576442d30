"""Who may call the gateway: API keys with scopes, and a rate per client.

A client presents its key as `Authorization: Bearer <key>`. The clients file
(`ORDERFLOW_GATEWAY_CLIENTS`, JSON; its format: actors/toolkit/clientkeys.py, which the
ops console reads too) lists each client with the SHA-256 of its key (the gateway never
holds a key itself), its scopes and its rate:

    {"clients": [
      {"id": "storefront", "scopes": ["customer"], "key_sha256": "<64 hex>",
       "rate": {"per_second": 50, "burst": 100}},
      {"id": "warehouse", "scopes": ["service"], "key_sha256": "...", "rate": null}
    ]}

Scopes, by what the caller is (POLICY names each route's):
- `customer`: a storefront acting for its customers: place, read and cancel orders, read
  wallets and stock.
- `service`: another service feeding the domain: restock, deposit, and read everything.
- `operator`: every route, and any route POLICY does not list.

Every path but the open ones (health, metrics, the API docs) needs a known key (401);
a route the key's scopes do not cover answers 403; a client over its rate 429 with
`Retry-After` (a token bucket per client: `burst` requests at once, refilled at
`per_second`; `null`: no limit). A limited client's answers carry `RateLimit-Limit`,
`RateLimit-Remaining` and `RateLimit-Reset`. The buckets live in the gateway process: N
replicas allow N times the rate.

`python -m apps.gateway.auth add --file F --id ID --scope S [--rate N --burst B]` makes a
key, prints it once, and writes its client into F. A running gateway reads a changed file
within a second (ClientsFileWatch); a client whose rate did not change keeps its bucket.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.toolkit import clientkeys
from actors.toolkit.clientkeys import (
    ALL,
    CUSTOMER,
    OPERATOR,
    SERVICE,
    ClientsFileError,
    ClientsFileWatch,
    ClientSpec,
    RateSpec,
    key_digest,
    presented,
)
from actors.toolkit.metrics import UNMATCHED_ROUTE, HttpMetrics
from apps.gateway import problems

__all__ = [  # the clients file's names (actors.toolkit.clientkeys) are the gateway's too
    "ALL",
    "CLIENTS_ENV",
    "CUSTOMER",
    "OPEN_PATHS",
    "OPERATOR",
    "POLICY",
    "SERVICE",
    "Bucket",
    "Client",
    "ClientSpec",
    "ClientsFileError",
    "ClientsFileWatch",
    "Gatekeeper",
    "GatewayAuth",
    "RateSpec",
    "Refusal",
    "Rule",
    "key_digest",
    "load_clients",
    "main",
    "rule_for",
    "watch_clients",
]

CLIENTS_ENV: Final = "ORDERFLOW_GATEWAY_CLIENTS"
# answered to anyone: probes, Prometheus, the API's own documentation
OPEN_PATHS: Final = frozenset(
    {"/healthz", "/healthz/app", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc"}
    | {"/openapi.json"}
)

log = logging.getLogger("orderflow.gateway.auth")


def load_clients(path: Path) -> list[ClientSpec]:
    """The clients of the gateway's clients file; ClientsFileError saying what is wrong."""
    return clientkeys.load_clients(path, setting=CLIENTS_ENV)


@dataclass(frozen=True)
class Rule:
    method: str
    template: str  # the route template, as the metrics label it
    scopes: frozenset[str]
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{[^/}]+\}", "[^/]+", self.template)
        object.__setattr__(self, "pattern", re.compile(regex))


# Which scopes may call each route (`operator` every one). A route missing here is the
# operator's alone: tests/apps/test_gateway_auth.py checks every route of the app is here.
POLICY: Final = (
    Rule("POST", "/orders", frozenset({CUSTOMER, OPERATOR})),
    Rule("GET", "/orders", ALL),
    Rule("GET", "/orders/{order_id}", ALL),
    Rule("POST", "/orders/{order_id}/cancel", frozenset({CUSTOMER, OPERATOR})),
    Rule("GET", "/orders/{order_id}/history", ALL),
    Rule("POST", "/wallets/{customer_id}/deposit", frozenset({SERVICE, OPERATOR})),
    Rule("GET", "/wallets/{customer_id}", ALL),
    Rule("GET", "/wallets/{customer_id}/history", ALL),
    Rule("POST", "/inventory/{sku}/restock", frozenset({SERVICE, OPERATOR})),
    Rule("GET", "/inventory", ALL),
    Rule("GET", "/inventory/{sku}", ALL),
    Rule("GET", "/inventory/{sku}/history", frozenset({SERVICE, OPERATOR})),
)


def rule_for(method: str, path: str) -> Rule | None:
    for rule in POLICY:
        if rule.method == method and rule.pattern.fullmatch(path):
            return rule
    return None


class Bucket:
    """A token bucket: `burst` at once, `per_second` refilled; monotonic time."""

    def __init__(self, rate: RateSpec) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.stamp = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate.burst, self.tokens + (now - self.stamp) * self.rate.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def headers(self) -> list[tuple[bytes, bytes]]:
        remaining = int(self.tokens)
        reset = math.ceil((self.rate.burst - self.tokens) / self.rate.per_second)
        return [
            (b"ratelimit-limit", str(self.rate.burst).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]

    def retry_after(self) -> int:
        return max(1, math.ceil((1.0 - self.tokens) / self.rate.per_second))


@dataclass
class Client:
    spec: ClientSpec
    scopes: frozenset[str]
    bucket: Bucket | None


def _bucket(spec: ClientSpec, kept: dict[str, Bucket | None]) -> Bucket | None:
    if spec.rate is None:
        return None
    old = kept.get(spec.id)
    return old if old is not None and old.rate == spec.rate else Bucket(spec.rate)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    detail: str
    route: str  # its metrics label: the route's template, or UNMATCHED_ROUTE
    headers: dict[str, str] = field(default_factory=dict)


class Gatekeeper:
    """Decides a request: the client it comes from, or why it is refused."""

    def __init__(self, clients: Sequence[ClientSpec], *, before: Gatekeeper | None = None) -> None:
        # a client kept across a reload (same id, same rate) keeps its bucket's state
        kept = {c.spec.id: c.bucket for c in before.known()} if before else {}
        self._by_digest: dict[str, Client] = {
            c.key_sha256: Client(c, frozenset(c.scopes), _bucket(c, kept)) for c in clients
        }

    def known(self) -> list[Client]:
        return list(self._by_digest.values())

    def decide(self, method: str, path: str, authorization: bytes | None) -> Client | Refusal:
        rule = rule_for(method, path)
        route = rule.template if rule is not None else UNMATCHED_ROUTE
        client = self._client(authorization)
        if client is None:
            return Refusal(
                401,
                "auth.required",
                "send a client key: `Authorization: Bearer <key>` (the gateway's clients "
                f"file, {CLIENTS_ENV}, lists who may call it)",
                route,
                {"www-authenticate": 'Bearer realm="orderflow"'},
            )
        allowed = rule.scopes if rule is not None else frozenset({OPERATOR})
        if not client.scopes & allowed:
            return Refusal(
                403,
                "auth.forbidden",
                f"client {client.spec.id!r} (scopes {sorted(client.scopes)}) may not call "
                f"{method} {rule.template if rule else path}: it takes {sorted(allowed)}",
                route,
            )
        bucket = client.bucket
        if bucket is not None and not bucket.take(time.monotonic()):
            headers = {k.decode(): v.decode() for k, v in bucket.headers()}
            headers["retry-after"] = str(bucket.retry_after())
            return Refusal(
                429,
                "rate.limited",
                f"client {client.spec.id!r} is over its rate ({bucket.rate.per_second:g} "
                f"requests/s, bursts of {bucket.rate.burst}): retry after the Retry-After "
                "seconds",
                route,
                headers,
            )
        return client

    def _client(self, authorization: bytes | None) -> Client | None:
        credentials = presented(authorization)
        if credentials is None or credentials.client_id is not None:  # a bearer key only
            return None
        return self._by_digest.get(key_digest(credentials.key))


def watch_clients(path: Path) -> ClientsFileWatch:
    """The gateway's clients file, read again within a second of a change."""
    return ClientsFileWatch(path, setting=CLIENTS_ENV)


class GatewayAuth:
    """In front of the whole gateway (its hot lane included): refuses what Gatekeeper
    refuses, as problem+json, counted in the HTTP metrics under the route's template.
    With a `watch`, a changed clients file replaces the clients as the next request comes."""

    def __init__(
        self, gatekeeper: Gatekeeper, metrics: HttpMetrics, *, watch: ClientsFileWatch | None = None
    ) -> None:
        self.gatekeeper = gatekeeper
        self.metrics = metrics
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        path = scope["path"]
        if scope["type"] != "http" or path in OPEN_PATHS:
            await app(scope, receive, send)
            return
        if self.watch is not None and (clients := self.watch.changed(time.monotonic())):
            self.gatekeeper = Gatekeeper(clients, before=self.gatekeeper)
            log.info("the gateway's clients file changed: %d clients now", len(clients))
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        decided = self.gatekeeper.decide(scope["method"], path, authorization)
        if isinstance(decided, Refusal):
            await self._refuse(decided, scope, send)
            return
        bucket = decided.bucket
        if bucket is None:
            await app(scope, receive, send)
            return
        extra = bucket.headers()

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await app(scope, receive, send_with_limits)

    async def _refuse(self, refusal: Refusal, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        response = problems.problem(
            path,
            status=refusal.status,
            code=refusal.code,
            detail=refusal.detail,
            headers=refusal.headers,
        )

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)
        self.metrics.record(method, refusal.route, refusal.status, time.perf_counter() - started)


# --- command line: add a client --------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    path: Path = args.file
    doc: dict[str, Any] = {"clients": []}
    if path.exists():
        load_clients(path)  # refuse to add to a file the gateway would not take
        doc = json.loads(path.read_text())
    key = secrets.token_urlsafe(32)
    rate = None if args.rate is None else {"per_second": args.rate, "burst": args.burst or 1}
    entry = {"id": args.id, "scopes": args.scope, "key_sha256": key_digest(key), "rate": rate}
    ClientSpec.model_validate(entry)
    if any(c["id"] == args.id for c in doc["clients"]):
        print(f"{path} already has a client {args.id!r}", file=sys.stderr)
        return 2
    doc["clients"].append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    print(key)  # the only time it is shown: the file keeps its SHA-256
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.gateway.auth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="make a client key, print it, write its client in --file")
    add.add_argument("--file", type=Path, required=True, help="the clients file (JSON)")
    add.add_argument("--id", required=True, help="the client's name")
    add.add_argument(
        "--scope", action="append", required=True, choices=sorted(ALL), help="(repeatable)"
    )
    add.add_argument("--rate", type=float, help="requests a second (default: no limit)")
    add.add_argument("--burst", type=int, help="requests at once (default: 1)")
    args = parser.parse_args(argv)
    try:
        return _add(args)
    except (ClientsFileError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
