"""The JSON log formatter, its context scopes and the uvicorn loggers it takes over."""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from actors.toolkit import logs
from actors.toolkit.tracing import incoming
from tests.log_lines import capturing, lines

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with capturing(app="actor-host", replica="actor-host-2") as out:
        yield out


def test_a_line_is_one_json_object_with_time_level_app_replica_logger_and_message(
    stream: io.StringIO,
) -> None:
    logging.getLogger("orderflow.saga").info("order %s", "placed")

    [line] = lines(stream)
    assert line.keys() == {"ts", "level", "app", "replica", "logger", "msg"}
    assert line["level"] == "INFO"
    assert (line["app"], line["replica"]) == ("actor-host", "actor-host-2")
    assert (line["logger"], line["msg"]) == ("orderflow.saga", "order placed")
    assert line["ts"].endswith("Z")
    stamp = dt.datetime.fromisoformat(line["ts"])
    assert abs(stamp - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_a_scope_adds_its_fields_and_the_trace_id_of_the_incoming_traceparent(
    stream: io.StringIO,
) -> None:
    log = logging.getLogger("orderflow.test")
    with (
        incoming(TRACEPARENT),
        logs.scope(actor_type="OrderActor", actor_id="ord-1", order_id="ord-1"),
    ):
        logs.annotate(correlation_id="ord-1", unknown=None)
        log.warning("inside")
    log.warning("outside")

    inside, outside = lines(stream)
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inside["actor_type"] == "OrderActor"
    assert inside["actor_id"] == inside["order_id"] == inside["correlation_id"] == "ord-1"
    assert "unknown" not in inside
    assert not {"trace_id", "actor_id", "correlation_id"} & outside.keys()


def test_nested_scopes_layer_and_annotate_outside_any_scope_changes_nothing(
    stream: io.StringIO,
) -> None:
    logs.annotate(order_id="ord-lost")
    with logs.scope(correlation_id="ord-1"), logs.scope(actor_type="InventoryActor"):
        logging.getLogger("orderflow.test").warning("both")
    logging.getLogger("orderflow.test").warning("none")

    both, none = lines(stream)
    assert (both["correlation_id"], both["actor_type"]) == ("ord-1", "InventoryActor")
    assert "order_id" not in none


def test_an_exception_is_one_line_with_its_traceback_in_exc(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("orderflow.test").exception("failed")

    [line] = lines(stream)
    assert line["msg"] == "failed"
    assert "ValueError: boom" in line["exc"]


def test_uvicorns_loggers_go_through_the_same_formatter_at_their_own_level(
    stream: io.StringIO,
) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler(io.StringIO()))  # as uvicorn's dictConfig
    logs.configure(app="gateway", replica="gateway", level="info", stream=stream)

    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /orders HTTP/1.1" 200')

    [line] = lines(stream)
    assert (line["logger"], line["app"]) == ("uvicorn.access", "gateway")
    assert uvicorn_error.handlers == []
    assert uvicorn_error.propagate


def test_configure_again_replaces_its_handler_and_reads_daprds_level_names(
    stream: io.StringIO,
) -> None:
    logs.configure(app="shipping", replica="shipping", level="warn", stream=stream)

    logging.getLogger("orderflow.test").info("dropped")
    logging.getLogger("orderflow.test").warning("kept")

    [line] = lines(stream)
    assert (line["app"], line["msg"]) == ("shipping", "kept")
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logs._Ours)]
    assert len(ours) == 1


async def test_log_scope_gives_each_request_fields_of_its_own(stream: io.StringIO) -> None:
    seen: list[dict[str, str]] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        logs.annotate(order_id=scope["path"].rsplit("/", 1)[-1])
        logging.getLogger("orderflow.test").warning("served")
        seen.append(dict(logs.context()))

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        return None

    middleware = logs.LogScope(route)
    with logs.scope(correlation_id="outer"):
        await middleware({"type": "http", "path": "/orders/ord-1"}, receive, send)
        await middleware({"type": "http", "path": "/orders/ord-2"}, receive, send)
        after = dict(logs.context())

    first, second = lines(stream)
    assert (first["order_id"], second["order_id"]) == ("ord-1", "ord-2")
    assert seen == [
        {"correlation_id": "outer", "order_id": "ord-1"},
        {"correlation_id": "outer", "order_id": "ord-2"},
    ]
    assert after == {"correlation_id": "outer"}  # a request's annotations stay its own
    assert logs.context() == {}
