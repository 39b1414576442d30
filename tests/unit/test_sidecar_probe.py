"""The actor host's probe of its own sidecar (actors/toolkit/sidecarprobe.py): its gauges.

A stand-in transport plays the sidecar: answering, hanging (a wedged daprd), refusing the
connection or answering an error. The alert on these gauges is tested by promtool
(deploy/prometheus/alerts_test.yml, tests/unit/test_alert_rules.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from actors.toolkit.metrics import SidecarMetrics, new_registry, render
from actors.toolkit.sidecar import SidecarUnavailableError
from actors.toolkit.sidecarprobe import SidecarProbe, probing


class Sidecar:
    """Answers every probe call as `mode` says; records the paths."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.paths: list[str] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        self.paths.append(f"{method} {path}")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "refuse":
            raise SidecarUnavailableError("connection refused")
        if self.mode == "error":
            return 500, b'{"errorCode": "ERR_ACTOR_INVOKE_METHOD"}'
        return 200, b'{"ok": true}'


def _gauges(registry: CollectorRegistry) -> tuple[float, float]:
    text = render(registry).decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("orderflow_sidecar_")
    }
    return (
        values["orderflow_sidecar_routes_actor_calls"],
        values["orderflow_sidecar_unrouted_seconds"],
    )


def _probe(sidecar: Sidecar, clock: list[float]) -> tuple[SidecarProbe, CollectorRegistry]:
    registry = new_registry()
    probe = SidecarProbe(sidecar, SidecarMetrics(registry), timeout=0.05, clock=lambda: clock[0])
    return probe, registry


async def test_a_sidecar_that_answers_routes_and_has_been_unrouted_for_no_time() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, registry = _probe(sidecar, clock)
    assert _gauges(registry) == (1.0, 0.0)  # before the first probe: nothing against it

    assert await probe.probe() is True

    assert _gauges(registry) == (1.0, 0.0)
    assert sidecar.paths == [
        f"POST /v1.0/actors/BeaconActor/sidecar-probe-{n}/method/Get" for n in range(4)
    ]


async def test_a_hanging_sidecar_counts_unrouted_seconds_until_it_answers_again() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, registry = _probe(sidecar, clock)
    sidecar.mode = "hang"

    assert await probe.probe() is False
    assert _gauges(registry) == (0.0, 0.0)  # the first failure starts the count
    clock[0] = 145.0
    assert await probe.probe() is False
    assert _gauges(registry) == (0.0, 45.0)

    sidecar.mode = "answer"
    clock[0] = 160.0
    assert await probe.probe() is True
    assert _gauges(registry) == (1.0, 0.0)
    sidecar.mode = "hang"
    clock[0] = 170.0
    assert await probe.probe() is False
    clock[0] = 175.0
    await probe.probe()
    assert _gauges(registry) == (0.0, 5.0)  # a new count, not the old one's


async def test_a_refused_connection_or_an_error_answer_is_not_routed() -> None:
    for mode in ("refuse", "error"):
        sidecar, clock = Sidecar(), [100.0]
        probe, registry = _probe(sidecar, clock)
        sidecar.mode = mode
        assert await probe.probe() is False, mode
        clock[0] = 130.0
        await probe.probe()
        assert _gauges(registry) == (0.0, 30.0), mode


async def test_one_answer_of_the_round_is_enough() -> None:
    """Calls to the actors placed on a wedged peer hang; this sidecar still routes."""
    sidecar, clock = Sidecar(), [100.0]
    probe, registry = _probe(sidecar, clock)
    answered = 0

    async def request(method: str, path: str, **_: object) -> tuple[int, bytes]:
        nonlocal answered
        if path.endswith("sidecar-probe-2/method/Get"):
            answered += 1
            return 200, b"{}"
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    sidecar.request = request  # type: ignore[method-assign]
    assert await probe.probe() is True
    assert answered == 1
    assert _gauges(registry) == (1.0, 0.0)


async def test_the_probe_runs_every_period_for_the_block_and_stops_with_it() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, _ = _probe(sidecar, clock)
    probe.period = 0.01

    two_rounds = asyncio.Event()
    original = sidecar.request

    async def request(method: str, path: str, **kwargs: object) -> tuple[int, bytes]:
        answer = await original(method, path)
        if len(sidecar.paths) >= 8:
            two_rounds.set()
        return answer

    sidecar.request = request  # type: ignore[method-assign]
    async with probing(probe):
        await asyncio.wait_for(two_rounds.wait(), timeout=10)
    seen = len(sidecar.paths)
    await asyncio.sleep(0.05)

    assert seen >= 8
    assert len(sidecar.paths) == seen  # no round after the block
