"""actors/toolkit/heap.py: the startup heap frozen once per process, on by default."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors.toolkit.heap import freeze_enabled


@pytest.mark.parametrize(("env", "expected"), [({}, True), ({"ORDERFLOW_GC_FREEZE": "1"}, True)])
def test_on_by_default(env: dict[str, str], expected: bool) -> None:
    assert freeze_enabled(env) is expected


def test_zero_turns_it_off() -> None:
    assert freeze_enabled({"ORDERFLOW_GC_FREEZE": " 0 "}) is False


@pytest.mark.parametrize("value", ["yes", "true", "2", ""])
def test_anything_else_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match="ORDERFLOW_GC_FREEZE must be 0 or 1"):
        freeze_enabled({"ORDERFLOW_GC_FREEZE": value})


def _run(code: str, **env: str) -> str:
    """`code` in a fresh interpreter (the freeze is once per process)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=Path(__file__).resolve().parents[2],  # the repository
    )
    return done.stdout.strip()


FREEZE_TWICE = """
    import gc, sys
    sys.path.insert(0, ".")
    from actors.toolkit.heap import freeze_startup_heap
    kept = [[i] for i in range(1000)]  # alive at startup: frozen
    first = freeze_startup_heap()
    frozen = gc.get_freeze_count()
    later = [[i] for i in range(1000)]  # after startup: the collector's as usual
    second = freeze_startup_heap()
    print(first, frozen >= 1000, second, gc.get_freeze_count() == frozen)
"""


def test_the_first_call_freezes_what_is_alive_and_later_calls_nothing() -> None:
    assert _run(FREEZE_TWICE) == "True True False True"


def test_switched_off_nothing_is_frozen() -> None:
    code = FREEZE_TWICE.replace("frozen >= 1000", "frozen == 0")
    assert _run(code, ORDERFLOW_GC_FREEZE="0") == "False True False True"
