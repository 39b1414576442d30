"""A wedged sidecar, for real, and the watchdog that heals it (cluster/watchdog.py).

Dapr 1.18.2 wedges an actor host's daprd when placement closes its stream in the middle
of a dissemination round: every actor call through it hangs from then on. The fault that
does it (bench/freeze.py's `app-stop-round`): actor calls flowing over three hosts, one
host's app frozen (SIGSTOP) while another host's daprd is killed and started again, so a
round runs that the frozen host cannot finish within placement's dissemination timeout.

The test first shows the wedge (no call through that daprd answers for 15 s after the
app resumed, while the other sidecars route, and the host's own probe of its sidecar says
so on /metrics, as the OrderflowSidecarWedged alert reads it), then runs the watchdog the launcher's
foreground mode runs, and checks that it restarts that daprd and nothing else, and that
every actor answers again through every sidecar. Its own cluster at port offset 12625,
three actor hosts. Then the same with a cluster `python -m cluster up --detach` started
(offset 12750): the watchdog process beside it heals the wedge from the pid file, and
`down` stops everything it restarted. Last, where no watchdog runs (docker-compose,
Kubernetes): the actor host's own probe tells the same wedge and asks its daprd to shut
down (`ORDERFLOW_SIDECAR_SELF_HEAL_S`), for the supervisor to start it again (offset 13125).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.freeze import Load
from cluster import pidfile
from cluster.config import ROOT, ClusterConfig
from cluster.local import WATCHDOG, LocalCluster
from cluster.processes import ClusterError, wait_until
from cluster.watchdog import SidecarWatchdog, for_cluster, routes_actors
from tests.integration.conftest import cluster_config

pytestmark = pytest.mark.slow

PORT_OFFSET = 12625
FROZEN, TRIGGER = "actor-host-1", "actor-host-3"
FREEZE_S = 20.0  # four times placement's dissemination timeout (5 s)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    config = cluster_config(
        Path(tmp_path_factory.mktemp("watchdog")),
        port_offset=PORT_OFFSET,
        step_timeout_s=30,
        shipping_timeout_s=8,
    )
    probe = {"ORDERFLOW_SIDECAR_PROBE_S": "2"}  # the hosts' own probes, for their gauges
    local = LocalCluster(
        dataclasses.replace(
            config, actor_host_replicas=3, extra_app_env={**config.extra_app_env, **probe}
        )
    )
    with local.running():
        yield local


class Calls:
    """bench.freeze's load (BeaconActor.Touch over 200 ids through the gateway's daprd,
    one call a second each, 2 % of them holding the actor 1.5 s) in a thread."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.load = Load(
            url=f"http://127.0.0.1:{cluster.app('gateway').http_port}",
            ids=200,
            interval=1.0,
            hold_ms=20,
            long_hold_ms=1500,
            long_share=0.02,
            timeout=5.0,
            headers=cluster.tokens.sidecar_headers,
        )
        self.thread = threading.Thread(target=asyncio.run, args=(self.load.run(),), daemon=True)

    def __enter__(self) -> Calls:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.load.running = False
        self.thread.join(timeout=15)


def _freeze_during_a_round(cluster: LocalCluster) -> None:
    frozen = cluster.processes[FROZEN]
    trigger = cluster.processes[f"{TRIGGER}-daprd"]
    frozen.signal(signal.SIGSTOP)
    try:
        time.sleep(2.0)
        trigger.kill()
        time.sleep(2.0)
        trigger.start()  # placement disseminates its return while FROZEN cannot answer
        time.sleep(FREEZE_S - 4.0)
    finally:
        frozen.signal(signal.SIGCONT)
        trigger.release_ports()


def _sidecars_routing(cluster: LocalCluster) -> dict[str, bool]:
    hosts = [a for a in cluster.config.apps() if a.actor_types]
    auth = cluster.tokens.sidecar_headers
    return {f"{a.name}-daprd": routes_actors(a.http_port, headers=auth) for a in hosts}


def _assert_every_sidecar_routes(cluster: LocalCluster) -> None:
    routing = _sidecars_routing(cluster)
    assert routing == dict.fromkeys(routing, True)  # names the one that does not


def _healed(cluster: LocalCluster, calls: Calls) -> None:
    """From now on every sidecar routes, and every actor of the load answers again,
    wherever it now lives."""
    healed = time.monotonic()
    _assert_every_sidecar_routes(cluster)
    wait_until(
        lambda: len(calls.load.answered_since(healed)) == calls.load.ids,
        timeout=30,
        what="every actor of the load to answer after the restart",
    )


