"""make bench's pure parts: the sustained rule, CPU deltas, /proc parsing, flags, the table."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import aiohttp
import pytest

import bench.__main__ as entry
from apps.gateway import auth
from bench import drivers, gateway_floor, harness, hop_cost, procfs
from bench.__main__ import main, parse_args
from bench.figures import (
    Box,
    BoxSample,
    CommandRun,
    RssSeries,
    Step,
    SustainRule,
    cpu_ms,
    deltas,
    group_cpu,
    highest_sustained,
    percentile,
    thread_deltas,
)
from bench.load import Stats
from bench.procfs import box_sample, parse_cpu_line, parse_psi_some, stat_ticks, switch_count
from bench.report import Report, command_cpu_rows, cpu_step, render
from cluster.config import ROOT

RULE = SustainRule(min_fraction=0.95, p99_bound_ms=1000)


def _step(rate: float, *, confirmed: int, span_s: float, p99: float = 100.0) -> Step:
    latencies = [50.0] * (confirmed - 1) + [p99] if confirmed else []
    return Step(offered_rate=rate, offered=int(rate * 10), latencies_ms=latencies, span_s=span_s)


def test_a_step_that_confirms_everything_on_time_is_sustained() -> None:
    assert _step(10, confirmed=100, span_s=10.2).sustained(RULE)


def test_a_step_that_confirms_too_few_orders_is_not_sustained() -> None:
    assert not _step(10, confirmed=94, span_s=10.0).sustained(RULE)


def test_a_step_whose_confirmations_trail_the_offered_rate_is_not_sustained() -> None:
    # every order confirmed, but over 12 s instead of 10: 8.3/s < 95 % of 10/s
    assert not _step(10, confirmed=100, span_s=12.0).sustained(RULE)


def test_a_step_whose_p99_exceeds_the_bound_is_not_sustained() -> None:
    step = Step(offered_rate=10, offered=100, latencies_ms=[50.0] * 98 + [1500.0] * 2, span_s=10)

    assert step.p(0.99) == 1500.0
    assert not step.sustained(RULE)


def test_the_highest_sustained_step_is_the_fastest_one_that_held() -> None:
    steps = [_step(5, confirmed=50, span_s=10), _step(10, confirmed=100, span_s=10)]
    steps.append(_step(20, confirmed=120, span_s=10))

    best = highest_sustained(steps, RULE)

    assert best is not None
    assert best.offered_rate == 10


def test_nearest_rank_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0


def test_cpu_ms_is_the_tick_delta_and_skips_processes_not_seen_twice() -> None:
    before = {"redis": 100, "gateway": 50, "gone": 10}
    after = {"redis": 150, "gateway": 50, "late": 30, "reused": 5}

    assert cpu_ms(before | {"reused": 9}, after, clk_tck=100) == {"redis": 500.0, "gateway": 0.0}


def test_cpu_per_order_divides_by_confirmed_orders_and_replicas_fold_together() -> None:
    step = Step(offered_rate=1, offered=2, latencies_ms=[10.0, 20.0], span_s=2)
    step.cpu_ms = {"actor-host-1": 30.0, "actor-host-2": 10.0, "actor-host-1-daprd": 8.0}

    assert group_cpu(step.cpu_per_order()) == {"actor-host": 20.0, "actor-host daprd": 4.0}


def test_stat_ticks_reads_utime_plus_stime_even_with_spaces_in_the_name() -> None:
    line = "42 (my app (x)) S 1 42 42 0 -1 4194304 10 0 0 0 700 55 0 0 20 0 4 0 99 0 0"

    assert stat_ticks(line) == 755


def test_wakeups_sum_every_thread_of_a_live_process_and_leave_out_a_gone_one() -> None:
    # a second thread sleeps 200 times (each a voluntary switch), then waits; the main
    # thread waits on its stdin: only the sum over the threads sees the 200
    code = (
        "import sys, threading, time\n"
        "done = threading.Event()\n"
        "def nap():\n"
        "    for _ in range(200): time.sleep(0.0005)\n"
        "    print('slept', flush=True); done.wait()\n"
        "threading.Thread(target=nap, daemon=True).start()\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "slept\n"
            main_thread = switch_count(Path(f"/proc/{child.pid}/status").read_text())
            counted = procfs.wakeups({"child": child.pid, "gone": 2**22 + 1})
        finally:
            child.kill()

    assert set(counted) == {"child"}
    assert len(counted["child"]) == 2  # the main thread and the sleeper, by thread id
    assert sum(counted["child"].values()) >= 200 > main_thread
    assert switch_count("Name:\tx\nvoluntary_ctxt_switches:\t120\n") == 120
    assert switch_count("Name:\tx\n") == 0
    assert deltas({"a": 5, "b": 9}, {"a": 8, "b": 3, "c": 1}) == {"a": 3}


def test_thread_deltas_count_new_threads_from_zero_and_never_go_negative() -> None:
    before = {"app": {1: 100, 2: 50}, "gone": {7: 3}}
    # thread 2 exited (its 50 and more lost), thread 3 started, thread 1 woke 10 times
    after = {"app": {1: 110, 3: 4}, "late": {9: 1}}

    assert thread_deltas(before, after) == {"app": 14}


def test_wakeups_per_order_show_beside_cpu_in_the_breakdown_and_for_every_rate() -> None:
    report = quick_report(
        orderflow=[_step(5, confirmed=50, span_s=10), _step(10, confirmed=100, span_s=10)]
    )
    report.orderflow[0].cpu_ms = {"actor-host-1": 800.0}
    report.orderflow[0].wakeups = {"actor-host-1": 2000}
    report.orderflow[1].cpu_ms = {"actor-host-1": 1000.0, "actor-host-1-daprd": 500.0}
    report.orderflow[1].wakeups = {"actor-host-1": 3000, "actor-host-1-daprd": 4000}

    lines = [" ".join(line.split()) for line in render(report).splitlines()]

    head = next(line for line in lines if line.startswith("CPU ms per confirmed order"))
    assert head.startswith("CPU ms per confirmed order at 10/s 15 ms / 70 wake-ups")
    assert "actor-host 10.0 / 30 -" in lines
    assert "actor-host daprd 5.0 / 40 -" in lines
    assert "wake-ups per order at each rate 5/s 40, 10/s 70" in lines


def test_rss_growth_is_relative_to_the_first_sample() -> None:
    series = RssSeries("gateway", (100_000, 120_000, 110_000))

    assert (series.start, series.end, series.peak) == (100_000, 110_000, 120_000)
    assert series.growth == 0.1


def test_creep_compares_the_halves_peaks_so_a_sawtooth_is_flat_and_a_ramp_is_not() -> None:
    sawtooth = RssSeries("actor-host-1", (100, 110, 100, 110, 100, 110, 100, 104))
    ramp = RssSeries("actor-host-1", (100, 101, 102, 103, 104, 105, 106, 107))

    assert sawtooth.growth == pytest.approx(0.04)  # end vs start: not what decides
    assert (sawtooth.creep, sawtooth.flat()) == (0.0, True)
    assert ramp.creep == pytest.approx(4 / 103)  # 107 vs 103
    assert ramp.flat() is False
    assert ramp.flat(tolerance=0.05) is True
    assert RssSeries("gateway", (100, 200, 300)).flat() is None  # too few samples to say


def test_the_soak_rows_judge_every_process_but_the_one_that_holds_the_data() -> None:
    report = quick_report(
        soak_rate=20.0,
        soak_seconds=600.0,
        soak_warmup=180.0,
        soak=[
            RssSeries("gateway", (102_400,) * 6, 30.0),
            RssSeries("actor-host-1", (102_400, 104_448, 106_496, 108_544, 110_592, 112_640)),
            RssSeries("redis", (102_400, 204_800, 307_200, 409_600, 512_000, 614_400)),
        ],
    )

    table = render(report)
    judged = [line for line in table.splitlines() if " / " in line and "%;" in line]
    rows = {line.split()[0]: " ".join(line.split()) for line in judged}

    assert "RSS over 600 s at 20/s (180 s warm-up)" in table
    assert rows["gateway"] == "gateway 100 / 100 / 100 +0.0 %; +0.0 % met (creep <= 3%)"
    assert rows["actor-host-1"].endswith("+10.0 %; +5.8 % not yet met (creep <= 3%)")
    assert rows["redis"].endswith("holds the data (by design)")
    assert "RSS samples (MiB), one every 30 s:" in table
    assert "  actor-host-1  100 102 104 106 108 110" in table


def test_the_soak_progress_counts_the_warm_up_then_the_soak_on_its_own() -> None:
    assert entry._soak_progress(30.4, warmup=180, seconds=600) == "warm-up 30/180 s"
    assert entry._soak_progress(200.0, warmup=180, seconds=600) == "soak 20/600 s"
    assert entry._soak_progress(0.0, warmup=0, seconds=600) == "soak 0/600 s"


def test_the_soak_flags_refuse_negative_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--soak", "600"]).soak_warmup == 180.0
    with pytest.raises(SystemExit):
        parse_args(["--soak", "600", "--soak-warmup", "-1"])
    assert "--soak, --soak-warmup: seconds, 0 or more" in capsys.readouterr().err


def test_quick_flags_shorten_every_duration_and_rates_parse_in_order() -> None:
    quick, full = parse_args(["--quick"]), parse_args(["--rates", "2,4.5", "--step-seconds", "7"])

    assert (quick.command_seconds, quick.step_seconds, quick.rate_list) == (5, 10, [5, 10, 20, 40])
    assert (full.command_seconds, full.step_seconds, full.rate_list) == (15, 7, [2, 4.5])


def test_go_maxprocs_defaults_to_the_clusters_one_core_and_refuses_nonsense(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).go_maxprocs == "1"
    assert parse_args(["--go-maxprocs", "AUTO"]).go_maxprocs == "auto"
    assert parse_args(["--go-maxprocs", "2"]).go_maxprocs == "2"
    with pytest.raises(SystemExit):
        parse_args(["--go-maxprocs", "0"])
    assert "--go-maxprocs: '0': expected a whole number of cores" in capsys.readouterr().err


def test_the_daprd_gogc_defaults_to_gos_own_and_refuses_nonsense(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).daprd_gogc is None
    assert parse_args(["--daprd-gogc", "100"]).daprd_gogc == "100"
    with pytest.raises(SystemExit):
        parse_args(["--daprd-gogc", "-1"])
    assert "--daprd-gogc: '-1': expected a whole number of percent" in capsys.readouterr().err


def quick_report(**figures: Any) -> Report:
    """A quick run's report (2 actor hosts, 32 workers) holding `figures`."""
    settings: dict[str, Any] = {"load_before": (1.0, 1.0, 1.0), **figures}
    return Report(
        mode="quick",
        replicas=2,
        concurrency=32,
        command_seconds=5,
        step_seconds=10,
        rule=RULE,
        **settings,
    )


