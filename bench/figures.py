"""The bench's figures and the rules that judge them: pure, no I/O (tests/unit/test_bench.py).

percentile(values, q)               nearest rank, None when empty
Step(...).sustained(rule)           the rule a saga step must meet to count
cpu_ms(before, after, clk_tck)      /proc utime+stime deltas -> CPU ms per process
deltas(before, after)               /proc counter deltas per process
thread_deltas(before, after)        per-thread counters (wake-ups) -> their growth per process
Box.between(before, after, ...)     the machine over a window: I/O stall, steal, CPU outside
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..1) of unsorted `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass(frozen=True)
class SustainRule:
    """A step sustains its offered rate when BOTH hold:

    - completed: confirmed orders >= `min_fraction` of the orders offered in the step
      (an order placed but not confirmed within the settle window counts as not), and
      the confirmed rate over the step's span, from the first placement to the last
      confirmation (server times), >= `min_fraction` of the offered rate;
    - latency: p99 of place -> confirmed (server times) <= `p99_bound_ms`.
    """

    min_fraction: float = 0.95
    p99_bound_ms: float = 1000.0

    def describe(self) -> str:
        pct = round(self.min_fraction * 100)
        return (
            f"sustained = confirmed >= {pct} % of offered, confirmed rate >= {pct} % of "
            f"offered rate, p99 place->confirmed <= {self.p99_bound_ms:.0f} ms"
        )


@dataclass(frozen=True)
class BoxSample:
    """What the whole machine had done by one moment (all counters since boot): CPU ticks
    busy and stolen (/proc/stat's first line) and microseconds in which some task waited
    on I/O (/proc/pressure/io's `some` total; None where the kernel has no PSI)."""

    busy_ticks: int
    steal_ticks: int
    total_ticks: int
    io_some_us: int | None


@dataclass(frozen=True)
class Box:
    """The machine over a step's window, beside what the cluster did in it: the share of
    the window in which some task waited on I/O (a slow disk: each fsync Redis waits for
    holds every command behind it), the share of CPU time the hypervisor gave to others
    (steal), and the cores busy outside the measured processes (the load generator, and
    anything else running on the box)."""

    io_stall: float | None  # 0..1; None without PSI
    steal: float  # 0..1 of all CPU time
    outside_cores: float

    @classmethod
    def between(
        cls,
        before: BoxSample,
        after: BoxSample,
        *,
        seconds: float,
        measured_ms: float,
        clk_tck: int,
    ) -> Box | None:
        """None when the window or the counters make no sense (a zero window)."""
        return cls.over([(before, after, seconds)], measured_ms=measured_ms, clk_tck=clk_tck)

    @classmethod
    def over(
        cls,
        windows: Sequence[tuple[BoxSample, BoxSample, float]],
        *,
        measured_ms: float,
        clk_tck: int,
    ) -> Box | None:
        """The same over several windows (before, after, seconds) taken together, as a
        command's interleaved rounds; None when they add up to nothing."""
        seconds = sum(w[2] for w in windows)
        ticks = sum(after.total_ticks - before.total_ticks for before, after, _ in windows)
        if seconds <= 0 or ticks <= 0:
            return None
        busy = sum(after.busy_ticks - before.busy_ticks for before, after, _ in windows)
        steal = sum(after.steal_ticks - before.steal_ticks for before, after, _ in windows)
        ios = [
            None if b.io_some_us is None or a.io_some_us is None else a.io_some_us - b.io_some_us
            for b, a, _ in windows
        ]
        io = None if None in ios else min(1.0, sum(i or 0 for i in ios) / (seconds * 1e6))
        return cls(
            io_stall=io,
            steal=steal / ticks,
            outside_cores=max(0.0, busy / clk_tck / seconds - measured_ms / 1000 / seconds),
        )


@dataclass
class Step:
    """One saga step at an offered rate: what was offered and what came back."""

    offered_rate: float
    offered: int
    latencies_ms: list[float] = field(default_factory=list)  # one per confirmed order
    span_s: float = 0.0  # first placement -> last confirmation, server times
    cancelled: int = 0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # by process, over the window
    wakeups: dict[str, int] = field(default_factory=dict)  # voluntary switches, same window
    lag_p50_ms: float | None = None  # projection lag over the step (Orderflow only)
    lag_p99_ms: float | None = None
    box: Box | None = None  # the machine over the same window

    @property
    def confirmed(self) -> int:
        return len(self.latencies_ms)

    @property
    def confirmed_rate(self) -> float:
        return self.confirmed / self.span_s if self.span_s > 0 else 0.0

    def p(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)

    def sustained(self, rule: SustainRule) -> bool:
        p99 = self.p(0.99)
        return (
            self.offered > 0
            and self.confirmed >= rule.min_fraction * self.offered
            and self.confirmed_rate >= rule.min_fraction * self.offered_rate
            and p99 is not None
            and p99 <= rule.p99_bound_ms
        )

    @property
    def cpu_total_ms(self) -> float:
        return sum(self.cpu_ms.values())

    def cpu_per_order(self) -> dict[str, float]:
        """CPU ms per confirmed order, by process (empty when nothing was confirmed)."""
        if not self.confirmed:
            return {}
        return {name: ms / self.confirmed for name, ms in self.cpu_ms.items()}

    def wakeups_per_order(self) -> dict[str, float]:
        """Wake-ups (voluntary context switches) per confirmed order, by process: the count
        of times each slept and was woken, which the box's speed moves far less than CPU
        (empty when nothing was confirmed)."""
        if not self.confirmed:
            return {}
        return {name: n / self.confirmed for name, n in self.wakeups.items()}


def highest_sustained(steps: Sequence[Step], rule: SustainRule) -> Step | None:
    """The sustained step with the highest offered rate (None when none sustained)."""
    ok = [s for s in steps if s.sustained(rule)]
    return max(ok, key=lambda s: s.offered_rate) if ok else None


def cpu_ms(
    before: Mapping[str, int], after: Mapping[str, int], *, clk_tck: int
) -> dict[str, float]:
    """CPU ms per process from two snapshots of utime+stime in clock ticks.

    A process missing from either snapshot (it exited, or started late) is left out
    rather than counted from zero; a negative delta (a pid reused) is left out too.
    """
    return {name: n * 1000.0 / clk_tck for name, n in deltas(before, after).items()}


def deltas(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """after - before per process, leaving out one missing from either snapshot and a
    negative delta (a pid reused)."""
    return {
        name: n - before[name] for name, n in after.items() if name in before and n >= before[name]
    }


def thread_deltas(
    before: Mapping[str, Mapping[int, int]], after: Mapping[str, Mapping[int, int]]
) -> dict[str, int]:
    """How much per-thread counters grew, summed per process: a thread started between the
    snapshots counts from zero, one that exited takes its count with it (so a figure is a
    floor, never negative); a process missing from either snapshot is left out."""
    out: dict[str, int] = {}
    for name, threads in after.items():
        if name in before:
            earlier = before[name]
            out[name] = sum(max(0, n - earlier.get(tid, 0)) for tid, n in threads.items())
    return out


def group_cpu(per_process: Mapping[str, float]) -> dict[str, float]:
    """Fold an app and its sidecar into one row each way: "actor-host-1" + "-daprd" kept
    apart, but replicas summed: {"actor-host": .., "actor-host daprd": .., ...}."""
    out: dict[str, float] = {}
    for name, value in per_process.items():
        base, sidecar = name.removesuffix("-daprd"), name.endswith("-daprd")
        if base.startswith("actor-host-"):
            base = "actor-host"
        key = f"{base} daprd" if sidecar else base
        out[key] = out.get(key, 0.0) + value
    return out


@dataclass(frozen=True)
class CommandRun:
    """One closed-loop command run: req/s and latency percentiles."""

    label: str
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    # CPU µs per request by process (/proc, over the measured window plus a short tail
    # for the work that follows an answer, e.g. the projector's delivery)
    cpu_us: Mapping[str, float] = field(default_factory=dict)
    box: Box | None = None  # the machine over the same windows (every round's)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


# The creep a soak still calls flat: Python's and Go's allocators and collectors move a
# process's RSS by a percent or two between samples with no trend
FLAT_TOLERANCE: Final = 0.03


@dataclass(frozen=True)
class RssSeries:
    """RSS samples (KiB) of one process over a soak."""

    name: str
    samples_kib: tuple[int, ...]
    every_s: float = 0.0  # between samples

    @property
    def start(self) -> int:
        return self.samples_kib[0] if self.samples_kib else 0

    @property
    def end(self) -> int:
        return self.samples_kib[-1] if self.samples_kib else 0

    @property
    def peak(self) -> int:
        return max(self.samples_kib, default=0)

    @property
    def growth(self) -> float | None:
        """(end - start) / start, None without a start."""
        return (self.end - self.start) / self.start if self.start else None

    @property
    def creep(self) -> float | None:
        """The second half's peak over the first half's, minus one: what a leak shows even
        under a sawtooth (a collector's, an allocator's), which end / start can hide or
        fake. None with fewer than four samples."""
        n = len(self.samples_kib)
        if n < 4:
            return None
        first, second = max(self.samples_kib[: n // 2]), max(self.samples_kib[n // 2 :])
        return (second - first) / first if first else None

    def flat(self, tolerance: float = FLAT_TOLERANCE) -> bool | None:
        """No creep beyond `tolerance` (None: too few samples to say)."""
        creep = self.creep
        return None if creep is None else creep <= tolerance
