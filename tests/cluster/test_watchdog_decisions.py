"""The sidecar watchdog's decisions (cluster/watchdog.py), with probes and a clock in hand.

tests/integration/test_watchdog.py wedges a real daprd and watches it heal.
"""

from __future__ import annotations

import functools
import http.server
import os
import signal
import subprocess
import threading
import time
import types
from collections.abc import Iterator

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
        # what a patient probe through each sidecar does: "answers" (late, yet it answers),
        # "hangs" (until the test ends) or "fails" (an error at once); empty: no patient probe
        self.patient: dict[str, str] = {}
        self.released = threading.Event()  # ends every hanging patient probe
        self.patient_calls: list[tuple[str, float]] = []  # (sidecar, timeout given)

    def patient_probe(self, name: str, timeout: float) -> bool:
        self.patient_calls.append((name, timeout))
        mode = self.patient[name]
        if mode == "hangs":
            self.released.wait(timeout)
            return False
        return mode == "answers"

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
                patient=(functools.partial(self.patient_probe, name) if self.patient else None),
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
            self.settle(dog)
            self.now += step
        return done

    def check_at(self, dog: SidecarWatchdog, seconds: float) -> list[str]:
        """One check `seconds` after the clock's start (1000), then `settle`."""
        self.now = 1000.0 + seconds
        done = dog.check()
        self.settle(dog)
        return done

    def settle(self, dog: SidecarWatchdog) -> None:
        """Until every patient probe that does not hang has ended (they run on threads)."""
        for name, probes in dog.patient.items():
            if self.patient.get(name) != "hangs":
                assert probes.current.done.wait(5)


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


def test_a_restart_that_raises_another_error_is_reported_and_the_others_still_restarted() -> None:
    box = Box()
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = box.answers["actor-host-2-daprd"] = False

    def restart(name: str) -> None:
        box.restarts.append(name)
        if name == "actor-host-1-daprd":
            raise OSError(98, "Address already in use")
        box.answers[name] = True

    dog.restart = restart
    assert box.run(dog, 15) == []
    assert dog.check() == ["actor-host-2-daprd"]
    assert box.restarts == ["actor-host-1-daprd", "actor-host-2-daprd"]
    assert any(
        "actor-host-1-daprd: the restart did not finish: OSError: [Errno 98]" in line
        for line in box.lines
    )


def test_watch_reports_a_failed_check_and_the_next_check_runs() -> None:
    """`make run` stops the cluster on an error out of its loop: the watchdog's must not."""
    box = Box()
    dog = box.watchdog()
    broken = {"yes": True}

    def watchable() -> bool:
        if broken["yes"]:
            raise FileNotFoundError("/proc/4242/stat")
        return True

    dog.sidecars[0].watchable = watchable
    assert dog.watch() == []
    assert box.lines == [
        "!! the sidecar watchdog's check failed (FileNotFoundError: /proc/4242/stat); "
        "the next one runs as usual"
    ]

    broken["yes"] = False
    box.answers["actor-host-1-daprd"] = False
    for _ in range(4):
        assert dog.watch() == []
        box.now += 5
    assert dog.watch() == ["actor-host-1-daprd"]


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


@pytest.fixture
def patient_box() -> Iterator[Box]:
    box = Box()
    box.patient = dict.fromkeys(box.answers, "answers")
    yield box
    box.released.set()


def test_a_slow_sidecar_whose_calls_answer_late_is_reported_and_left_running(
    patient_box: Box,
) -> None:
    """A starved box: every short probe through one daprd times out, yet a call answers."""
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False

    assert box.run(dog, 45) == []  # two bounds: spared at 20 s and again at 40 s

    assert box.restarts == []
    assert dog.restarted == []
    assert dog.spared == ["actor-host-1-daprd", "actor-host-1-daprd"]
    assert "actor-host-1-daprd: slow, not wedged: its short probes failed for 20 s" in box.lines[0]
    assert "not restarting it" in box.lines[0]
    # each patient probe is allowed the whole bound, and only the failing sidecar gets any
    assert set(box.patient_calls) == {("actor-host-1-daprd", 20.0)}