def test_the_table_renders_canned_figures_with_ratios_and_goals() -> None:
    report = quick_report(
        load_before=(1.0, 2.0, 3.0),
        load_after=(2.0, 2.0, 3.0),
        commands={
            "bare": CommandRun("BeaconActor.Touch via daprd", 300.0, 50.0, 200.0, 0),
            "daprd": CommandRun("WalletActor.Deposit via daprd", 150.0, 90.0, 300.0, 0),
            "gateway": CommandRun("POST /wallets/{id}/deposit", 120.0, 120.0, 400.0, 0),
        },
        orderflow=[_step(5, confirmed=50, span_s=10), _step(10, confirmed=60, span_s=10)],
        peer=[_step(5, confirmed=50, span_s=10), _step(10, confirmed=50, span_s=10)],
    )
    report.orderflow[0].cpu_ms = {"actor-host-1": 5000.0, "redis": 1000.0}
    report.orderflow[0].lag_p50_ms, report.orderflow[0].lag_p99_ms = 20.0, 80.0
    report.peer[0].cpu_ms = {"actor-host-1": 4000.0, "workflow-peer": 4000.0}

    table = render(report)

    assert "0.50" in table  # deposit via daprd / bare
    assert "0.80" in table  # gateway / daprd
    assert "CPU ms per confirmed order at 5/s" in table
    assert "120 ms" in table  # 6000 ms / 50 orders
    assert "160 ms" in table  # the peer: 8000 ms / 50
    assert "0.75" in table  # 120 / 160
    lag = next(line for line in table.splitlines() if line.startswith("projection lag"))
    assert " ".join(lag.split()) == "projection lag at 5/s (p50/p99) 20 / 80 ms p99 <= 100 ms: met"
    assert "projection lag p99 at each rate" not in table  # one step measured it
    assert "not yet met" in table
    assert table.count("NOT sustained") == 2


