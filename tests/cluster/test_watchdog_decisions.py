"""The sidecar watchdog's decisions (cluster/watchdog.py), with probes and a clock in hand.

tests/integration/test_watchdog.py wedges a real daprd and watches it heal.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
import types

import pytest

from cluster.processes import ClusterError
from cluster.watchdog import Sidecar, SidecarWatchdog, routes_actors, stopped_on_purpose


class Box:
    """Three sidecars whose probe answers and liveness a test sets, and a clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.answers = {
            "actor-host-1-daprd": True,
            "actor-host-2-daprd": True,
            "actor-host-3-daprd": True,
        }
        self.running = dict.fromkeys(self.answers, True)
        self.restarts: list[str] = []
        self.lines: list[str] = []
        self.fail_restart = False

    def restart(self, name: str) -> None:
        self.restarts.append(name)
        if self.fail_restart:
            raise ClusterError(f"{name} did not become ready")
        self.answers[name] = True

    def watchdog(self, wedged_after: float = 20.0) -> SidecarWatchdog:
        sidecars = [
            Sidecar(
                name=name,
                probe=functools.partial(self.answers.__getitem__, name),
                watchable=functools.partial(self.running.__getitem__, name),
            )
            for name in self.answers
        ]
        return SidecarWatchdog(
            sidecars,
            restart=self.restart,
            report=self.lines.append,
            wedged_after=wedged_after,
            clock=lambda: self.now,
        )

    def run(self, dog: SidecarWatchdog, seconds: float, step: float = 5.0) -> list[str]:
        """Check every `step` seconds for `seconds`; every name restarted."""
        done: list[str] = []
        end = self.now + seconds
        while self.now <= end:
            done += dog.check()
            self.now += step
        return done


def test_a_sidecar_that_routes_no_call_while_others_do_is_restarted_after_the_bound() -> None:
    box = Box()
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False

    assert box.run(dog, 15) == []  # 0, 5, 10, 15 s: under 20 s
    assert dog.check() == ["actor-host-1-daprd"]  # 20 s

    assert box.restarts == ["actor-host-1-daprd"]
    assert dog.restarted == ["actor-host-1-daprd"]
    assert "actor-host-1-daprd: no actor call through it answered for 20 s" in box.lines[0]
    assert "restarted" in box.lines[1]
    box.now += 5
    assert dog.check() == []  # it answers again: its clock is cleared


def test_a_stall_shorter_than_the_bound_restarts_nothing() -> None:
    box = Box()
    dog = box.watchdog()
    box.answers["actor-host-2-daprd"] = False
    assert box.run(dog, 15) == []

    box.answers["actor-host-2-daprd"] = True  # a rebalance ended
    assert box.run(dog, 5) == []
    box.answers["actor-host-2-daprd"] = False  # a new stall starts its own clock
    assert box.run(dog, 15) == []

    assert box.restarts == []


def test_nothing_is_restarted_while_no_sidecar_routes_a_call() -> None:
    """Placement, Redis or every app down: restarting one daprd would not help."""
    box = Box()
    dog = box.watchdog()
    box.answers.update(dict.fromkeys(box.answers, False))

    assert box.run(dog, 60) == []
    assert box.restarts == []

    box.answers["actor-host-3-daprd"] = True  # the cluster comes back but for two sidecars
    assert sorted(dog.check()) == ["actor-host-1-daprd", "actor-host-2-daprd"]


def test_a_stopped_or_dead_sidecar_is_not_probed_and_its_clock_starts_again() -> None:
    box = Box()
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False
    assert box.run(dog, 15) == []

    box.running["actor-host-1-daprd"] = False  # SIGSTOPped, or exited (reported elsewhere)
    assert box.run(dog, 60) == []
    box.running["actor-host-1-daprd"] = True
    assert box.run(dog, 15) == []  # a fresh 20 s
    assert dog.check() == ["actor-host-1-daprd"]


def test_a_restart_that_fails_is_reported_and_tried_again_after_another_bound() -> None:
    box = Box()
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False
    box.fail_restart = True

    assert box.run(dog, 20) == []
    assert box.restarts == ["actor-host-1-daprd"]
    assert "the restart did not finish: actor-host-1-daprd did not become ready" in box.lines[-1]
    assert dog.restarted == []

    box.now += 5
    assert box.run(dog, 15) == []
    assert box.restarts == ["actor-host-1-daprd"]  # not before another 20 s
    box.fail_restart = False
    assert dog.check() == ["actor-host-1-daprd"]


def test_a_probe_through_a_port_nothing_listens_on_is_a_failure() -> None:
    assert routes_actors(1, ids=("a", "b")) is False


@pytest.mark.parametrize("stop", [True, False])
def test_a_process_stopped_with_sigstop_is_told_from_a_running_one(stop: bool) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        if stop:
            os.kill(child.pid, signal.SIGSTOP)
            deadline = time.monotonic() + 5
            while not stopped_on_purpose(child.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert stopped_on_purpose(child.pid) is stop
    finally:
        child.kill()
        child.wait()
    assert stopped_on_purpose(child.pid) is False  # gone
    assert stopped_on_purpose(None) is False


class _Enough(Exception):
    pass


def test_the_foreground_mode_runs_the_check_between_its_exit_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cluster import local

    monkeypatch.setattr(local, "WATCH_INTERVAL_S", 0.0)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the module cluster.local uses
    calls: list[int] = []

    def watch() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise _Enough

    no_processes = types.SimpleNamespace(processes={})
    with pytest.raises(_Enough):
        local.wait_forever(no_processes, watch)  # type: ignore[arg-type]
    assert len(calls) == 3