def _wedged(cluster: LocalCluster) -> bool:
    """FROZEN's daprd routes no call, for 15 s, while the others route."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        routing = _sidecars_routing(cluster)
        if routing[f"{FROZEN}-daprd"] or not any(routing.values()):
            return False
        time.sleep(2.5)
    return True


def _gauges(cluster: LocalCluster, host: str) -> dict[str, float]:
    """The host's probe of its own sidecar, from its /metrics (actors/toolkit/sidecarprobe.py)."""
    text = httpx.get(f"http://127.0.0.1:{cluster.app(host).app_port}/metrics", timeout=5).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("orderflow_sidecar_")
    }


def test_the_watchdog_restarts_a_wedged_sidecar_and_only_it(cluster: LocalCluster) -> None:
    watchdog: SidecarWatchdog = for_cluster(cluster, report=print)
    with Calls(cluster) as calls:
        time.sleep(8)  # actors active on every host
        assert watchdog.check() == []  # a healthy cluster: nothing to do
        _assert_every_sidecar_routes(cluster)

        for attempt in (1, 2):  # the round must close FROZEN's stream mid-round
            _freeze_during_a_round(cluster)
            time.sleep(3)
            if _wedged(cluster):
                break
            assert attempt == 1, "two freezes during a round did not wedge the sidecar"
        # what OrderflowSidecarWedged reads: the wedged host's probe fails, another's answers
        wedged = _gauges(cluster, FROZEN)
        assert wedged["orderflow_sidecar_routes_actor_calls"] == 0
        assert wedged["orderflow_sidecar_unrouted_seconds"] >= 5
        assert _gauges(cluster, "actor-host-2")["orderflow_sidecar_routes_actor_calls"] == 1

        started = time.monotonic()
        while not watchdog.restarted and time.monotonic() - started < 90:
            watchdog.check()
            time.sleep(1)

        assert watchdog.restarted == [f"{FROZEN}-daprd"]
        _healed(cluster, calls)
        assert watchdog.check() == []
        wait_until(
            lambda: _gauges(cluster, FROZEN)["orderflow_sidecar_unrouted_seconds"] == 0,
            timeout=15,
            what=f"{FROZEN}'s probe of its sidecar to answer again",
        )


DETACHED_OFFSET = 12750


def test_a_detached_cluster_has_its_watchdog_and_down_stops_what_it_restarted(
    tmp_path: Path,
) -> None:
    """`up --detach` starts `cluster watch` beside the cluster; it heals the same wedge
    from the pid file alone (the first test shows the wedge itself; here the watchdog's
    log names it), records the new daprd's pid, and `down` stops everything, the watchdog
    and the restarted daprd included."""
    env = {
        **os.environ,
        "ORDERFLOW_PORT_OFFSET": str(DETACHED_OFFSET),
        "ORDERFLOW_STATE_DIR": str(tmp_path),
        "ORDERFLOW_ACTOR_HOSTS": "3",
        "ORDERFLOW_OPS": "0",
        "ORDERFLOW_WATCHDOG": "1",
        "ORDERFLOW_RUNTIME_DIR": str(ClusterConfig.from_env().runtime_dir),
    }
    config = ClusterConfig.from_env(env)
    cluster = LocalCluster(config)  # the ports and the process definitions only
    up = _cluster_command(env, "up", "--detach")
    assert up.returncode == 0, up.stdout + up.stderr
    started = pidfile.recorded(cluster.pid_file)
    try:
        assert not started[WATCHDOG].exited()
        wedged = f"{FROZEN}-daprd"
        with Calls(cluster) as calls:
            time.sleep(8)
            for attempt in (1, 2):  # the round must close FROZEN's stream mid-round
                old_pid = pidfile.recorded(cluster.pid_file)[wedged].pid
                _freeze_detached(cluster, env)
                try:  # 20 s from the app's SIGCONT, probes every 5 s, a restart ~5 s
                    wait_until(
                        functools.partial(_restarted, cluster, wedged, old_pid),
                        timeout=60,
                        what=f"the detached watchdog to restart {wedged}",
                    )
                    break
                except ClusterError:
                    assert attempt == 1, "two freezes during a round: no restart (watchdog.log)"
            log = config.log_dir / "watchdog.log"
            wait_until(  # the new pid is recorded at the start, before it serves
                lambda: f"{wedged} restarted" in log.read_text(),
                timeout=90,
                what=f"the detached watchdog to see {wedged} serve again ({log})",
            )
            _healed(cluster, calls)
        text = (config.log_dir / "watchdog.log").read_text()
        assert f"!! {wedged}: no actor call through it answered" in text
        assert text.count("restarting it") == 1
        assert not pidfile.recorded(cluster.pid_file)[wedged].exited()
    finally:
        every = list(pidfile.recorded(cluster.pid_file).values())
        down = _cluster_command(env, "down")
        wait_until(lambda: all(r.exited() for r in every), timeout=20, what="every process to exit")
        ours = cluster.processes[f"{TRIGGER}-daprd"].popen  # the fault's start: reap it
        if ours is not None:
            ours.wait(timeout=10)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "watchdog" in down.stdout
    assert not cluster.pid_file.exists()