def test_the_lag_at_every_rate_follows_the_goal_row_when_steps_measured_it() -> None:
    report = quick_report(
        orderflow=[_step(5, confirmed=50, span_s=10), _step(10, confirmed=100, span_s=10)]
    )
    report.orderflow[0].lag_p50_ms, report.orderflow[0].lag_p99_ms = 10.0, 30.0
    report.orderflow[1].lag_p50_ms, report.orderflow[1].lag_p99_ms = 20.0, 140.0

    lines = [" ".join(line.split()) for line in render(report).splitlines()]

    goal = lines.index("projection lag at 10/s (p50/p99) 20 / 140 ms p99 <= 100 ms: not yet met")
    assert lines[goal + 1] == "projection lag p99 at each rate 5/s 30, 10/s 140 ms"


def test_the_cpu_line_splits_into_busy_stolen_and_all_ticks() -> None:
    #        user nice system idle iowait irq softirq steal guest guest_nice
    line = "cpu  600 20 100 1000 50 0 30 70 40 0"
    # busy: all but idle, iowait and steal (guest is inside user already)
    assert parse_cpu_line(line) == (600 + 20 + 100 + 30, 70, 1870)
    assert parse_cpu_line("cpu 1 2 3 4 5 6 7") == (1 + 2 + 3 + 6 + 7, 0, 28)  # no steal field