def test_a_wedged_sidecar_whose_patient_probe_hangs_is_restarted_at_the_bound(
    patient_box: Box,
) -> None:
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False
    box.patient["actor-host-1-daprd"] = "hangs"

    assert box.run(dog, 15) == []
    assert dog.check() == ["actor-host-1-daprd"]  # 20 s
    assert len(box.patient_calls) == 1  # one call, hanging since the first failed check
    assert dog.spared == []
    assert dog.patient == {}


def test_a_sidecar_whose_calls_fail_at_once_is_restarted_at_the_bound(patient_box: Box) -> None:
    """An error is not an answer: only a 2xx spares a sidecar."""
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-2-daprd"] = False
    box.patient["actor-host-2-daprd"] = "fails"

    for t in (0, 5, 10, 15):
        assert box.check_at(dog, t) == []
    assert box.check_at(dog, 20) == ["actor-host-2-daprd"]
    assert len(box.patient_calls) >= 4  # a new one at each failed check, as each ended


def test_a_slow_sidecar_that_then_wedges_is_restarted_once_a_call_hangs_half_the_bound(
    patient_box: Box,
) -> None:
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False
    assert box.check_at(dog, 0) == []  # its patient calls answer, late: slow
    assert box.check_at(dog, 5) == []

    box.patient["actor-host-1-daprd"] = "hangs"
    assert box.check_at(dog, 10) == []  # the call started now never answers
    assert box.check_at(dog, 15) == []
    assert box.check_at(dog, 20) == ["actor-host-1-daprd"]  # the bound: it has hung 10 s
    assert dog.spared == []


def test_a_slow_sidecar_whose_newest_call_is_young_is_spared(patient_box: Box) -> None:
    """A call in flight for less than half the bound, after answers: still slow."""
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False
    for t in (0, 5, 10):
        assert box.check_at(dog, t) == []
    box.patient["actor-host-1-daprd"] = "hangs"
    assert box.check_at(dog, 15) == []  # started now: 5 s old at the bound
    assert box.check_at(dog, 20) == []
    assert dog.spared == ["actor-host-1-daprd"]


def test_a_late_answer_then_calls_that_fail_at_once_do_not_spare_a_sidecar(
    patient_box: Box,
) -> None:
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-1-daprd"] = False
    assert box.check_at(dog, 0) == []  # the first patient call answers
    box.patient["actor-host-1-daprd"] = "fails"
    for t in (5, 10, 15):
        assert box.check_at(dog, t) == []
    assert box.check_at(dog, 20) == ["actor-host-1-daprd"]  # the newest ended unanswered


def test_a_sidecar_that_answers_again_drops_its_patient_probes(patient_box: Box) -> None:
    box = patient_box
    dog = box.watchdog()
    box.answers["actor-host-3-daprd"] = False
    assert box.run(dog, 10) == []
    assert "actor-host-3-daprd" in dog.patient

    box.answers["actor-host-3-daprd"] = True
    assert box.run(dog, 0) == []
    assert dog.patient == {}
    assert dog.failing_since == {}


def test_a_patient_probe_returns_at_the_first_answer_not_after_the_hanging_calls() -> None:
    """`routes_actors` with a long timeout: one answering call decides, while the others
    still hang (they end only after it returned, or after 15 s on their own)."""
    hang = threading.Event()
    slow_ended = threading.Event()
    answered = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self.path.endswith("/fast/method/Get"):
                hang.wait(15)
                slow_ended.set()
            else:
                answered["n"] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        # the hanging ids first: a probe that took the answers in order would wait for them
        assert routes_actors(port, ids=("slow-1", "slow-2", "fast"), timeout=60.0) is True
        assert not slow_ended.is_set()  # it returned while they still hung
        assert answered["n"] == 1
        assert routes_actors(port, ids=("slow-3",), timeout=0.5) is False  # it hangs: no
    finally:
        hang.set()
        server.shutdown()
        server.server_close()
