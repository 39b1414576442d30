"""The sidecar watchdog: restarts an actor host's daprd whose actor calls all hang.

Dapr 1.18.2 can wedge a sidecar: when placement closes a host's stream in the middle of a
dissemination round (the host did not answer the round within `--disseminate-timeout`,
typically because its app was frozen while daprd deactivated actors), that daprd keeps
the round's actor types locked across its reconnect. From then on every actor call made
through it hangs, whichever host the actor lives on, and so does every call other
sidecars route to the actors placed on it; its health route, its metadata ("placement:
connected", `hostReady`) and placement's table all look normal. Only a restart of that
daprd clears it (README, "Known risks" and "Operating under faults").

`SidecarWatchdog.check` probes every running actor host's sidecar with read-only actor
calls (`BeaconActor.Get` on `PROBE_IDS`, spread over the hosts by placement) and calls a
sidecar wedged when, for `wedged_after` seconds in a row, not one of its probes answered
while some other sidecar's did. A sidecar that routes at all is left alone (a wedged
*peer* makes only the ids placed on it hang), so does every sidecar when none answers
(placement, Redis or the actor hosts down: a restart would not help), and so does a
process stopped on purpose (SIGSTOP, a debugger) or not running (its exit is reported
elsewhere), or one whose app is stopped (a restart could not finish: its 20 s count
from when the app runs again). `wedged_after` (20 s) is four times the dissemination
timeout: a rebalance holds calls for about the drain (2 s), at most the timeout (5 s),
before it ends or kicks the host.

A slow sidecar is not a wedged one. From its first failed check, the watchdog keeps a
patient probe in flight through a failing sidecar (the same calls, each allowed the whole
bound; when one ends, the next check starts another). A wedged daprd answers none of
them, however long it is given; one that is only slow (a box starved for seconds on end,
every call taking longer than the short probe's 3 s) answers them late. At the bound, a
sidecar whose patient probes answered, and whose call in flight has not hung for half the
bound, is reported slow and left running, and its clock starts again. So a daprd is
restarted only when no call through it answered within 3 s for 20 s, and either no call
answered at all or one has now hung for 10 s.
"""

from __future__ import annotations

import functools
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cluster import pidfile
from cluster.config import ClusterConfig
from cluster.local import WATCH_INTERVAL_S, LocalCluster, http_post_ok
from cluster.processes import ClusterError, stop_in_stages

WEDGED_AFTER_S = 20.0
PROBE_TIMEOUT_S = 3.0
# Read-only calls, spread by placement over the actor hosts: a sidecar that routes at all
# answers most of them; a wedged one answers none.
PROBE_IDS = tuple(f"watchdog-probe-{n}" for n in range(8))


def routes_actors(
    sidecar_port: int,
    ids: Iterable[str] = PROBE_IDS,
    timeout: float = PROBE_TIMEOUT_S,
    *,
    headers: Mapping[str, str] | None = None,
) -> bool:
    """Whether some probe actor, called through the sidecar on `sidecar_port`, answers
    2xx within `timeout` seconds. The calls run side by side, on daemon threads: the first
    answer decides, and a call still hanging keeps no one waiting (nor a process from
    exiting)."""
    base = f"http://127.0.0.1:{sidecar_port}/v1.0/actors/BeaconActor"
    urls = [f"{base}/{actor_id}/method/Get" for actor_id in ids]
    answers: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def call(url: str) -> None:
        try:
            answers.put(http_post_ok(url, timeout=timeout, headers=headers))
        except OSError:  # refused, timed out, or answered non-2xx (HTTPError)
            answers.put(False)

    for url in urls:
        threading.Thread(target=call, args=(url,), name="watchdog-probe", daemon=True).start()
    deadline = time.monotonic() + timeout + 1.0  # a socket timeout bounds each read, not a call
    for _ in urls:
        try:
            if answers.get(timeout=max(0.0, deadline - time.monotonic())):
                return True
        except queue.Empty:
            return False
    return False


@dataclass
class PatientCall:
    """One patient probe through a failing sidecar, on a daemon thread: `answered_after`
    is how long its first answer took (None: none yet, or none at all once `done`)."""

    started: float  # the watchdog's clock
    done: threading.Event = field(default_factory=threading.Event)
    answered_after: float | None = None

    @classmethod
    def start(cls, probe: Callable[[float], bool], timeout: float, now: float) -> PatientCall:
        call = cls(started=now)

        def run() -> None:
            began = time.monotonic()
            try:
                if probe(timeout):
                    call.answered_after = time.monotonic() - began
            finally:
                call.done.set()

        threading.Thread(target=run, name="watchdog-patient-probe", daemon=True).start()
        return call