def test_the_io_pressure_total_is_the_some_line() -> None:
    text = (
        "some avg10=0.03 avg60=0.34 avg300=1.20 total=248285820\n"
        "full avg10=0.03 avg60=0.18 avg300=0.46 total=123164833\n"
    )
    assert parse_psi_some(text) == 248285820
    with pytest.raises(ValueError, match="no `some` line"):
        parse_psi_some("full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")


def test_the_box_over_a_window_gives_io_stall_steal_and_cores_outside_what_was_measured() -> None:
    before = BoxSample(busy_ticks=1000, steal_ticks=10, total_ticks=5000, io_some_us=1_000_000)
    # 10 s at 100 ticks/s on two cores: 2000 ticks, 900 busy (0.9 cores), 20 stolen
    after = BoxSample(busy_ticks=1900, steal_ticks=30, total_ticks=7000, io_some_us=1_500_000)

    box = Box.between(before, after, seconds=10.0, measured_ms=7000.0, clk_tck=100)

    assert box is not None
    assert box.io_stall == pytest.approx(0.05)  # 0.5 s of 10 with some task waiting on I/O
    assert box.steal == pytest.approx(0.01)
    assert box.outside_cores == pytest.approx(0.2)  # 0.9 busy, 0.7 of them measured
    without_psi = dataclasses.replace(after, io_some_us=None)
    no_psi = Box.between(before, without_psi, seconds=10.0, measured_ms=0, clk_tck=100)
    assert no_psi is not None
    assert no_psi.io_stall is None
    assert Box.between(before, before, seconds=10.0, measured_ms=0, clk_tck=100) is None


def test_a_box_sample_of_this_machine_has_counters_that_move() -> None:
    first = box_sample()
    sum(range(2_000_000))  # some CPU between the two
    second = box_sample()
    assert 0 < first.busy_ticks <= first.total_ticks
    assert second.total_ticks > first.total_ticks  # ~30 ms of wall time went by
    assert second.busy_ticks >= first.busy_ticks
    if first.io_some_us is not None:  # a kernel with PSI (this one, and CI's)
        assert (second.io_some_us or 0) >= first.io_some_us


def test_the_box_at_every_rate_follows_the_steps() -> None:
    report = quick_report(
        orderflow=[_step(5, confirmed=50, span_s=10), _step(40, confirmed=400, span_s=10)]
    )
    report.orderflow[0].box = Box(io_stall=0.001, steal=0.0, outside_cores=0.04)
    report.orderflow[1].box = Box(io_stall=0.062, steal=0.012, outside_cores=0.3)

    lines = [" ".join(line.split()) for line in render(report).splitlines()]

    stall = lines.index("I/O stall at each rate (PSI io some) 5/s 0.1, 40/s 6.2 %")
    assert (
        lines[stall + 1]
        == "steal % / cores busy outside the cluster 5/s 0.0 / 0.04, 40/s 1.2 / 0.30"
    )
    assert lines[stall - 1].startswith("saga at 40/s")
    report.orderflow[1].box = Box(io_stall=None, steal=0.0, outside_cores=0.0)
    assert "5/s 0.1, 40/s n/a %" in " ".join(render(report).split())
    for step in report.orderflow:
        step.box = None
    assert "I/O stall" not in render(report)


def test_main_prints_the_table_even_when_interrupted_before_any_figure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    class Interrupted:
        state_dir = "/nowhere"

        def __init__(self, **_: object) -> None: ...

        def running(self, **_: object) -> Interrupted:
            return self

        def __enter__(self) -> None:
            raise KeyboardInterrupt

        def __exit__(self, *_: object) -> None: ...

    printed: list[str] = []
    monkeypatch.setattr(entry, "BenchCluster", Interrupted)

    assert main(["--quick"], out=printed.append) == 0

    assert printed[0].startswith("Orderflow bench (quick)")


