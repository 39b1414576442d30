"""Recording our spans in memory (tests): `with recording() as r: ...; r.spans()`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.toolkit import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE}-{PARENT}-01"
NOT_SAMPLED = f"00-{TRACE}-{PARENT}-00"


class Recorded:
    def __init__(self, handle: tracing.Tracing, exporter: InMemorySpanExporter) -> None:
        self.handle, self.exporter = handle, exporter

    def finished(self) -> list[ReadableSpan]:
        assert self.handle.provider is not None
        self.handle.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def spans(self) -> dict[str, ReadableSpan]:
        """The finished spans by name (the last of each name)."""
        return {s.name: s for s in self.finished()}


@contextlib.contextmanager
def recording(sampling: float = 1.0) -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    handle = tracing.configure(
        service="orderflow-test", zipkin_url="", sampling=sampling, exporter=exporter
    )
    try:
        yield Recorded(handle, exporter)
    finally:
        handle.shutdown()
