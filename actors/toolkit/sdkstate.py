"""The SDK's actor state manager, without the thread hand-off of its cache clear.

The SDK clears an actor's state-change tracker at every activation and deactivation (and
after a failed call) through `loop.run_in_executor(None, tracker.clear)`: a dict cleared
in a worker thread while the event loop waits for it. That is a hand-off to the default
thread pool and back (the worker woken, then the loop through its self-pipe) for every
OrderActor an order activates and deactivates, ~2 per order; on this box each wake-up
costs more than the work it does (README, "Performance"). Our actors keep their state in
the event store, not in the tracker, so it is empty, and clearing it in the loop is the
same clear without the threads (and without a worker touching a dict the loop owns).
"""

from __future__ import annotations

from typing import Any

from dapr.actor.runtime.state_manager import ActorStateManager


class LoopStateManager(ActorStateManager[Any]):
    async def clear_cache(self) -> None:
        self._get_contextual_state_tracker().clear()