@dataclass
class PatientProbes:
    """The patient probes through one failing sidecar, one after another (each allowed the
    bound), from its first failed check until it answers a short probe again."""

    current: PatientCall
    slowest_answer: float | None = None  # the longest a call that did answer took

    def keep_going(self, probe: Callable[[float], bool], timeout: float, now: float) -> None:
        if not self.current.done.is_set():
            return
        if self.current.answered_after is not None:
            self.slowest_answer = max(self.slowest_answer or 0.0, self.current.answered_after)
        self.current = PatientCall.start(probe, timeout, now)

    def still_answering(self, now: float, hung_after: float) -> float | None:
        """How long the slowest answer took, if some call answered since the sidecar began
        failing and the call in flight has not hung `hung_after` seconds (None: wedged)."""
        current = self.current
        if current.answered_after is not None:
            return max(self.slowest_answer or 0.0, current.answered_after)
        if self.slowest_answer is None or current.done.is_set():
            return None
        return self.slowest_answer if now - current.started < hung_after else None


def stopped_on_purpose(pid: int | None) -> bool:
    """Whether the process is stopped (SIGSTOP, a debugger): state T or t in /proc."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


@dataclass
class Sidecar:
    """What the watchdog needs of one actor host's daprd."""

    name: str  # the process name, `<app>-daprd`
    probe: Callable[[], bool]  # does an actor call through it answer (within 3 s)?
    watchable: Callable[[], bool]  # running and not stopped on purpose
    # does an actor call through it answer within the given seconds, however late?
    patient: Callable[[float], bool] | None = None


@dataclass
class SidecarWatchdog:
    sidecars: Sequence[Sidecar]
    restart: Callable[[str], None]  # restart that process and wait until it is ready
    report: Callable[[str], None] = print
    wedged_after: float = WEDGED_AFTER_S
    clock: Callable[[], float] = time.monotonic
    # when each sidecar's probes began failing (absent: its last probe answered)
    failing_since: dict[str, float] = field(default_factory=dict)
    # the patient probes through each failing sidecar (module docstring)
    patient: dict[str, PatientProbes] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)  # every restart, in order
    spared: list[str] = field(default_factory=list)  # slow, not wedged: left running

    def watch(self) -> list[str]:
        """`check`, for the loops that run it (`make run`'s, `python -m cluster watch`, the
        chaos suite's): whatever it raises is reported, not raised, so one failed check
        (a bug, a process table read mid-change) neither stops the watching nor, in `make
        run`, the cluster the launcher would stop on an error. The next check runs as
        usual."""
        try:
            return self.check()
        except Exception as exc:
            self.report(
                f"!! the sidecar watchdog's check failed ({type(exc).__name__}: {exc}); "
                "the next one runs as usual"
            )
            return []

    def check(self) -> list[str]:
        """Probe every sidecar once; restart those wedged. The names restarted."""
        watched = [s for s in self.sidecars if s.watchable()]
        for gone in set(self.failing_since) - {s.name for s in watched}:
            del self.failing_since[gone]  # stopped, restarted or gone: its clock starts again
            self.patient.pop(gone, None)
        if not watched:
            return []
        with ThreadPoolExecutor(max_workers=len(watched)) as pool:
            answers = dict(
                zip((s.name for s in watched), pool.map(lambda s: s.probe(), watched), strict=True)
            )
        now = self.clock()
        for sidecar in watched:
            if answers[sidecar.name]:
                self.failing_since.pop(sidecar.name, None)
                self.patient.pop(sidecar.name, None)
            else:
                self.failing_since.setdefault(sidecar.name, now)
                self._keep_patient_probe(sidecar, now)
        wedged = [
            name
            for name, since in self.failing_since.items()
            if now - since >= self.wedged_after
            and any(ok for other, ok in answers.items() if other != name)
        ]
        done = []
        for name in wedged:
            hung = now - self.failing_since[name]
            patient = self.patient.pop(name, None)
            slowest = patient.still_answering(now, self.wedged_after / 2) if patient else None
            if slowest is not None:
                self.report(
                    f"!! {name}: slow, not wedged: its short probes failed for {hung:.0f} s, "
                    f"but calls through it still answer (the slowest after {slowest:.1f} s); "
                    "not restarting it"
                )
                self.failing_since[name] = now  # a fresh bound
                self.spared.append(name)
                continue
            self.report(
                f"!! {name}: no actor call through it answered for {hung:.0f} s "
                "while other sidecars' did (a rebalance lock kept across a reconnect, Dapr "
                "1.18.2; README Known risks): restarting it"
            )
            del self.failing_since[name]
            try:
                self.restart(name)
            except Exception as exc:  # ClusterError (not ready in time), OSError (ports)...
                detail = (
                    str(exc) if isinstance(exc, ClusterError) else f"{type(exc).__name__}: {exc}"
                )
                self.report(f"!! {name}: the restart did not finish: {detail}")
                continue
            self.restarted.append(name)
            done.append(name)
            self.report(f"   {name} restarted; actor calls through it answer again")
        return done

    def _keep_patient_probe(self, sidecar: Sidecar, now: float) -> None:
        """Patient probes through a failing sidecar, one in flight at a time."""
        if sidecar.patient is None:
            return
        probes = self.patient.get(sidecar.name)
        if probes is None:
            call = PatientCall.start(sidecar.patient, self.wedged_after, now)
            self.patient[sidecar.name] = PatientProbes(call)
        else:
            probes.keep_going(sidecar.patient, self.wedged_after, now)


