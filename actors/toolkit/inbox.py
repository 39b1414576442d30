"""Inbox dedupe: an actor remembers the results of the last N messages it applied.

A command or event whose message id is in the window gets the original result back
and changes nothing. The window is bounded (`DEFAULT_WINDOW` ids per actor, oldest
evicted first); a duplicate older than the window is applied again, so handlers keep
a second line of defence in the domain (state-machine checks, "already reserved for
this order" rules) that turns such a re-delivery into a no-op.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

DEFAULT_WINDOW = 256


class Inbox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = DEFAULT_WINDOW
    results: dict[str, str] = {}  # message id -> result JSON; insertion-ordered

    def seen(self, message_id: str) -> str | None:
        return self.results.get(message_id) if message_id else None

    def record(self, message_id: str, result: str) -> Inbox:
        if not message_id:
            return self
        results = {k: v for k, v in self.results.items() if k != message_id}
        results[message_id] = result
        while len(results) > self.window:
            del results[next(iter(results))]
        return self.model_copy(update={"results": results})