def test_cpu_is_compared_at_the_highest_rate_both_sustained_else_one_the_peer_ran() -> None:
    ours = [_step(5, confirmed=50, span_s=10), _step(10, confirmed=100, span_s=10)]
    peer_ok = [_step(5, confirmed=50, span_s=10), _step(10, confirmed=80, span_s=10)]
    peer_slow = [_step(5, confirmed=50, span_s=10, p99=3000.0)]

    assert cpu_step(ours, peer_ok, RULE) is ours[0]
    assert cpu_step(ours, peer_slow, RULE) is ours[0]
    assert cpu_step(ours, [], RULE) is ours[1]


def test_command_cpu_rows_show_each_process_per_request_replicas_summed() -> None:
    commands = {
        "bare": CommandRun(
            "BeaconActor.Touch via daprd", 300.0, 50.0, 200.0, 0,
            {"actor-host-1": 200.0, "actor-host-2": 200.0, "gateway-daprd": 600.0},
        ),
        "daprd": CommandRun(
            "WalletActor.Deposit via daprd", 150.0, 90.0, 300.0, 0,
            {"actor-host-1": 300.0, "actor-host-2": 300.0, "gateway-daprd": 600.0,
             "projector": 500.0, "console": 2.0},
        ),
        "gateway": CommandRun(
            "POST /wallets/{id}/deposit", 120.0, 120.0, 400.0, 0,
            {"actor-host-1": 600.0, "gateway": 900.0, "gateway-daprd": 600.0, "projector": 500.0},
        ),
    }  # fmt: skip

    rows = [" ".join(row.split()) for row in command_cpu_rows(commands)]

    assert rows[0].startswith("CPU us per command: via daprd / gateway 1702 / 2600 us")
    assert "bare SDK actor: 1000 us 0.59" in rows[0]  # 1000 / 1702
    assert "actor-host 600 / 600 400" in rows
    assert "gateway - / 900 -" in rows
    assert "projector 500 / 500 -" in rows
    assert not any(row.startswith("console") for row in rows)  # under 10 us: left out
    assert not any("in its runs" in row for row in rows)  # no box measured: no box rows
    assert command_cpu_rows({k: v for k, v in commands.items() if k != "bare"}) == []


def test_the_box_in_each_commands_runs_sits_under_its_cpu_rows() -> None:
    def run(key: str, steal: float, io: float | None) -> CommandRun:
        return CommandRun(key, 100.0, 10.0, 20.0, 0, {"actor-host-1": 300.0}, Box(io, steal, 0.0))

    commands = {"bare": run("bare", 0.01, 0.03), "daprd": run("daprd", 0.021, 0.03)}
    commands["gateway"] = run("gateway", 0.085, None)

    rows = [" ".join(row.split()) for row in command_cpu_rows(commands)]

    assert rows[-2:] == [
        "steal % in its runs 2.1 / 8.5 1.0",
        "I/O stall % in its runs 3.0 / n/a 3.0",
    ]


def test_the_box_over_several_windows_adds_them_up() -> None:
    a0 = BoxSample(busy_ticks=0, steal_ticks=0, total_ticks=0, io_some_us=0)
    a1 = BoxSample(busy_ticks=100, steal_ticks=0, total_ticks=200, io_some_us=100_000)
    b0 = BoxSample(busy_ticks=500, steal_ticks=10, total_ticks=1000, io_some_us=5_000_000)
    b1 = BoxSample(busy_ticks=800, steal_ticks=50, total_ticks=1600, io_some_us=5_300_000)

    box = Box.over([(a0, a1, 1.0), (b0, b1, 3.0)], measured_ms=2000.0, clk_tck=100)

    assert box is not None
    assert box.steal == pytest.approx(40 / 800)  # stolen ticks over all ticks, both windows
    assert box.io_stall == pytest.approx(0.4 / 4.0)
    assert box.outside_cores == pytest.approx(4.0 / 4.0 - 2.0 / 4.0)  # 400 busy ticks in 4 s
    assert Box.over([], measured_ms=0.0, clk_tck=100) is None


def test_without_the_peer_the_workflow_comparisons_say_so_rather_than_met() -> None:
    report = quick_report(orderflow=[_step(5, confirmed=50, span_s=10)])
    report.orderflow[0].cpu_ms = {"actor-host-1": 5000.0}

    table = render(report)

    assert table.count("no peer run") == 2
    assert "ahead of the workflow: met" not in table


