"""The actor host's probe of its own sidecar (actors/toolkit/sidecarprobe.py): its gauges,
and the self-heal that asks a wedged sidecar to shut down.

A stand-in transport plays the sidecar: answering, hanging (a wedged daprd), answering
late (a slow one), refusing the connection or answering an error; its metadata says
whether placement is connected. The alert on these gauges is tested by promtool
(deploy/prometheus/alerts_test.yml, tests/unit/test_alert_rules.py); the self-heal of a
real wedged daprd by tests/integration/test_watchdog.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from actors.toolkit.metrics import SidecarMetrics, new_registry, render
from actors.toolkit.sidecar import SidecarUnavailableError
from actors.toolkit.sidecarprobe import SidecarProbe, probing


class Sidecar:
    """Answers every probe call as `mode` says; records the paths."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.placement = "placement: connected"
        self.paths: list[str] = []
        self.shutdowns = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        if path == "/v1.0/metadata":
            ready = self.placement == "placement: connected"
            runtime = {"placement": self.placement, "hostReady": ready}
            return 200, json.dumps({"actorRuntime": runtime}).encode()
        if path == "/v1.0/shutdown":
            self.shutdowns += 1
            return 204, b""
        self.paths.append(f"{method} {path}")
        if self.mode == "slow":  # later than the short calls' 0.05 s, within the patient's
            await asyncio.sleep(0.2)
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
    """A probe of `sidecar` with short calls and the test's clock."""
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


def _healing(sidecar: Sidecar, clock: list[float]) -> tuple[SidecarProbe, CollectorRegistry]:
    probe, registry = _probe(sidecar, clock)
    probe.heal_after = 20.0
    return probe, registry


def _self_heals(registry: CollectorRegistry) -> float:
    text = render(registry).decode()
    return next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("orderflow_sidecar_self_heals_total")
    )


async def _probes_at(probe: SidecarProbe, clock: list[float], *times: float) -> None:
    slow = probe.transport.mode == "slow"  # type: ignore[attr-defined]
    for at in times:
        clock[0] = at
        await probe.probe()
        if slow:
            await asyncio.sleep(0.3)  # its patient call answers meanwhile


async def test_a_sidecar_whose_calls_all_hang_for_the_bound_is_asked_to_shut_down_once() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, registry = _healing(sidecar, clock)
    sidecar.mode = "hang"

    await _probes_at(probe, clock, 100.0, 110.0)
    assert sidecar.shutdowns == 0  # 10 s of hanging: not yet
    await _probes_at(probe, clock, 120.0)
    assert sidecar.shutdowns == 1
    assert _self_heals(registry) == 1

    # still hanging (no supervisor started a new one yet): no second ask before 2 x 20 s
    await _probes_at(probe, clock, 125.0, 140.0, 150.0)
    assert sidecar.shutdowns == 1
    await _probes_at(probe, clock, 161.0)
    assert sidecar.shutdowns == 2


async def test_hanging_calls_while_placement_is_disconnected_are_not_a_wedge() -> None:
    """With placement down every actor call hangs too, and a new daprd would not help."""
    sidecar, clock = Sidecar(), [100.0]
    probe, registry = _healing(sidecar, clock)
    sidecar.mode, sidecar.placement = "hang", "placement: disconnected"

    await _probes_at(probe, clock, 100.0, 120.0, 140.0, 160.0)

    assert sidecar.shutdowns == 0
    assert _self_heals(registry) == 0
    assert _gauges(registry) == (0.0, 60.0)  # the alert still sees it


async def test_a_sidecar_that_refuses_or_answers_errors_is_never_asked_to_shut_down() -> None:
    """Down, restarting, or answering errors (Redis down): a daprd that answers is not
    wedged, and one that is not there cannot be shut down."""
    for mode in ("refuse", "error"):
        sidecar, clock = Sidecar(), [100.0]
        probe, _ = _healing(sidecar, clock)
        sidecar.mode = mode
        await _probes_at(probe, clock, 100.0, 120.0, 140.0, 160.0)
        assert sidecar.shutdowns == 0, mode
        assert probe.patient is None, mode  # no call hung: no patient call either