def for_cluster(cluster: LocalCluster, report: Callable[[str], None] = print) -> SidecarWatchdog:
    """A watchdog over `cluster`'s actor host sidecars, restarting them through it."""

    def running_pid(name: str) -> int | None:
        proc = cluster.processes[name]
        return proc.pid if proc.alive() else None

    return SidecarWatchdog(_sidecars(cluster, running_pid), restart=cluster.restart, report=report)


def _sidecars(cluster: LocalCluster, running_pid: Callable[[str], int | None]) -> list[Sidecar]:
    """Every actor host's daprd; `running_pid` names a process's pid while it runs."""
    auth = cluster.tokens.sidecar_headers
    return [
        Sidecar(
            name=f"{app.name}-daprd",
            probe=functools.partial(routes_actors, app.http_port, headers=auth),
            watchable=functools.partial(_watchable, running_pid, app.name),
            patient=functools.partial(routes_actors, app.http_port, PROBE_IDS, headers=auth),
        )
        for app in cluster.config.apps()
        if app.actor_types
    ]


def _watchable(running_pid: Callable[[str], int | None], app: str) -> bool:
    """The app's daprd runs, and neither it nor the app is stopped on purpose (a daprd
    whose app is frozen could not finish a restart: its clock starts once the app runs
    again)."""
    daprd = running_pid(f"{app}-daprd")
    return (
        daprd is not None
        and not stopped_on_purpose(daprd)
        and not stopped_on_purpose(running_pid(app))
    )


def watch_detached(config: ClusterConfig, report: Callable[[str], None] = print) -> int:
    """`python -m cluster watch`: the watchdog over a cluster `up --detach` started.

    It knows the processes from the pid file only: it stops a wedged daprd by its pid,
    starts it again as the launcher would, waits until it serves, and records the new pid
    (so `make down` and `make status` see it). It also reports processes that exited. It
    ends when the pid file goes (`make down` stops it first) or on SIGTERM.
    """
    cluster = LocalCluster(config)
    pid_file = cluster.pid_file
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())

    def entry(name: str) -> pidfile.Recorded | None:
        try:
            return pidfile.recorded(pid_file).get(name)
        except (OSError, ValueError, KeyError):
            return None

    def running_pid(name: str) -> int | None:
        found = entry(name)
        return found.pid if found is not None and not found.exited() else None

    def restart(name: str) -> None:
        found = entry(name)
        if found is not None:
            stop_in_stages([[found]])
        proc = cluster.processes[name]
        proc.start()  # once its ports can be bound (TIME_WAIT ends: up to 65 s)
        assert proc.pid is not None
        # recorded at once: `make down` stops it even if it never becomes ready
        pidfile.record(pid_file, name, pid=proc.pid, exe=str(proc.argv[0]), log=proc.log_path)
        try:
            cluster.wait_app_ready(cluster.app(name.removesuffix("-daprd")))
            cluster.wait_actors_routable()
        finally:
            proc.release_ports()

    sidecars = _sidecars(cluster, running_pid)
    dog = SidecarWatchdog(sidecars, restart=restart, report=report)
    report(f"watching {', '.join(s.name for s in sidecars)} (pid file {pid_file})")
    reported: set[tuple[str, int]] = set()
    while not stopping.wait(WATCH_INTERVAL_S):
        try:
            processes = pidfile.recorded(pid_file)
        except (OSError, ValueError, KeyError):  # gone: `make down` removes it last
            report("the pid file is gone (the cluster was stopped): done")
            return 0
        for name, found in processes.items():
            if (name, found.pid) not in reported and found.exited():
                reported.add((name, found.pid))
                report(f"!! {name} exited; see {found.log_path}")
        dog.watch()
    report("stopped (SIGTERM)")
    return 0
