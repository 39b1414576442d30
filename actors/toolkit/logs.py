"""Structured logs: one JSON object per line, with the context of the work being done.

    configure(app=..., replica=..., level=...)   the composition roots call it once: the
        root logger writes JSON lines to stderr (the launcher's per-process log file);
        uvicorn's own loggers (errors, access log) go through the same formatter
    scope(**fields)        fields for every line logged inside a block (contextvars: the
                           actor base around a turn, the router around a delivery, the
                           gateway and shipping per request); `annotate` adds to the
                           innermost scope (a route that learns the order id)

A line:
    {"ts": "2026-05-01T12:00:00.123456Z", "level": "INFO", "app": "actor-host",
     "replica": "actor-host-1", "logger": "orderflow.saga", "msg": "order confirmed",
     "trace_id": "4bf9...", "correlation_id": "ord-...", "actor_type": "OrderActor",
     "actor_id": "ord-...", "order_id": "ord-..."}
Context keys appear only when known; an exception adds "exc". Loggers are never passed
around: modules log through `logging.getLogger("orderflow.<area>")`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import IO, Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from actors.toolkit.tracing import current_trace_id

_FIELDS: ContextVar[dict[str, str] | None] = ContextVar("log_fields", default=None)
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# daprd's and the launcher's level names too (ORDERFLOW_LOG_LEVEL serves both)
LEVELS: Final = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}


@contextlib.contextmanager
def scope(**fields: str | None) -> Iterator[dict[str, str]]:
    """Every line logged inside carries `fields` (and the enclosing scope's)."""
    merged = {**(_FIELDS.get() or {}), **{k: v for k, v in fields.items() if v}}
    token = _FIELDS.set(merged)
    try:
        yield merged
    finally:
        _FIELDS.reset(token)


def annotate(**fields: str | None) -> None:
    """Add fields to the innermost scope (nothing happens outside any scope)."""
    current = _FIELDS.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v})


def context() -> Mapping[str, str]:
    return _FIELDS.get() or {}


def open_request_scope() -> Token[dict[str, str] | None]:
    """A request's own scope (what LogScope opens; the gateway's hot lane too): close it
    with `close_request_scope(token)`. No context manager: this runs on every request."""
    return _FIELDS.set(dict(_FIELDS.get() or {}))


def close_request_scope(token: Token[dict[str, str] | None]) -> None:
    _FIELDS.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, *, app: str, replica: str) -> None:
        super().__init__()
        self.app = app
        self.replica = replica

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "app": self.app,
            "replica": self.replica,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace_id = current_trace_id()
        if trace_id:
            line["trace_id"] = trace_id
        line.update(_FIELDS.get() or {})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _timestamp(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Ours(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure` installs (and replaces when called again)."""


def configure(
    *, app: str, replica: str | None = None, level: str | None = None, stream: IO[str] | None = None
) -> None:
    """JSON lines on stderr for every logger of this process. `replica` defaults to
    ORDERFLOW_APP_NAME (the launcher's process name), `level` to ORDERFLOW_LOG_LEVEL (info)."""
    replica = replica or os.environ.get("ORDERFLOW_APP_NAME", app)
    name = (level or os.environ.get("ORDERFLOW_LOG_LEVEL", "info")).lower()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Ours)]:
        root.removeHandler(handler)
    handler = _Ours(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(app=app, replica=replica))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(name, logging.INFO))
    for uvicorn_logger in UVICORN_LOGGERS:  # their level stays uvicorn's --log-level
        logger = logging.getLogger(uvicorn_logger)
        logger.handlers.clear()
        logger.propagate = True


class LogScope:
    """Pure ASGI middleware: one log scope per request, so a route can `annotate` it and
    everything logged while it is served (uvicorn's access line too) carries the fields."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope_: Scope, receive: Receive, send: Send) -> None:
        if scope_["type"] != "http":
            await self.app(scope_, receive, send)
            return
        token = open_request_scope()
        try:
            await self.app(scope_, receive, send)
        finally:
            close_request_scope(token)
