"""Does this app's own sidecar route actor calls? A probe for alerts, and an optional self-heal.

Dapr 1.18.2 can wedge a sidecar (README, "Known risks"): after placement closes its stream
in the middle of a rebalance round, every actor call made through that daprd hangs, while
its health route, its metadata and placement's table look normal. The local launcher's
watchdog (cluster/watchdog.py, in `make run`, beside `make up` and in the chaos suite)
restarts such a daprd from the outside. Elsewhere (docker-compose, Kubernetes, `make
dapr-run`) nothing outside does, and this probe is how operators learn of it, and, where
a supervisor starts the sidecar again, how it heals itself.

Every `period` seconds (every `failing_period` while its calls fail) the actor host makes
a few read-only calls through its own sidecar (`BeaconActor.Get` on `ids`, spread over the
hosts by placement, side by side, each within `timeout`) and sets two gauges
(actors.toolkit.metrics.SidecarMetrics):

    orderflow_sidecar_routes_actor_calls    1 when one of the last probe's calls answered
    orderflow_sidecar_unrouted_seconds      how long none has answered (0 while they do)

`OrderflowSidecarWedged` (deploy/prometheus/alerts.yml) fires when one sidecar has routed
nothing for a while another one routes. Only a 2xx answer counts.

**Self-heal** (`heal_after` > 0 seconds, `ORDERFLOW_SIDECAR_SELF_HEAL_S`; off by default).
The probe asks its daprd to shut down (`POST /v1.0/shutdown`, which a wedged daprd still
honours: it exits within ~3 s) once the sidecar looks wedged, and nothing else:

- every call of every probe has *hung* (timed out) for `heal_after` seconds: a daprd that
  answers, even with errors, or refuses the connection (down, restarting) is not wedged;
- its metadata says placement is connected and the host ready (`actorRuntime.placement`,
  `hostReady`): with placement down, calls hang too, and a restart would not help;
- it is not merely slow: from the first hung probe one *patient* call stays in flight,
  allowed `heal_after` seconds. A wedged daprd answers none; a daprd on a starved box
  answers late, and then the count starts again (reported "slow, not wedged"), unless
  the patient call now in flight has already hung for half of `heal_after`.

A frozen *peer* is not a wedge: the calls to the actors placed on it hang, through a
healthy sidecar too. So the probe keeps an id of its own among `ids`: after a round in
which no answer named this app's `replica` (BeaconActor's answers name the replica that
served them), it adds one more id (up to MAX_PROBE_IDS), until placement puts one here.
With an actor of its own among them, a healthy sidecar routes at least that call.

What starts the sidecar again is the supervisor's job: the daprd container's restart
policy in docker-compose (`restart: unless-stopped`) and in Kubernetes (the pod's). Leave
it off where none does (`make dapr-run`) and where the launcher's watchdog runs (the
local cluster): a daprd that exits there stays down, or is the launcher's to restart.
After a shutdown the probe waits twice `heal_after` before it would ask again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from actors.toolkit import codec
from actors.toolkit.metrics import SidecarMetrics
from actors.toolkit.sidecar import SidecarTransport, SidecarUnavailableError

log = logging.getLogger("orderflow.sidecarprobe")

PROBE_IDS = tuple(f"sidecar-probe-{n}" for n in range(4))
MAX_PROBE_IDS = 16
FAILING_PERIOD_S = 5.0
Outcome = Literal["answered", "hung", "failed"]


@dataclass
class Patient:
    """The patient call in flight through a hung sidecar, and when it started."""

    task: asyncio.Task[Outcome]
    started: float


@dataclass
class SidecarProbe:
    transport: SidecarTransport
    metrics: SidecarMetrics
    ids: Sequence[str] = PROBE_IDS
    # this app's replica name, as BeaconActor's answers name the replica that served them:
    # the probe adds ids until one lives here (module docstring)
    replica: str = ""
    period: float = 15.0
    timeout: float = 3.0
    heal_after: float = 0.0  # 0: never ask the sidecar to shut down (module docstring)
    failing_period: float = FAILING_PERIOD_S
    clock: Callable[[], float] = time.monotonic
    unrouted_since: float | None = field(default=None, init=False)
    hung_since: float | None = field(default=None, init=False)  # every call hung since
    patient: Patient | None = field(default=None, init=False)
    slow_answer_at: float | None = field(default=None, init=False)  # a patient call's answer
    healed_at: float | None = field(default=None, init=False)
    served_here: bool = field(default=False, init=False)  # this round: an id lives here

    async def probe(self) -> bool:
        """One round of calls; updates the gauges (and may heal); whether one answered."""
        self.served_here = False
        outcomes = await asyncio.gather(*(self._call(actor_id) for actor_id in self.ids))
        routed, now = "answered" in outcomes, self.clock()
        if routed:
            self._keep_an_id_served_here()
            if self.unrouted_since is not None:
                log.warning(
                    "actor calls through the sidecar answer again after %.0f s",
                    now - self.unrouted_since,
                )
            self._forget_failure()
        else:
            if self.unrouted_since is None:
                self.unrouted_since = now
                log.warning(
                    "no actor call through the sidecar answered (probe of %d ids)", len(outcomes)
                )
            self.hung_since = (self.hung_since or now) if set(outcomes) == {"hung"} else None
        self.metrics.routes.set(1 if routed else 0)
        self.metrics.unrouted_seconds.set(0 if routed else now - (self.unrouted_since or now))
        if self.heal_after > 0 and self.hung_since is not None:
            await self._consider_healing(now)
        return routed

    def _keep_an_id_served_here(self) -> None:
        """One more id when none of this round's was served by this app: with an actor of
        its own among them, a frozen peer (whose actors' calls all hang) cannot make a
        healthy sidecar look wedged; a wedged one hangs the calls to its own app's too."""
        if self.replica and not self.served_here and len(self.ids) < MAX_PROBE_IDS:
            self.ids = (*self.ids, f"sidecar-probe-{len(self.ids)}")

    def _forget_failure(self) -> None:
        self.unrouted_since = self.hung_since = self.slow_answer_at = None
        if self.patient is not None:
            self.patient.task.cancel()
            self.patient = None

    async def _call(self, actor_id: str, *, patient: bool = False) -> Outcome:
        path = f"/v1.0/actors/BeaconActor/{actor_id}/method/Get"
        try:
            status, body = await asyncio.wait_for(
                self.transport.request("POST", path), self.heal_after if patient else self.timeout
            )
        except TimeoutError:
            return "hung"
        except SidecarUnavailableError:
            return "failed"
        if not 200 <= status < 300:
            return "failed"
        if self.replica and _served_by(body) == self.replica:
            self.served_here = True
        return "answered"

    async def _consider_healing(self, now: float) -> None:
        self._keep_a_patient_call(now)
        if self.hung_since is None or now - self.hung_since < self.heal_after:
            return
        if self.healed_at is not None and now - self.healed_at < 2 * self.heal_after:
            return
        if self._only_slow(now):
            log.warning(
                "the sidecar is slow, not wedged: a patient actor call answered while the "
                "short ones timed out; not asking it to shut down"
            )
            self.hung_since, self.slow_answer_at = now, None
            return
        if await self._placement_ready():
            await self._shut_down(now)

    def _keep_a_patient_call(self, now: float) -> None:
        """One patient call in flight from the first hung probe (module docstring)."""
        current = self.patient
        if current is not None:
            if not current.task.done():
                return
            if not current.task.cancelled() and current.task.result() == "failed":
                self.hung_since = now  # daprd answered (an error): not a hang, count again
        self.patient = Patient(task=asyncio.create_task(self._patient_call()), started=now)

    async def _patient_call(self) -> Outcome:
        try:
            outcome = await self._call(self.ids[0], patient=True)
        except Exception:  # e.g. the app stopping under it: not an answer
            return "failed"
        if outcome == "answered":
            self.slow_answer_at = self.clock()
        return outcome

    def _only_slow(self, now: float) -> bool:
        """Whether a patient call answered since the calls began hanging, and the one in
        flight has not hung for half of `heal_after` (None answered: wedged)."""
        answered = self.slow_answer_at
        if answered is None or answered < (self.hung_since or now):
            return False
        current = self.patient
        return current is None or current.task.done() or now - current.started < self.heal_after / 2

    async def _placement_ready(self) -> bool:
        """Whether daprd says placement is connected and its host ready: the wedge's
        signature. With placement down calls hang too, and a restart would not help."""
        try:
            status, body = await asyncio.wait_for(
                self.transport.request("GET", "/v1.0/metadata"), self.timeout
            )
            runtime = (codec.loads(body).get("actorRuntime") or {}) if status == 200 else {}
        except (TimeoutError, SidecarUnavailableError, ValueError, AttributeError):
            runtime = {}
        ready = runtime.get("placement") == "placement: connected" and runtime.get("hostReady")
        if not ready:
            log.warning("actor calls through the sidecar hang, but placement is not connected")
        return bool(ready)

    async def _shut_down(self, now: float) -> None:
        log.error(
            "every actor call through the sidecar has hung for %.0f s while placement is "
            "connected (a wedged daprd): asking it to shut down, for its supervisor to start "
            "it again (ORDERFLOW_SIDECAR_SELF_HEAL_S)",
            now - (self.hung_since or now),
        )
        self.healed_at = now
        self.metrics.self_heals.inc()
        self._forget_failure()
        try:
            await asyncio.wait_for(self.transport.request("POST", "/v1.0/shutdown"), self.timeout)
        except (TimeoutError, SidecarUnavailableError) as exc:
            log.error("the sidecar's shutdown call failed: %s", exc)

    async def run(self) -> None:
        while True:
            failing = self.unrouted_since is not None
            await asyncio.sleep(min(self.period, self.failing_period) if failing else self.period)
            try:
                await self.probe()
            except Exception:  # a probe must never take the app down
                log.exception("the sidecar probe failed")


def _served_by(body: bytes) -> str | None:
    """The replica a BeaconActor answer names (None: not such an answer)."""
    try:
        replica = codec.loads(body)["result"]["replica"]
    except (ValueError, KeyError, TypeError):
        return None
    return replica if isinstance(replica, str) else None


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
        if probe.patient is not None:
            probe.patient.task.cancel()
