"""Does this app's own sidecar route actor calls? A probe for operators' alerts.

Dapr 1.18.2 can wedge a sidecar (README, "Known risks"): after placement closes its stream
in the middle of a rebalance round, every actor call made through that daprd hangs, while
its health route, its metadata and placement's table look normal. The local launcher's
watchdog (cluster/watchdog.py) restarts such a daprd; elsewhere (docker-compose, `make
up`, a cluster of one's own) only an operator can, and this probe is how they learn of it.

Every `period` seconds the actor host makes a few read-only calls through its own sidecar
(`BeaconActor.Get` on `ids`, spread over the hosts by placement, side by side, each within
`timeout`) and sets two gauges (actors.toolkit.metrics.SidecarMetrics):

    orderflow_sidecar_routes_actor_calls    1 when one of the last probe's calls answered
    orderflow_sidecar_unrouted_seconds      how long none has answered (0 while they do)

`OrderflowSidecarWedged` (deploy/prometheus/alerts.yml) fires when one sidecar has routed
nothing for a while another one routes. Only a 2xx answer counts; a wedged sidecar
answers nothing at all (its calls time out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from actors.toolkit.metrics import SidecarMetrics
from actors.toolkit.sidecar import SidecarTransport, SidecarUnavailableError

log = logging.getLogger("orderflow.sidecarprobe")

PROBE_IDS = tuple(f"sidecar-probe-{n}" for n in range(4))


@dataclass
class SidecarProbe:
    transport: SidecarTransport
    metrics: SidecarMetrics
    ids: Sequence[str] = PROBE_IDS
    period: float = 15.0
    timeout: float = 3.0
    clock: Callable[[], float] = time.monotonic
    unrouted_since: float | None = field(default=None, init=False)

    async def probe(self) -> bool:
        """One round of calls; updates the gauges; whether one answered."""
        answers = await asyncio.gather(*(self._call(actor_id) for actor_id in self.ids))
        routed, now = any(answers), self.clock()
        if routed:
            if self.unrouted_since is not None:
                log.warning(
                    "actor calls through the sidecar answer again after %.0f s",
                    now - self.unrouted_since,
                )
            self.unrouted_since = None
        elif self.unrouted_since is None:
            self.unrouted_since = now
            log.warning(
                "no actor call through the sidecar answered (probe of %d ids)", len(answers)
            )
        self.metrics.routes.set(1 if routed else 0)
        self.metrics.unrouted_seconds.set(0 if routed else now - (self.unrouted_since or now))
        return routed

    async def _call(self, actor_id: str) -> bool:
        path = f"/v1.0/actors/BeaconActor/{actor_id}/method/Get"
        try:
            status, _ = await asyncio.wait_for(self.transport.request("POST", path), self.timeout)
        except (TimeoutError, SidecarUnavailableError):
            return False
        return 200 <= status < 300

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.probe()
            except Exception:  # a probe must never take the app down
                log.exception("the sidecar probe failed")


@contextlib.asynccontextmanager
async def probing(probe: SidecarProbe) -> AsyncIterator[None]:
    """`probe.run()` as a task for the block's lifetime, cancelled at its end."""
    task = asyncio.create_task(probe.run(), name="sidecar-probe")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
