"""What our spans cost an actor command, in one process: ratios, not thresholds.

    python -m bench.tracing [--commands N] [--rounds R]

Runs the same InventoryActor.Restock commands through the real actor pipeline (the
in-memory sidecar: SDK dispatch, parse, inbox, decide, fenced append, outbox publish),
each inside an incoming sampled traceparent as daprd sends it, in three setups, alternating
rounds, and prints the best time of each:

    stubbed   span() replaced by a constant no-op context (what is left of the tracing
              code: the `with` statements themselves)
    off       tracing not configured (no ORDERFLOW_ZIPKIN_URL, or sampling 0): the shipped
              no-op path
    on        sampling 1, every span recorded and handed to a batch processor whose
              exporter discards them (the Zipkin HTTP export runs on the processor's thread)

Also the cost of one `with span(...)` block off, against a bare `with nullcontext()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from actors.reactions import build_router
from actors.toolkit import actor as actor_module
from actors.toolkit import outbox as outbox_module
from actors.toolkit import tracing
from actors.toolkit.client import ActorClient
from actors.toolkit.testing import InMemorySidecar

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_CONSTANT = contextlib.nullcontext()


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _stub(*args: Any, **kwargs: Any) -> contextlib.AbstractContextManager[Any]:
    return _CONSTANT


@contextlib.contextmanager
def _setup(name: str) -> Iterator[None]:
    if name == "on":
        handle = tracing.configure(service="bench", zipkin_url="", sampling=1, exporter=_Discard())
        try:
            yield
        finally:
            handle.shutdown()
    elif name == "stubbed":
        modules = (vars(actor_module), vars(outbox_module))  # where span() is called
        saved = [module["span"] for module in modules]
        for module in modules:
            module["span"] = _stub
        try:
            yield
        finally:
            for module, original in zip(modules, saved, strict=True):
                module["span"] = original
    else:
        yield


async def _commands(count: int, name: str) -> float:
    actors = ActorClient(InMemorySidecar(router=build_router()))
    await actors.invoke("InventoryActor", "warm", "Restock", {"quantity": 1})
    with _setup(name), tracing.incoming(TRACEPARENT):
        started = time.perf_counter()
        for n in range(count):
            await actors.invoke("InventoryActor", f"sku-{n % 50}", "Restock", {"quantity": 1})
        return time.perf_counter() - started


def _per_block(make: Callable[[], contextlib.AbstractContextManager[Any]]) -> float:
    def block() -> None:
        with make():
            pass

    return min(timeit.repeat(block, number=200_000, repeat=5)) / 200_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    setups = ("stubbed", "off", "on")
    best = dict.fromkeys(setups, float("inf"))
    for _ in range(args.rounds):
        for name in setups:
            best[name] = min(best[name], asyncio.run(_commands(args.commands, name)))
    for name in setups:
        per = best[name] / args.commands * 1e6
        print(f"{name:<8} {args.commands} Restocks in {best[name]:.3f}s ({per:.0f} us each)")
    print(f"off / stubbed  {best['off'] / best['stubbed']:.3f}  (time ratio; 1.000 = free)")
    print(f"on / off       {best['on'] / best['off']:.3f}")
    bare = _per_block(contextlib.nullcontext)
    off = _per_block(lambda: tracing.span("decide"))
    print(
        f"one block: `with nullcontext()` {bare * 1e9:.0f} ns, `with span()` off {off * 1e9:.0f} ns"
    )


if __name__ == "__main__":
    main()
