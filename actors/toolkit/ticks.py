"""uvicorn's housekeeping tick, once a second instead of ten times, still stopping at once.

uvicorn's `Server.main_loop` wakes every 0.1 s to run `on_tick`: it refreshes the Date
header on every tenth tick (once a second), and checks `should_exit`, which its signal
handler sets, and the request limit (unset here). On this box a Python process woken
after a few milliseconds asleep spends several times the CPU on the same work (`python
-m bench.hop_cost --gaps-ms`), so those nine needless wake-ups a second were ~2.5 ms of
CPU a second in every idle app: in the local cluster's five apps, about a fifth of what
the whole idle cluster burns.

`install()`, called by each app's lifespan once it has started, replaces the loop of
every `uvicorn.Server` in the process with one that ticks once a second (the Date
header is refreshed as often as before) and that the stop signals (SIGINT, SIGTERM) wake
at once: it chains a wake-up onto the handlers uvicorn installed, and puts them back
when the loop ends. A stop therefore begins as soon as it did with ten ticks a second.
Only a server whose `should_exit` is set by code rather than by a signal (the tests'
in-process servers) waits up to one tick to notice. Tested against the pinned uvicorn
(tests/apps/test_ticks.py): a real server started by `uvicorn --factory` wakes about once
a second idle, and stops on SIGTERM long before a tick would have let it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from uvicorn import server as uvicorn_server

TICK_S: Final = 1.0

_tick_s: float | None = None  # the installed tick; None until install()


def install(tick_s: float = TICK_S) -> bool:
    """Tick every `tick_s` in every uvicorn server of this process (the first call wins).
    True if this call installed it."""
    global _tick_s
    if _tick_s is not None:
        return False
    if tick_s <= 0:
        raise ValueError(f"tick_s must be > 0, not {tick_s}")
    _tick_s = tick_s
    uvicorn_server.Server.main_loop = _main_loop  # type: ignore[method-assign]
    return True


async def _main_loop(self: uvicorn_server.Server) -> None:
    tick_s = _tick_s or TICK_S
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    restore = _wake_on_stop_signals(lambda: loop.call_soon_threadsafe(woken.set))
    try:
        # counter 0: on_tick refreshes the Date header on every call, i.e. once a tick
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), tick_s)
            woken.clear()
    finally:
        restore()


Handler = Callable[[int, FrameType | None], Any]


def _wake_on_stop_signals(wake: Callable[[], object]) -> Callable[[], None]:
    """Chain `wake` after the handler of each signal uvicorn stops on; the undo. Signal
    handlers belong to the main thread: a server run in another thread is stopped by
    code, and notices within a tick."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    chained: dict[int, Handler] = {}
    for sig in uvicorn_server.HANDLED_SIGNALS:
        previous = signal.getsignal(sig)
        if callable(previous):
            chained[sig] = previous
            signal.signal(sig, _then(previous, wake))

    def restore() -> None:
        for sig, previous in chained.items():
            signal.signal(sig, previous)

    return restore


def _then(handler: Handler, wake: Callable[[], object]) -> Handler:
    def chained(sig: int, frame: FrameType | None) -> None:
        try:
            handler(sig, frame)
        finally:
            wake()

    return chained
