"""The short chaos run of `make test`: orders under crashes, pauses, restarts keep every invariant.

It is `python -m chaos` with a short schedule (its own cluster at offset 12000): actor
hosts and their sidecars are killed, paused past placement's keepalive and rolled, and
Redis is killed, while orders flow through the gateway. Then no (aggregate, version) may
be published twice with different content, every published event must equal the stored
one, stock and money must be conserved, every order must end, the read models must agree
with the actors. The long run is `make chaos` (README, "Operating under faults").
"""

from __future__ import annotations

import os

import pytest

from chaos.schedule import Options, run_chaos, violations

SHORT = Options(
    duration=45.0,
    rate=8.0,
    faults=("kill-app", "stop-daprd", "kill-daprd", "rolling", "kill-redis", "stop-app-round"),
    fault_every=4.0,
    each_once=True,  # all six, the load lasting as long as they take (~90 s with a wedge)
    seed=os.environ.get("ORDERFLOW_CHAOS_SEED", "make-test"),
    port_offset=int(os.environ.get("ORDERFLOW_CHAOS_PORT_OFFSET", "12000")),
    step_timeout_s=10,  # every saga ends soon after the load stops
    shipping_timeout_s=15,
)


@pytest.mark.slow
def test_a_short_chaos_run_keeps_every_invariant() -> None:
    run = run_chaos(SHORT)
    assert run.results.accepted, "no order was accepted"
    assert sorted(set(run.fault_kinds)) == sorted(SHORT.faults)  # each ran, none cut off
    assert not violations(run), violations(run)
