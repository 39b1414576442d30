"""The gateway's hot commands, served from the top of the app, beneath the ASGI server.

`POST /orders` (the saga's start), `POST /wallets/{customer_id}/deposit` (what `make bench`
drives) and `POST /inventory/{sku}/restock` take at most one path parameter, one small JSON
body and an Idempotency-Key (the order's required), make one actor call and answer one
view (the order's with `Location` and `Aggregate-Version` set on FastAPI's response
object, which the lane passes and merges as FastAPI does). Through FastAPI's
routing, dependency solving cost more of the gateway's CPU than the actor call (py-spy:
solve_dependencies 21 %, route matching 10 % of its busy samples under 32 workers), and
the layers around the routes (Starlette's and FastAPI's, and our metrics, trace context,
log scope and body limit middlewares) each wrap every request again.

`GatewayApp.__call__` hands each request to `HotLane` first. The lane serves it only when
FastAPI would accept it: the path parameters and the body pass the very validators
FastAPI built for the route, the Idempotency-Key is there if required and passes `deps`'
rule, the body is
`application/json` and within the body limit, the lifespan put an actor client on the
app, no dependency is overridden, and this process makes no spans of its own (with
tracing on, the middlewares' path makes the server span). It then calls the route's own
endpoint and answers with the route's response field, as FastAPI does, and does itself
what the layers it skips would have done: the request's metrics under its route
template, its log scope and trace context, `scope["route"]`. Anything else goes to
FastAPI's stack with the body replayed, so every refusal (422, 400, 413...) is FastAPI's
and the problems module's own answer. An error the actor call raises is answered by the
app's handler for its class, as ExceptionMiddleware would; any other by the app's
Exception handler (a 500), then raised for the server's log, as ServerErrorMiddleware
does.

The routes are read as the app serves them, after `include_router` (its prefix and
dependencies count: apps.gateway.hotroutes). One that declares more than this lane
provides (a query or header parameter, a dependency it does not know, such as an auth
check added where the router is included, the request object, a response class or body
limit of its own) makes `hot_routes` raise at startup rather than be served here without
it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.exceptions import ResponseValidationError
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.toolkit import codec, logs, tracing
from actors.toolkit.client import ActorClient, TypedClient
from actors.toolkit.fastpath import header as _header
from actors.toolkit.metrics import HttpMetrics
from apps.gateway import deps
from apps.gateway.hotroutes import HotCommand

# What app.exception_handlers holds (ours are all `async def (request, exc) -> Response`).
Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


class _Declined(Exception):
    """The request is not one the lane serves: FastAPI answers it."""


class HotLane:
    """Serves `commands` from the top of the gateway app (see the module docstring):
    `GatewayApp.__call__` hands it every request, and it answers the ones it can."""

    def __init__(
        self,
        app: FastAPI,
        commands: Sequence[HotCommand],
        *,
        metrics: HttpMetrics,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.commands = tuple(commands)
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    def match(self, scope: Scope) -> tuple[HotCommand, dict[str, str]] | None:
        """The command a request names and its raw path parameters, if the lane may serve
        it (no span of ours to make: with tracing on, the middlewares' path makes it)."""
        if scope["type"] != "http" or scope.get("root_path") or tracing.records_spans():
            return None
        method, path = scope["method"], scope["path"]
        for command in self.commands:
            if method in command.methods and (found := command.path_regex.match(path)):
                return command, found.groupdict()
        return None

    async def serve(
        self,
        found: tuple[HotCommand, dict[str, str]],
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        otherwise: ASGIApp,
    ) -> None:
        """Answer the request `match` found, or hand it to `otherwise` (FastAPI's stack)
        with its body replayed."""
        messages: list[Message] = []
        try:
            body = await self._read_body(scope, receive, messages)
        except _Declined:
            await otherwise(scope, _replay(messages, receive), send)
            return
        if not await self.run(found, scope, body, receive, send):
            await otherwise(scope, _replay(messages, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive, messages: list[Message]) -> bytes:
        """The whole body, each message kept in `messages` for a replay; _Declined for a
        body over the limit (declared or not: the body limit's 413) or a disconnect."""
        length = _header(scope, b"content-length")
        if length is not None and not (length.isdigit() and int(length) <= self.max_body_bytes):
            raise _Declined  # the 413 (or a malformed length: FastAPI's say)
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                raise _Declined
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                raise _Declined
            if not message.get("more_body", False):
                break
        if len(messages) == 1:
            body: bytes = messages[0].get("body", b"")
            return body
        return b"".join(m.get("body", b"") for m in messages)

    async def run(
        self,
        found: tuple[HotCommand, dict[str, str]],
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> bool:
        """Answer the request (True), or False if FastAPI must (nothing was done). An
        error no handler takes is answered by the Exception handler, then raised."""
        command, raw_params = found
        try:
            kwargs = self._arguments(command, raw_params, scope, body)
        except _Declined:
            return False
        route = command.route
        scope["app"] = self.app  # as Starlette sets it: what a handler's Request reads
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, raw_params
        status, started = 500, time.perf_counter()  # 500 unless answered (as the metrics' layer)
        log_scope, trace_context = logs.open_request_scope(), tracing.enter_request(scope)
        answering = False
        try:
            response = await self._answer(command, kwargs, scope, receive)
            status, answering = response.status_code, True
            await response(scope, receive, send)
        except Exception as exc:  # no handler took it: ServerErrorMiddleware's answer
            if not answering:
                failed = await self._unexpected(exc, scope, receive)
                await failed(scope, receive, send)
            raise  # for the server's log, as Starlette re-raises
        finally:
            seconds = time.perf_counter() - started
            self.metrics.record(scope["method"], route.path, status, seconds)
            tracing.leave_request(trace_context)
            logs.close_request_scope(log_scope)
        return True

    async def _answer(
        self, command: HotCommand, kwargs: dict[str, Any], scope: Scope, receive: Receive
    ) -> Response:
        """The endpoint's answer, serialized as FastAPI does, or the answer of the app's
        handler for what it raised (as ExceptionMiddleware picks it)."""
        try:
            answer = await command.route.endpoint(**kwargs)
            if isinstance(answer, Response):
                return answer
            sub = kwargs.get(command.response_param) if command.response_param else None
            return _serialized(command, answer, sub)
        except Exception as exc:
            handler = _handler_for(self.app.exception_handlers, exc)
            if handler is None:
                raise
            handled = handler(Request(scope, receive), exc)
            return await handled if inspect.isawaitable(handled) else handled

    async def _unexpected(self, exc: Exception, scope: Scope, receive: Receive) -> Response:
        handler = self.app.exception_handlers.get(Exception)
        if handler is None:
            return PlainTextResponse("Internal Server Error", status_code=500)
        handled = handler(Request(scope, receive), exc)
        return await handled if inspect.isawaitable(handled) else handled

    def _arguments(
        self, command: HotCommand, raw_params: dict[str, str], scope: Scope, body: bytes
    ) -> dict[str, Any]:
        """The endpoint's arguments, or _Declined."""
        content_type, key = _header(scope, b"content-type"), _header(scope, b"idempotency-key")
        actors: ActorClient | None = getattr(self.app.state, "actors", None)
        if actors is None or self.app.dependency_overrides or content_type != "application/json":
            raise _Declined
        kwargs: dict[str, Any] = {}
        for field in command.path_params:
            convertor = command.convertors[field.alias]
            kwargs[field.name] = _valid(field, convertor.convert(raw_params[field.alias]))
        try:  # UTF-8 only (json.loads would sniff UTF-16/32 from bytes): FastAPI takes the rest
            document = codec.loads(body.decode())
        except ValueError:  # UnicodeDecodeError included
            raise _Declined from None
        kwargs[command.body.name] = _valid(command.body, document)
        if command.key_param is not None:
            if key is None and command.key_required:
                raise _Declined  # the dependency's 400
            if key is not None and deps.KEY_PATTERN.fullmatch(key) is None:
                raise _Declined
            kwargs[command.key_param] = key
        if command.response_param is not None:
            kwargs[command.response_param] = _sub_response()
        for name, spec in command.clients:
            kwargs[name] = TypedClient(actors, spec)
        return kwargs


def _valid(field: ModelField, value: Any) -> Any:
    validated, errors = field.validate(value)
    if errors:
        raise _Declined
    return validated


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(reversed(messages))

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _sub_response() -> Response:
    """The response object FastAPI passes an endpoint that asks for one: headers and a
    status it may set, merged into the answer (`_serialized`)."""
    sub = Response()
    del sub.headers["content-length"]
    sub.status_code = None  # type: ignore[assignment]  # "not set", as FastAPI marks it
    return sub


def _serialized(command: HotCommand, answer: Any, sub: Response | None) -> Response:
    """The answer as FastAPI serializes a route's return value (its response field), with
    the status and headers the endpoint set on its response object, if it took one."""
    value, errors = command.response.validate(answer, loc=("response",))
    if errors:
        raise ResponseValidationError(errors, body=answer)
    content = command.response.serialize_json(value, **command.dump)
    status = sub.status_code if sub is not None and sub.status_code else command.status_code
    response = Response(content, status_code=status, media_type="application/json")
    if not is_body_allowed_for_status_code(status):
        response.body = b""
    if sub is not None:
        response.headers.raw.extend(sub.headers.raw)
    return response


def _handler_for(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    """The handler ExceptionMiddleware would pick: by status for an HTTPException, then by
    class; None for what only the Exception handler (ServerErrorMiddleware's) takes."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