async def test_a_slow_sidecar_answers_its_patient_call_and_is_spared() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, _ = _healing(sidecar, clock)
    sidecar.mode = "slow"  # every short call times out, every patient call answers

    await _probes_at(probe, clock, 100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 160.0)

    assert sidecar.shutdowns == 0
    assert probe.hung_since == 160.0  # spared at 120 and at 140 or later: counting again


async def test_a_slow_sidecar_that_then_wedges_is_asked_to_shut_down() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, _ = _healing(sidecar, clock)
    sidecar.mode = "slow"
    await _probes_at(probe, clock, 100.0, 110.0, 120.0)  # spared at 120
    assert sidecar.shutdowns == 0

    sidecar.mode = "hang"  # the patient call started at 120 never answers
    await _probes_at(probe, clock, 130.0)
    assert sidecar.shutdowns == 0  # 10 s since the count began again
    await _probes_at(probe, clock, 140.0)
    assert sidecar.shutdowns == 1


async def test_an_answer_ends_the_count_and_the_patient_call() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, _ = _healing(sidecar, clock)
    sidecar.mode = "hang"
    await _probes_at(probe, clock, 100.0, 115.0)
    patient = probe.patient
    assert patient is not None

    sidecar.mode = "answer"
    await _probes_at(probe, clock, 118.0)
    sidecar.mode = "hang"
    await _probes_at(probe, clock, 125.0, 135.0)

    assert sidecar.shutdowns == 0  # hanging since 125: 10 s, not 35
    assert patient.task.cancelled()


async def test_without_a_bound_the_probe_only_reports() -> None:
    sidecar, clock = Sidecar(), [100.0]
    probe, _ = _probe(sidecar, clock)  # heal_after 0: the default
    sidecar.mode = "hang"

    await _probes_at(probe, clock, 100.0, 200.0, 300.0)

    assert sidecar.shutdowns == 0
    assert probe.patient is None


class Placed(Sidecar):
    """Answers as BeaconActor does, naming the replica each id is placed on; the ids on a
    `frozen` replica hang (its app is stopped: its daprd still holds placement's lease)."""

    def __init__(self, homes: dict[str, str]) -> None:
        super().__init__()
        self.homes = homes  # actor id -> the replica placement put it on
        self.frozen = ""

    async def request(self, method: str, path: str, **_: object) -> tuple[int, bytes]:
        if path == "/v1.0/metadata" or path == "/v1.0/shutdown":
            return await super().request(method, path)
        self.paths.append(f"{method} {path}")
        replica = self.homes.get(path.split("/")[4], "peer")
        if replica == self.frozen:
            await asyncio.sleep(3600)
        return 200, json.dumps({"ok": True, "result": {"replica": replica}}).encode()


async def test_the_probe_adds_ids_until_one_is_served_by_its_own_app() -> None:
    placed, clock = Placed({"sidecar-probe-5": "here"}), [100.0]  # the others: the peer's
    probe, _ = _probe(placed, clock)
    probe.replica = "here"

    for _ in range(4):
        await probe.probe()

    assert list(probe.ids) == [f"sidecar-probe-{n}" for n in range(6)]  # 4, 5, then no more
    assert probe.served_here


async def test_a_frozen_peer_does_not_make_a_healthy_sidecar_look_wedged() -> None:
    """Calls to the frozen peer's actors hang through a healthy sidecar too; the probe's
    own id still answers, so nothing counts as hung and nothing is shut down."""
    placed, clock = Placed({"sidecar-probe-4": "here"}), [100.0]
    probe, registry = _probe(placed, clock)
    probe.replica, probe.heal_after = "here", 20.0
    await probe.probe()  # adds sidecar-probe-4, placed here

    placed.frozen = "peer"
    await _probes_at(probe, clock, 110.0, 130.0, 150.0, 170.0)

    assert placed.shutdowns == 0
    assert _gauges(registry) == (1.0, 0.0)


async def test_without_an_id_of_its_own_a_frozen_peer_does_look_wedged() -> None:
    """Why the probe keeps one: the same freeze, every id on the peer, no replica known."""
    placed, clock = Placed({}), [100.0]
    probe, _ = _probe(placed, clock)
    probe.heal_after = 20.0

    placed.frozen = "peer"
    await _probes_at(probe, clock, 100.0, 110.0, 121.0)

    assert placed.shutdowns == 1