class _Answer:
    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body: dict[str, Any] = {"ok": True}

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return b"{}"

    async def json(self, content_type: str | None = None) -> dict[str, Any]:
        return self.body

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise aiohttp.ClientResponseError(None, (), status=self.status)  # type: ignore[arg-type]


class _Session:
    """Stands in for aiohttp's session inside the command drivers: records each POST
    (and, apart, the headers each one carried)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[tuple[str, dict[str, str]]] = []

    def post(
        self, url: str, *, json: dict[str, Any], headers: dict[str, str] | None = None
    ) -> _Answer:
        self.posts.append((url, json))
        self.headers.append((url, dict(headers or {})))
        return _Answer()


def test_command_runs_interleave_their_rounds_and_never_repeat_a_message_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three rounds of the three ways, the order reversed every other round, each a third
    of the duration; the Deposits' message ids are new across rounds (a repeat would be
    answered from the inbox: a cheaper, different command); rates and CPU are summed."""
    session, runs = _Session(), []
    ticks = iter(range(0, 10**6, 100))

    async def run(request: Any, *, concurrency: int, duration: float, **kw: Any) -> Stats:
        kw["opened"]()
        for n in range(4):  # each run numbers its requests from 0, as load.run does
            assert await request(session, n)
        runs.append((session.posts[-1][0].split("/")[-1], duration))
        return Stats(latencies=[0.01] * 4, elapsed=2.0)

    async def quiet(pids: dict[str, int], **kw: Any) -> float:
        return 0.0

    monkeypatch.setattr(drivers, "run", run)
    monkeypatch.setattr(drivers, "quiet", quiet)
    monkeypatch.setattr(procfs, "cpu_ticks", lambda pids: {"app": next(ticks)})
    # each window: 10 ticks of the machine's, 1 of them stolen
    boxes = (BoxSample(k, k, 10 * k, 1000 * k) for k in range(10**6))
    monkeypatch.setattr(procfs, "box_sample", lambda: next(boxes))
    monkeypatch.setattr(drivers, "CPU_TAIL_S", 0.0)

    out = asyncio.run(
        drivers.commands(
            gateway="http://gw",
            dapr="http://d",
            duration=9.0,
            concurrency=2,
            pids=lambda: {"app": 1},
        )
    )

    forward, backward = ["Touch", "Deposit", "deposit"], ["deposit", "Deposit", "Touch"]
    assert [last for last, _ in runs] == forward + backward + forward
    assert {duration for _, duration in runs} == {3.0}
    ids = [body["message_id"] for url, body in session.posts if url.endswith("/Deposit")]
    assert len(ids) == 12
    assert len(set(ids)) == 12
    assert {key: run.rate for key, run in out.items()} == {
        "bare": 2.0,
        "daprd": 2.0,
        "gateway": 2.0,
    }
    # each snapshot pair is 100 ticks apart: that much CPU per round, in ms
    per_round_ms = 100 * 1000 / procfs.CLK_TCK
    assert out["daprd"].cpu_us == {"app": pytest.approx(3 * per_round_ms * 1000 / 12)}
    for way in out.values():  # the box over its three windows
        assert way.box is not None
        assert way.box.steal == pytest.approx(0.1)


def test_every_command_call_carries_the_header_of_what_it_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bare actor's and the Deposit's calls to daprd carry its API token (daprd answers
    401 without it) and no client key (they never reach the gateway); the gateway's carry
    the client key (the gateway answers 401 without it) and no token: the gateway sends
    that to its own daprd."""
    session, token = _Session(), {"dapr-api-token": "t0ken"}
    key = {"authorization": "Bearer k3y"}

    async def run(request: Any, **kw: Any) -> Stats:
        assert await request(session, 0)
        return Stats(latencies=[0.01], elapsed=1.0)

    async def quiet(pids: dict[str, int], **kw: Any) -> float:
        return 0.0

    monkeypatch.setattr(drivers, "run", run)
    monkeypatch.setattr(drivers, "quiet", quiet)
    monkeypatch.setattr(drivers, "CPU_TAIL_S", 0.0)

    asyncio.run(
        drivers.commands(
            gateway="http://gw", dapr="http://d", duration=1.0, concurrency=1, rounds=1,
            dapr_headers=token, gateway_headers=key,
        )
    )  # fmt: skip

    sent = {url.split("/")[-1]: headers for url, headers in session.headers}
    assert sent == {"Touch": token, "Deposit": token, "deposit": key}


class _GatewaySession:
    """Stands in for aiohttp's session before the gateway's API: records every call's
    (method, url, headers) and answers as the gateway does for a shipped order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def post(self, url: str, *, json: Any, headers: dict[str, str] | None = None) -> _Answer:
        self.calls.append(("POST", url, dict(headers or {})))
        answer = _Answer()
        if url.endswith("/orders"):
            answer.status, answer.headers = 202, {"location": "/orders/o1"}
        return answer

    def get(
        self, url: str, *, params: Any = None, headers: dict[str, str] | None = None
    ) -> _Answer:
        self.calls.append(("GET", url, dict(headers or {})))
        answer = _Answer()
        answer.body = {"status": "shipped", "events": []}
        return answer


