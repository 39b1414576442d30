"""CPU ticks and RSS of processes by pid, from /proc (Linux only)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bench.figures import BoxSample

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_ticks(text: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may hold spaces: split after its
    closing parenthesis; utime and stime are fields 14 and 15 of the whole line.
    """
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])  # rest[0] is field 3 (state)


def cpu_ticks(pids: Mapping[str, int]) -> dict[str, int]:
    """utime+stime of every live pid, by name (a process gone is left out)."""
    out: dict[str, int] = {}
    for name, pid in pids.items():
        try:
            out[name] = stat_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    return out


def switch_count(text: str) -> int:
    """voluntary_ctxt_switches from the text of /proc/<pid>/task/<tid>/status (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def wakeups(pids: Mapping[str, int]) -> dict[str, dict[int, int]]:
    """Voluntary context switches of every live pid's threads, by name and thread id: how
    often each slept and was woken again (a process gone is left out). Compare two with
    `bench.figures.thread_deltas`."""
    out: dict[str, dict[int, int]] = {}
    for name, pid in pids.items():
        threads: dict[int, int] = {}
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                threads[int(status.parent.name)] = switch_count(status.read_text())
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
        if threads:
            out[name] = threads
    return out


def rss_kib(pid: int) -> int | None:
    """Resident set size in KiB (VmRSS of /proc/<pid>/status), None when the pid is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def parse_cpu_line(line: str) -> tuple[int, int, int]:
    """(busy, steal, total) ticks from /proc/stat's `cpu` line: user nice system idle
    iowait irq softirq steal [guest guest_nice]; guest time is already in user, so busy is
    everything but idle, iowait and steal."""
    fields = [int(f) for f in line.split()[1:]]
    idle, iowait = fields[3], fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return total - idle - iowait - steal, steal, total


def parse_psi_some(text: str) -> int:
    """The `some` line's total (µs) from the text of a /proc/pressure/* file."""
    for line in text.splitlines():
        if line.startswith("some "):
            return int(line.rsplit("total=", 1)[1])
    raise ValueError("no `some` line")


def box_sample() -> BoxSample:
    busy, steal, total = parse_cpu_line(Path("/proc/stat").read_text().splitlines()[0])
    try:
        io: int | None = parse_psi_some(Path("/proc/pressure/io").read_text())
    except (OSError, ValueError):  # no PSI (CONFIG_PSI off, or psi=0 at boot)
        io = None
    return BoxSample(busy, steal, total, io)


def machine_busy() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()
