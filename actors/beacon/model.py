"""BeaconActor's state and payloads (pure: no Dapr here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_VISITS = 200


class Touch(BaseModel):
    """Record a visit; `hold_ms` keeps the turn busy (to observe turn-based concurrency)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hold_ms: int = Field(default=0, ge=0, le=5_000)
    note: str = Field(default="", max_length=200)
    # A retried call (Dapr resiliency retries actor calls) must not count twice.
    request_id: str = Field(default="", max_length=64)


class Arm(BaseModel):
    """Register the periodic "beat" reminder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    due_ms: int = Field(default=1_000, ge=0, le=3_600_000)
    period_ms: int = Field(default=1_000, ge=100, le=3_600_000)


class Visit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enter: float
    exit: float
    replica: str


class BeaconState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    touches: int = 0
    note: str = ""
    visits: tuple[Visit, ...] = ()
    reminder_fires: int = 0
    fired_on: tuple[str, ...] = ()  # replicas that ran the reminder, most recent last
    recent_requests: tuple[str, ...] = ()  # the last MAX_VISITS request ids applied

    def visited(self, visit: Visit, cmd: Touch) -> BeaconState:
        if cmd.request_id and cmd.request_id in self.recent_requests:
            return self
        requests = (
            (*self.recent_requests, cmd.request_id) if cmd.request_id else self.recent_requests
        )
        return self.model_copy(
            update={
                "touches": self.touches + 1,
                "note": cmd.note or self.note,
                "visits": (*self.visits, visit)[-MAX_VISITS:],
                "recent_requests": requests[-MAX_VISITS:],
            }
        )

    def fired(self, replica: str) -> BeaconState:
        return self.model_copy(
            update={
                "reminder_fires": self.reminder_fires + 1,
                "fired_on": (*self.fired_on, replica)[-20:],
            }
        )
