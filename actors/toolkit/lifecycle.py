"""What every app does once its lifespan has started, in one place.

`app_started()` is the last step of each app's lifespan startup: the startup heap is
frozen out of the cyclic GC (actors.toolkit.heap) and uvicorn's housekeeping tick drops to
once a second (actors.toolkit.ticks). Each is once per process.
"""

from __future__ import annotations

from actors.toolkit import heap, ticks


def app_started() -> None:
    heap.freeze_startup_heap()  # later GC passes skip what startup built
    ticks.install()  # uvicorn's tick once a second, not ten times
