"""The chaos suite's fault order (chaos/schedule.py `inject_faults`), with stand-in faults."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from chaos import schedule
from chaos.faults import Fault
from chaos.schedule import Options, inject_faults


@dataclass
class Recorder:
    """What inject_faults reads of chaos.faults.Faults: what was done, and which kinds."""

    done: list[Fault] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names = ["a", "b", "c"]

    def move(name: str, failure: str = "") -> schedule.FaultMove:
        return lambda f: f.done.append(Fault(name, 0, 0.0, failure))

    faults = {name: (name, move(name)) for name in names}
    faults["bad"] = ("bad", move("bad", failure="did not recover"))
    monkeypatch.setattr(schedule, "FAULTS", faults)
    return names


def test_each_once_runs_every_kind_exactly_once_past_the_duration(kinds: list[str]) -> None:
    faults = Recorder()
    options = Options(duration=0.0, faults=tuple(kinds), fault_every=0.0, seed="s", each_once=True)

    inject_faults(faults, options, until=time.monotonic())  # type: ignore[arg-type]

    assert sorted(faults.kinds) == kinds
    assert [f.what for f in faults.done] == faults.kinds


def test_by_default_faults_stop_at_the_duration(kinds: list[str]) -> None:
    faults = Recorder()
    options = Options(duration=0.0, faults=tuple(kinds), fault_every=0.0, seed="s")

    inject_faults(faults, options, until=time.monotonic() - 1)  # type: ignore[arg-type]

    assert faults.kinds == []


def test_each_once_stops_at_a_fault_the_cluster_did_not_recover_from(kinds: list[str]) -> None:
    faults = Recorder()
    # seed "y" orders them b, bad, c, a
    options = Options(faults=("bad", *kinds), fault_every=0.0, seed="y", each_once=True)

    inject_faults(faults, options, until=time.monotonic())  # type: ignore[arg-type]

    assert faults.kinds == ["b", "bad"]