def _cluster_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m cluster <args>` as `make up` / `make down` run it."""
    argv = [sys.executable, "-m", "cluster", *args]
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def _restarted(cluster: LocalCluster, name: str, old_pid: int) -> bool:
    return pidfile.recorded(cluster.pid_file)[name].pid != old_pid


def _freeze_detached(cluster: LocalCluster, env: dict[str, str]) -> None:
    """The same fault, on processes known from the pid file; the daprd started again is
    recorded there, as the launcher would, so `down` stops it."""
    recorded = pidfile.recorded(cluster.pid_file)
    frozen, trigger = recorded[FROZEN], f"{TRIGGER}-daprd"
    frozen.signal(signal.SIGSTOP)
    try:
        time.sleep(2.0)
        recorded[trigger].signal(signal.SIGKILL)
        ours = cluster.processes[trigger].popen  # a second try: the first try's start
        if ours is not None:
            ours.wait(timeout=10)
        wait_until(recorded[trigger].exited, timeout=10, what=f"{trigger} to exit")
        time.sleep(2.0)
        proc = cluster.processes[trigger]
        proc.env = {**proc.env, **{k: v for k, v in env.items() if k.startswith("ORDERFLOW_")}}
        proc.start()
        assert proc.pid is not None
        pidfile.record(
            cluster.pid_file, trigger, pid=proc.pid, exe=str(proc.argv[0]), log=proc.log_path
        )
        time.sleep(FREEZE_S - 4.0)
    finally:
        frozen.signal(signal.SIGCONT)
        cluster.processes[trigger].release_ports()


SELF_HEAL_OFFSET = 13125
SELF_HEAL_S = 10


@pytest.fixture
def healing(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three actor hosts whose apps ask a wedged sidecar to shut down after 10 s; no
    watchdog (the fixture's launcher never runs one: `check` is the tests' to call)."""
    config = cluster_config(
        tmp_path, port_offset=SELF_HEAL_OFFSET, step_timeout_s=30, shipping_timeout_s=8
    )
    heal = {"ORDERFLOW_SIDECAR_PROBE_S": "2", "ORDERFLOW_SIDECAR_SELF_HEAL_S": str(SELF_HEAL_S)}
    local = LocalCluster(
        dataclasses.replace(
            config, actor_host_replicas=3, extra_app_env={**config.extra_app_env, **heal}
        )
    )
    with local.running():
        yield local


def test_an_actor_host_shuts_its_wedged_sidecar_down_for_its_supervisor_to_restart(
    healing: LocalCluster,
) -> None:
    """The same wedge, and no watchdog: FROZEN's app, running again, finds every call
    through its daprd hanging while placement says connected, and asks that daprd to shut
    down (a wedged daprd still does). The test then starts it again, as the daprd
    container's restart policy would in docker-compose or Kubernetes; every actor
    answers again through every sidecar. No other sidecar was asked."""
    wedged = f"{FROZEN}-daprd"
    daprd = healing.processes[wedged]
    with Calls(healing) as calls:
        time.sleep(8)
        for attempt in (1, 2):  # the round must close FROZEN's stream mid-round
            _freeze_during_a_round(healing)
            try:  # 10 s of hung calls from the app's first probe after SIGCONT, ~3 s to exit
                wait_until(daprd.exited, timeout=40, what=f"{FROZEN}'s app to shut {wedged} down")
                break
            except ClusterError:
                assert attempt == 1, f"two freezes during a round: {wedged} still runs"
        log = healing.processes[FROZEN].log_path.read_text()
        assert "a wedged daprd): asking it to shut down" in log
        others = [n for n in healing.processes if n.endswith("-daprd") and n != wedged]
        assert [n for n in others if healing.processes[n].exited()] == []

        healing.restart(wedged)  # the supervisor's part
        _healed(healing, calls)
    text = httpx.get(f"http://127.0.0.1:{healing.app(FROZEN).app_port}/metrics", timeout=5).text
    assert "orderflow_sidecar_self_heals_total 1.0" in text
    for host in ("actor-host-2", TRIGGER):
        log = healing.processes[host].log_path.read_text()
        assert "asking it to shut down" not in log, host
