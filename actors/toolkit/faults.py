"""Test-only fault injection, honoured only when the host runs with ORDERFLOW_TEST_FAULTS=1.

A command payload may carry `"fault"`:
    "crash_after_save"   SIGKILL the host between the save and the publish
    "hold:<token>"       after deciding, wait inside the turn until the test releases
                         <token> (POST /_test/holds/<token>/release on that host), then
                         try to append: a zombie activation on demand
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

CRASH_AFTER_SAVE: Final = "crash_after_save"
HOLD_PREFIX: Final = "hold:"
HOLD_LIMIT: Final = 120.0  # seconds a held call waits at most for its release
RELEASE_WAIT: Final = 10.0  # seconds a release waits for the held call to end


@dataclass
class _Held:
    release: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: asyncio.Future[str] | None = None


class HeldCalls:
    """Barriers for held calls, by token, and how each held call ended."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    async def hold(self, token: str) -> None:
        held = self._held.setdefault(token, _Held())
        held.outcome = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(held.release.wait(), HOLD_LIMIT)

    def finish(self, token: str, outcome: str) -> None:
        held = self._held.get(token)
        if held is not None and held.outcome is not None and not held.outcome.done():
            held.outcome.set_result(outcome)

    def holding(self, token: str) -> bool:
        held = self._held.get(token)
        return held is not None and held.outcome is not None and not held.release.is_set()

    async def release(self, token: str) -> str:
        """Let the held call go on; answer how it ended ("committed", "conflict", ...)."""
        held = self._held.get(token)
        if held is None or held.outcome is None:
            raise KeyError(token)
        held.release.set()
        try:
            async with asyncio.timeout(RELEASE_WAIT):
                return await asyncio.shield(held.outcome)
        finally:
            self._held.pop(token, None)