def test_the_seed_and_every_call_of_the_saga_driver_carry_the_gateways_client_key() -> None:
    """Restock, deposit, place, poll and the history read: every call to the gateway
    carries the key (a call without one is answered 401), the place its idempotency key
    beside it."""
    session, key = _GatewaySession(), {"authorization": "Bearer k3y"}
    saga = drivers.orderflow_saga("http://gw", "t", headers=key)

    async def drive() -> None:
        await drivers.seed(session, "http://gw", "t", headers=key)  # type: ignore[arg-type]
        location = await saga.place(session, 7)  # type: ignore[arg-type]
        assert location == "/orders/o1"
        assert await saga.done(session, location)  # type: ignore[arg-type]
        await saga.timing(session, location)  # type: ignore[arg-type]

    asyncio.run(drive())

    paths = {url.removeprefix("http://gw").split("/")[1] for _, url, _ in session.calls}
    assert paths == {"inventory", "wallets", "orders"}
    assert len(session.calls) == drivers.SKUS + drivers.WALLETS + 3
    for method, url, headers in session.calls:
        assert headers.get("authorization") == "Bearer k3y", (method, url)
    placed = [h for m, url, h in session.calls if m == "POST" and url.endswith("/orders")]
    assert placed == [{**key, "Idempotency-Key": "t-7"}]


def test_a_seed_the_gateway_refuses_stops_the_run_rather_than_measure_refusals() -> None:
    session = _GatewaySession()

    def refused(url: str, *, json: Any, headers: dict[str, str] | None = None) -> _Answer:
        answer = _Answer()
        answer.status = 401
        return answer

    session.post = refused  # type: ignore[method-assign]

    with pytest.raises(aiohttp.ClientResponseError):
        asyncio.run(drivers.seed(session, "http://gw", "t"))  # type: ignore[arg-type]


@pytest.fixture
def bench_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> harness.BenchCluster:
    """The bench's cluster as defined (nothing started), its state dir under tmp_path."""
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(tmp_path))
    return harness.BenchCluster()


def test_the_bench_calls_its_gateway_as_the_operator_the_launcher_lets_in(
    bench_cluster: harness.BenchCluster,
) -> None:
    bench = bench_cluster
    keys = bench.cluster.gateway_keys

    assert bench.gateway_headers == {"authorization": f"Bearer {keys.keys['ops']}"}
    gateway = bench.cluster.processes["gateway"]
    clients = auth.load_clients(Path(gateway.env[auth.CLIENTS_ENV]))
    admitted = auth.Gatekeeper(clients).decide(
        "POST", "/wallets/w1/deposit", bench.gateway_headers["authorization"].encode()
    )
    assert isinstance(admitted, auth.Client)
    assert admitted.spec.id == "ops"
    assert admitted.bucket is None  # no rate limit: the bench's load is never refused


def test_the_workflow_peer_and_its_daprd_get_the_clusters_tokens_as_the_launcher_gives_them(
    bench_cluster: harness.BenchCluster,
) -> None:
    bench = bench_cluster
    tokens = bench.cluster.tokens

    daprd, app = bench.peer

    assert bench.sidecar_headers == {"dapr-api-token": tokens.dapr}
    for proc in (daprd, app, bench.cluster.processes["gateway-daprd"]):
        assert {k: proc.env[k] for k in tokens.env} == tokens.env, proc.name


def test_hop_cost_refuses_a_baseline_that_is_no_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        hop_cost.parse_args(["--against", str(tmp_path)])
    assert "no apps/gateway there" in capsys.readouterr().err
    (tmp_path / "apps" / "gateway").mkdir(parents=True)
    assert hop_cost.parse_args(["--against", str(tmp_path)]).against == tmp_path


