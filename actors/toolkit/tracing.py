"""W3C trace context of the work being done, and the apps' own spans (exported to Zipkin).

    TraceContextMiddleware   keeps the incoming `traceparent` header in a context variable;
                             with `server_span=True` also wraps the request in a span
    span(name, **attrs)      a child of the current span, else of the incoming traceparent;
                             a shared no-op when tracing is off (one global read)
    current_traceparent()    the current span's traceparent, else the incoming header: what
                             events published here and calls made from here carry on
    configure(service=...)   the process's tracer: parent-based sampling at `sampling`,
                             a batch span processor exporting to Zipkin; `Tracing.shutdown`

Tracing is off (no tracer, every `span` a no-op) unless a composition root configured it
with a Zipkin URL and a sampling rate above 0. Off or on, the incoming traceparent is kept
and forwarded, so daprd's own spans still join across hops.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Final

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_TRACEPARENT: ContextVar[str] = ContextVar("traceparent", default="")
_TRACEPARENT_SHAPE: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NOOP: Final = contextlib.nullcontext()
# FastAPI's own OpenTelemetry instrumentation reads the global providers, which nothing
# here sets (our spans have their own provider): it never records, yet checks on every
# request whether it should. The apps turn it off (FastAPI(telemetry=...)).
NO_FASTAPI_TELEMETRY: Final[TelemetryConfig] = {"tracing": False, "metrics": False, "logs": False}
_tracer: trace.Tracer | None = None  # set by `configure`, process-wide


def current_traceparent() -> str:
    if _tracer is not None:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    return _TRACEPARENT.get()


def trace_id_of(traceparent: str) -> str:
    """The 32 hex digits of a W3C traceparent's trace id ("" if it is not one)."""
    match = _TRACEPARENT_SHAPE.fullmatch(traceparent)
    return match[1] if match else ""


def current_trace_id() -> str:
    return trace_id_of(current_traceparent())


def span(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, child of the current one (or of the incoming traceparent)."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    return tracer.start_as_current_span(
        name, context=_parent(), kind=kind, attributes=_clean(attributes)
    )


def _parent() -> otel_context.Context | None:
    """None (the current context) inside one of our spans, else the incoming traceparent."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    match = _TRACEPARENT_SHAPE.fullmatch(_TRACEPARENT.get())
    if match is None:
        return None  # a root span
    remote = SpanContext(
        trace_id=int(match[1], 16),
        span_id=int(match[2], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match[3], 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key.replace("__", "."): value for key, value in attributes.items() if value is not None}


@dataclass(frozen=True)
class Tracing:
    """The process's tracer provider; `shutdown` flushes what the batch still holds."""

    provider: TracerProvider | None = None

    def shutdown(self) -> None:
        global _tracer
        _tracer = None
        if self.provider is not None:
            self.provider.shutdown()


def configure(
    *, service: str, zipkin_url: str, sampling: float, instance: str = "", exporter: Any = None
) -> Tracing:
    """Turn our spans on for this process (off when there is no URL or sampling is 0).

    Sampling is parent-based: a span with a remote parent follows the parent's sampled
    flag (daprd decided with the same ORDERFLOW_TRACE_SAMPLING); a root span is sampled
    with probability `sampling`. `exporter` replaces the Zipkin exporter (tests)."""
    global _tracer
    if sampling <= 0 or not (zipkin_url or exporter is not None):
        return Tracing()
    if exporter is None:
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        exporter = ZipkinExporter(endpoint=zipkin_url, timeout=5)
    attributes = {"service.name": service}
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(min(sampling, 1.0))),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = provider.get_tracer("orderflow")
    return Tracing(provider)


def configure_from_env(service: str, env: Mapping[str, str], *, instance: str = "") -> Tracing:
    """`configure` from ORDERFLOW_ZIPKIN_URL and ORDERFLOW_TRACE_SAMPLING (default 1),
    which the launcher sets for every app."""
    return configure(
        service=service,
        zipkin_url=env.get("ORDERFLOW_ZIPKIN_URL", ""),
        sampling=float(env.get("ORDERFLOW_TRACE_SAMPLING", "1") or 0),
        instance=instance,
    )


def enter_request(scope: Scope) -> Token[str]:
    """Keep the request's `traceparent` header (what TraceContextMiddleware does; the
    gateway's hot lane too); `leave_request(token)` when it is answered."""
    value = ""
    for name, raw in scope["headers"]:
        if name == b"traceparent":
            value = raw.decode("latin-1")[:128]
            break
    return _TRACEPARENT.set(value)


def leave_request(token: Token[str]) -> None:
    _TRACEPARENT.reset(token)


def records_spans() -> bool:
    """Whether this process makes spans of its own (a tracer is configured)."""
    return _tracer is not None


class TraceContextMiddleware:
    """Keeps the request's `traceparent`; with `server_span`, one span per request, named
    after the route template Starlette matched (`POST /orders`)."""

    def __init__(self, app: ASGIApp, *, server_span: bool = False) -> None:
        self.app = app
        self.server_span = server_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = enter_request(scope)
        try:
            if self.server_span and _tracer is not None:
                await self._spanned(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            leave_request(token)

    async def _spanned(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        with span(f"{method} {scope['path']}", kind=SpanKind.SERVER) as current:
            status = 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    current.update_name(f"{method} {route}")
                current.set_attribute("http.method", method)
                current.set_attribute("http.route", route or "unmatched")
                current.set_attribute("http.status_code", status)
                if status >= 500:
                    current.set_status(trace.StatusCode.ERROR)


@contextlib.contextmanager
def incoming(traceparent: str) -> Iterator[None]:
    """Work on behalf of `traceparent` outside a request (tests, scripts)."""
    token = _TRACEPARENT.set(traceparent)
    try:
        yield
    finally:
        _TRACEPARENT.reset(token)
