"""The apps' startup heap, moved out of the cyclic garbage collector's way.

A started app holds ~100 000 objects the collector tracks (FastAPI's routes and models,
pydantic's validators, the OpenTelemetry and prometheus modules...) and allocates for
every request. Python re-examines its oldest generation whenever the objects promoted
since the last full pass reach a quarter of it, and under load the objects of the
requests in flight are promoted all the time: in the gateway under 32 Deposit workers a
full pass came every few seconds and took ~70 ms of CPU (and of latency for everything
waiting on the event loop), ~15 µs a request. `freeze_startup_heap()`, called when a
lifespan's startup is done, collects once and moves what is alive then into the
permanent generation (`gc.freeze`): later passes walk only what came after.

Once per process. A frozen object that later becomes garbage inside a reference cycle is
never collected, so in a process that starts app after app (the tests) only the first
startup freezes. `ORDERFLOW_GC_FREEZE=0` leaves the collector as Python sets it (to
compare).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from typing import Final

GC_FREEZE_ENV: Final = "ORDERFLOW_GC_FREEZE"

_frozen = False


def freeze_enabled(env: Mapping[str, str]) -> bool:
    """`ORDERFLOW_GC_FREEZE`: "1" (the default) or "0"; anything else is refused."""
    value = env.get(GC_FREEZE_ENV, "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"{GC_FREEZE_ENV} must be 0 or 1, not {value!r}")
    return value == "1"


def freeze_startup_heap(env: Mapping[str, str] | None = None) -> bool:
    """Collect, then freeze what is alive (the first call in the process, when enabled).
    True if this call froze the heap."""
    global _frozen
    if _frozen or not freeze_enabled(os.environ if env is None else env):
        return False
    _frozen = True
    gc.collect()
    gc.freeze()
    return True
