"""The bench's one table: Orderflow beside its baselines, ratios, issue 13's goals (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from bench.figures import (
    FLAT_TOLERANCE,
    CommandRun,
    RssSeries,
    Step,
    SustainRule,
    group_cpu,
    highest_sustained,
    ratio,
)

GOAL_COMMAND_RATIO = 0.9
GOAL_CPU_MS = 40.0
GOAL_RATE = 40.0
GOAL_P99_MS = 250.0
GOAL_LAG_P99_MS = 100.0
WIDTHS = (40, 38, 38, 5)


@dataclass
class Report:
    """Everything one run measured, and how it was run."""

    mode: str
    replicas: int
    concurrency: int
    command_seconds: float
    step_seconds: float
    rule: SustainRule
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None
    commands: dict[str, CommandRun] = field(default_factory=dict)
    orderflow: list[Step] = field(default_factory=list)
    peer: list[Step] = field(default_factory=list)
    soak: list[RssSeries] = field(default_factory=list)
    soak_rate: float = 0.0
    soak_seconds: float = 0.0
    soak_warmup: float = 0.0


def _f(value: float | None, fmt: str = ".0f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _pct(share: float | None) -> str:
    """A share (0..1) as a percentage; "n/a" when the kernel could not tell (no PSI)."""
    return "n/a" if share is None else f"{share * 100:.1f}"


def _row(*cells: str) -> str:
    padded = [c.ljust(w) for c, w in zip(cells, WIDTHS, strict=False)]
    return "  ".join([*padded, *cells[len(WIDTHS) :]]).rstrip()


def _met(ok: bool) -> str:
    return "met" if ok else "not yet met"


def _command(run: CommandRun) -> str:
    return f"{run.rate:.0f} req/s p50 {_f(run.p50_ms)} p99 {_f(run.p99_ms)} ms"


def command_rows(commands: dict[str, CommandRun]) -> list[str]:
    bare, daprd, gw = commands.get("bare"), commands.get("daprd"), commands.get("gateway")
    if not (bare and daprd and gw):
        return []
    cmd_ratio, gw_ratio = ratio(daprd.rate, bare.rate), ratio(gw.rate, daprd.rate)
    return [
        _row(
            f"command via daprd ({daprd.label.split(' ')[0]})",
            _command(daprd),
            f"bare SDK actor: {_command(bare)}",
            _f(cmd_ratio, ".2f"),
            f">= {GOAL_COMMAND_RATIO} x bare: {_met((cmd_ratio or 0) >= GOAL_COMMAND_RATIO)}",
        ),
        _row(
            "same command via the gateway",
            _command(gw),
            f"via daprd: {daprd.rate:.0f} req/s",
            _f(gw_ratio, ".2f"),
            f">= {GOAL_COMMAND_RATIO} x daprd: {_met((gw_ratio or 0) >= GOAL_COMMAND_RATIO)}",
        ),
    ]


def command_cpu_rows(commands: dict[str, CommandRun]) -> list[str]:
    """What one request costs each process (replicas summed), Deposit beside bare."""
    bare, daprd, gw = commands.get("bare"), commands.get("daprd"), commands.get("gateway")
    if not (bare and daprd and gw and daprd.cpu_us):
        return []
    mine, base, via = group_cpu(daprd.cpu_us), group_cpu(bare.cpu_us), group_cpu(gw.cpu_us)
    total, base_total, via_total = sum(mine.values()), sum(base.values()), sum(via.values())
    rows = [
        _row(
            "CPU us per command: via daprd / gateway",
            f"{total:.0f} / {via_total:.0f} us",
            f"bare SDK actor: {base_total:.0f} us",
            _f(ratio(base_total, total), ".2f"),
            "(bare / Deposit: where the ratio goes)",
        )
    ]
    names = sorted({*mine, *via}, key=lambda n: -max(mine.get(n, 0.0), via.get(n, 0.0)))
    for name in names:
        if max(mine.get(name, 0.0), via.get(name, 0.0), base.get(name, 0.0)) < 10:
            continue  # under 10 us a request: idle processes
        rows.append(
            _row(
                f"  {name}",
                f"{_f(mine.get(name))} / {_f(via.get(name))}",
                _f(base.get(name)),
            )
        )
    return rows + command_box_rows(commands)


def command_box_rows(commands: dict[str, CommandRun]) -> list[str]:
    """The machine during each command's rounds, as the steps' box rows: a ratio read
    beside whether the hypervisor or the disk took more from one run than another."""
    bare, daprd, gw = commands.get("bare"), commands.get("daprd"), commands.get("gateway")
    if not (bare and daprd and gw and bare.box and daprd.box and gw.box):
        return []
    return [
        _row(
            "  steal % in its runs",
            f"{_pct(daprd.box.steal)} / {_pct(gw.box.steal)}",
            _pct(bare.box.steal),
        ),
        _row(
            "  I/O stall % in its runs",
            f"{_pct(daprd.box.io_stall)} / {_pct(gw.box.io_stall)}",
            _pct(bare.box.io_stall),
        ),
    ]


def _step(step: Step | None, rule: SustainRule) -> str:
    if step is None:
        return "(not run)"
    mark = "ok" if step.sustained(rule) else "NOT sustained"
    cpu = sum(step.cpu_per_order().values()) if step.confirmed and step.cpu_ms else None
    return (
        f"{step.confirmed_rate:.1f}/s {_f(step.p(0.5))} / {_f(step.p(0.99))} ms "
        f"({step.confirmed}/{step.offered}) {_f(cpu, '.0f', ' ms CPU')} {mark}"
    )


def step_rows(report: Report) -> list[str]:
    rule = report.rule
    peer = {s.offered_rate: s for s in report.peer}
    rows = []
    for step in report.orderflow:
        rows.append(
            _row(
                f"saga at {step.offered_rate:g}/s: rate, p50/p99, CPU/order",
                _step(step, rule),
                _step(peer.get(step.offered_rate), rule),
            )
        )
    for step in report.peer:  # rates only the peer ran
        if step.offered_rate not in {s.offered_rate for s in report.orderflow}:
            rows.append(_row(f"saga at {step.offered_rate:g}/s", "(not run)", _step(step, rule)))
    return rows + box_rows(report.orderflow)


def box_rows(steps: Sequence[Step]) -> list[str]:
    """The machine during each Orderflow step: a tail or a CPU figure read beside what the
    disk, the hypervisor and other processes were doing meanwhile (PSI's io `some`: the
    share of the window in which some task waited on I/O)."""
    boxed = [(s.offered_rate, s.box) for s in steps if s.box is not None]
    if not boxed:
        return []
    stall = ", ".join(f"{rate:g}/s {_pct(box.io_stall)}" for rate, box in boxed)
    other = ", ".join(
        f"{rate:g}/s {_pct(box.steal)} / {box.outside_cores:.2f}" for rate, box in boxed
    )
    return [
        _row("  I/O stall at each rate (PSI io some)", f"{stall} %"),
        _row("  steal % / cores busy outside the cluster", other),
    ]


def _goal_rate(steps: Sequence[Step], rule: SustainRule) -> float:
    strict = SustainRule(min_fraction=rule.min_fraction, p99_bound_ms=GOAL_P99_MS)
    best = highest_sustained(steps, strict)
    return best.offered_rate if best else 0.0


def summary_rows(report: Report) -> list[str]:
    rule = report.rule
    ours, theirs = highest_sustained(report.orderflow, rule), highest_sustained(report.peer, rule)
    ours_rate = ours.offered_rate if ours else 0.0
    theirs_rate = theirs.offered_rate if theirs else 0.0
    goal_rate = _goal_rate(report.orderflow, rule)
    rows = [
        _row(
            "highest sustained rate",
            f"{ours_rate:g} orders/s" if ours else "none",
            f"{theirs_rate:g} orders/s" if theirs else "none",
            _f(ratio(ours_rate, theirs_rate), ".2f"),
            f">= {GOAL_RATE:g}/s with p99 <= {GOAL_P99_MS:g} ms: "
            f"{_met(goal_rate >= GOAL_RATE)} ({goal_rate:g}/s); ahead of the workflow: "
            f"{_met(ours_rate > theirs_rate) if report.peer else 'no peer run'}",
        )
    ]
    return rows + cpu_rows(report) + lag_rows(ours, report.orderflow)


def cpu_step(steps: Sequence[Step], peer: Sequence[Step], rule: SustainRule) -> Step | None:
    """The Orderflow step whose CPU is shown: the highest rate both sustained, else the
    highest rate Orderflow sustained and the peer ran, else Orderflow's highest sustained,
    else its first step."""
    both = {s.offered_rate for s in peer if s.sustained(rule)}
    ran = {s.offered_rate for s in peer if s.confirmed}
    for rates in (both, ran):
        common = [s for s in steps if s.sustained(rule) and s.offered_rate in rates]
        if common:
            return max(common, key=lambda s: s.offered_rate)
    return highest_sustained(steps, rule) or (steps[0] if steps else None)


def cpu_rows(report: Report) -> list[str]:
    ours = cpu_step(report.orderflow, report.peer, report.rule)
    if ours is None or not ours.confirmed:
        return []
    theirs = next((s for s in report.peer if s.offered_rate == ours.offered_rate), None)
    if theirs is None or not theirs.confirmed:
        theirs = None
    mine, woken = group_cpu(ours.cpu_per_order()), group_cpu(ours.wakeups_per_order())
    peer = group_cpu(theirs.cpu_per_order()) if theirs else {}
    peer_woken = group_cpu(theirs.wakeups_per_order()) if theirs else {}
    total, peer_total = sum(mine.values()), sum(peer.values()) if peer else None
    rows = [
        _row(
            f"CPU ms per confirmed order at {ours.offered_rate:g}/s",
            f"{total:.0f} ms{_woken(sum(woken.values()) if woken else None, ' wake-ups')}",
            f"{_f(peer_total, '.0f', ' ms')}"
            f"{_woken(sum(peer_woken.values()) if peer_woken else None, ' wake-ups')}",
            _f(ratio(total, peer_total or 0.0), ".2f"),
            f"<= {GOAL_CPU_MS:g} ms: {_met(total <= GOAL_CPU_MS)}; below the workflow: "
            f"{_met(total < peer_total) if peer_total is not None else 'no peer run'}",
        )
    ]
    for name in sorted({*mine, *peer}, key=lambda n: (-mine.get(n, -1), -peer.get(n, 0))):
        rows.append(
            _row(
                f"  {name}",
                f"{_f(mine.get(name), '.1f')}{_woken(woken.get(name))}",
                f"{_f(peer.get(name), '.1f')}{_woken(peer_woken.get(name))}",
            )
        )
    counted = [s for s in report.orderflow if s.confirmed and s.wakeups]
    if counted:
        by_rate = ", ".join(
            f"{s.offered_rate:g}/s {sum(s.wakeups_per_order().values()):.0f}" for s in counted
        )
        rows.append(_row("  wake-ups per order at each rate", by_rate))
    return rows


def _woken(per_order: float | None, unit: str = "") -> str:
    """ " / N<unit>": wake-ups per order beside a CPU figure ("" when none were counted)."""
    return "" if per_order is None else f" / {per_order:.0f}{unit}"


def lag_rows(step: Step | None, steps: Sequence[Step]) -> list[str]:
    """The goal's row (the lag at the highest sustained rate), then, when more than one
    step measured it, the p99 at every rate: a rate sustained once at the box's knee
    should not be the only lag figure a reader sees."""
    if step is None or step.lag_p99_ms is None:
        return []
    rows = [
        _row(
            f"projection lag at {step.offered_rate:g}/s (p50/p99)",
            f"{_f(step.lag_p50_ms)} / {_f(step.lag_p99_ms)} ms",
            "",
            "",
            f"p99 <= {GOAL_LAG_P99_MS:g} ms: {_met(step.lag_p99_ms <= GOAL_LAG_P99_MS)}",
        )
    ]
    measured = [s for s in steps if s.lag_p99_ms is not None]
    if len(measured) > 1:
        by_rate = ", ".join(f"{s.offered_rate:g}/s {s.lag_p99_ms:.0f}" for s in measured)
        rows.append(_row("  projection lag p99 at each rate", f"{by_rate} ms"))
    return rows


# Processes whose RSS grows with what they store, by design: not held to "flat"
HOLDS_THE_DATA: Final = frozenset({"redis"})


def soak_rows(report: Report) -> list[str]:
    if not report.soak:
        return []
    head = (
        f"RSS over {report.soak_seconds:g} s at {report.soak_rate:g}/s "
        f"({report.soak_warmup:g} s warm-up)"
    )
    rows = [_row(head, "start / end / max MiB", "growth; creep (2nd vs 1st half peak)", "", "flat")]
    for series in report.soak:
        mib = [x / 1024 for x in (series.start, series.end, series.peak)]
        growth = _f(None if series.growth is None else series.growth * 100, "+.1f", " %")
        creep = _f(None if series.creep is None else series.creep * 100, "+.1f", " %")
        flat = series.flat()
        verdict = (
            "holds the data (by design)"
            if series.name in HOLDS_THE_DATA
            else "-"
            if flat is None
            else _met(flat) + f" (creep <= {FLAT_TOLERANCE:.0%})"
        )
        rows.append(
            _row(
                f"  {series.name}",
                " / ".join(f"{x:.0f}" for x in mib),
                f"{growth}; {creep}",
                "",
                verdict,
            )
        )
    every = max((series.every_s for series in report.soak), default=0.0)
    rows.append(f"RSS samples (MiB), one every {every:.0f} s:")
    width = max(len(series.name) for series in report.soak)
    for series in report.soak:
        samples = " ".join(f"{kib / 1024:.0f}" for kib in series.samples_kib)
        rows.append(f"  {series.name:{width}}  {samples}")
    return rows


def render(report: Report) -> str:
    load = " / ".join(f"{x:.1f}" for x in report.load_before)
    after = " / ".join(f"{x:.1f}" for x in report.load_after) if report.load_after else "-"
    lines = [
        f"Orderflow bench ({report.mode}): {report.replicas} actor hosts, commands "
        f"{report.concurrency} workers x {report.command_seconds:g} s (interleaved rounds), "
        "saga steps "
        f"{report.step_seconds:g} s; load average 1/5/15 min before {load}, after {after}",
        report.rule.describe(),
        _row("figure", "Orderflow", "baseline / workflow peer", "ratio", "goal (issue 13)"),
        _row(*("-" * w for w in WIDTHS), "-" * 30),
        *command_rows(report.commands),
        *command_cpu_rows(report.commands),
        *step_rows(report),
        *summary_rows(report),
        *soak_rows(report),
    ]
    return "\n".join(lines)