@pytest.mark.parametrize("bad", ["", "5,x", "-1", "0,,5"])
def test_hop_cost_refuses_gaps_that_are_not_milliseconds(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        hop_cost.parse_args(["--gaps-ms", bad])

    assert "--gaps-ms" in capsys.readouterr().err
    assert hop_cost.parse_args(["--gaps-ms", "0,5,20"]).gaps_ms == (0.0, 5.0, 20.0)
    assert hop_cost.parse_args([]).gaps_ms is None


class _Popen:
    """Stands in for subprocess.Popen: records what a gateway would have been started with."""

    started: ClassVar[list[_Popen]] = []

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path, stderr: Any) -> None:
        self.argv, self.env, self.cwd, self.pid = argv, env, cwd, 0
        _Popen.started.append(self)


def test_hop_cost_runs_its_gateway_checking_a_key_and_a_baseline_without_auth_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ours gets a clients file its key passes (so the figures include the check); a
    checkout from before apps/gateway/auth.py gets neither file nor key, and says so."""
    old = tmp_path / "old"
    (old / "apps" / "gateway").mkdir(parents=True)
    monkeypatch.setattr(subprocess, "Popen", _Popen)
    monkeypatch.setenv(auth.CLIENTS_ENV, "/the/shells/own.json")
    _Popen.started = []
    args = hop_cost.parse_args(["--against", str(old)])

    servers = hop_cost._gateways(
        args, ports={"gateway": 1, "baseline": 2}, dapr_port=3, folder=tmp_path
    )

    ours, baseline = _Popen.started
    assert ours.cwd == ROOT
    clients = auth.load_clients(Path(ours.env[auth.CLIENTS_ENV]))
    key = servers["gateway"].headers["authorization"].encode()
    for path in ("/wallets/hop-0/deposit", "/orders"):
        assert isinstance(auth.Gatekeeper(clients).decide("POST", path, key), auth.Client)
    assert baseline.cwd == old.resolve()
    assert auth.CLIENTS_ENV not in baseline.env
    assert servers["baseline"].headers == {}
    assert "baseline" in capsys.readouterr().out

    (old / "apps" / "gateway" / "auth.py").touch()  # a baseline that checks keys too
    _Popen.started = []
    servers = hop_cost._gateways(
        args, ports={"gateway": 1, "baseline": 2}, dapr_port=3, folder=tmp_path
    )
    assert _Popen.started[1].env[auth.CLIENTS_ENV] == ours.env[auth.CLIENTS_ENV]
    assert servers["baseline"].headers == servers["gateway"].headers


def test_hop_cost_sends_each_server_its_own_headers_beside_the_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, str]] = []

    class Pool:
        def __init__(self, host: str, port: int, *, max_connections: int) -> None:
            pass

        async def request(
            self, method: str, path: str, *, content: bytes, headers: dict[str, str]
        ) -> tuple[int, bytes]:
            sent.append(headers)
            await asyncio.sleep(0.01)
            return 200, b""

        async def close(self) -> None:
            pass

    monkeypatch.setattr(hop_cost, "Http1Pool", Pool)
    server = hop_cost.Server(None, 1, {"authorization": "Bearer k3y"})  # type: ignore[arg-type]

    ok, other = asyncio.run(hop_cost._drive(server, 0.02, 1, command="order"))

    assert ok >= 1
    assert other == 0
    assert sent[0] == {
        "idempotency-key": "hop-0",
        "authorization": "Bearer k3y",
        "content-type": "application/json",
    }


def test_gateway_floor_sends_the_key_to_the_gateway_alone_and_the_token_to_daprd_alone() -> None:
    """The gateway pays for its auth check; raw daprd never reaches it; the bare forwarder
    stays bare (no key, nothing checks one)."""
    token, key = {"dapr-api-token": "t0ken"}, {"authorization": "Bearer k3y"}
    bench = SimpleNamespace(
        dapr=lambda app: "http://d",
        url=lambda app: "http://gw",
        sidecar_headers=token,
        gateway_headers=key,
    )
    session = _Session()
    ways = gateway_floor.requests(bench, "http://floor", "t")  # type: ignore[arg-type]

    for request in ways.values():
        assert asyncio.run(request(session, 0))  # type: ignore[arg-type]

    sent = {url.split("/")[2]: headers for url, headers in session.headers}
    assert sent == {"d": token, "gw": key, "floor": {}}
