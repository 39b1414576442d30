"""uvicorn's tick once a second (actors.toolkit.ticks), on a real server in a process of
its own: idle, it wakes about once a tick; SIGTERM still stops it at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest
import uvicorn

from actors.toolkit import ticks
from bench import procfs
from bench.figures import thread_deltas
from cluster.config import ROOT
from cluster.ports import any_free_port, can_bind
from cluster.processes import wait_until

# a FastAPI app whose lifespan installs the tick (argv[2]: its length, or "none"), served
# by uvicorn.run: uvicorn's own Server, signal handlers and main loop
SERVER = """
import sys
from contextlib import asynccontextmanager
import uvicorn
from fastapi import FastAPI
from actors.toolkit import ticks

@asynccontextmanager
async def lifespan(app):
    if sys.argv[2] != "none":
        ticks.install(float(sys.argv[2]))
    yield

app = FastAPI(lifespan=lifespan)

@app.get("/")
async def root() -> dict[str, bool]:
    return {"ok": True}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@pytest.mark.parametrize(
    ("tick", "most_wakeups", "least_wakeups"),
    [("60", 8, 0), ("none", None, 15)],  # none: uvicorn's own ten a second, ~30 in 3 s
)
def test_an_idle_server_wakes_once_a_tick_and_sigterm_stops_it_at_once(
    tick: str, most_wakeups: int | None, least_wakeups: int
) -> None:
    port = any_free_port()
    with subprocess.Popen([sys.executable, "-c", SERVER, str(port), tick], cwd=ROOT) as server:
        try:
            listening = lambda: server.poll() is not None or not can_bind(port)  # noqa: E731
            wait_until(listening, timeout=30, what=f"the server on port {port}")
            answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
            before = procfs.wakeups({"server": server.pid})
            time.sleep(3)
            woken = thread_deltas(before, procfs.wakeups({"server": server.pid}))["server"]
            server.send_signal(signal.SIGTERM)
            # a 60 s tick not woken by the signal would still be asleep when this gives up
            code = server.wait(timeout=20)
        finally:
            server.kill()

    assert answer.status_code == 200
    assert "date" in answer.headers  # refreshed by on_tick, as before
    assert code == -signal.SIGTERM  # uvicorn stops gracefully, then re-raises the signal
    assert woken >= least_wakeups
    if most_wakeups is not None:
        assert woken <= most_wakeups


def test_install_refuses_a_tick_that_is_not_positive_and_installs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ticks, "_tick_s", None)
    monkeypatch.setattr(uvicorn.Server, "main_loop", uvicorn.Server.main_loop)

    with pytest.raises(ValueError, match="tick_s must be > 0"):
        ticks.install(0)
    assert ticks.install(2.0) is True
    assert ticks.install(5.0) is False
    assert ticks._tick_s == 2.0
    assert uvicorn.Server.main_loop is ticks._main_loop
