"""BeaconActor's state and payloads (pure: no Dapr here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_VISITS = 200


class Touch(BaseModel):
    """Record a visit; `hold_ms` keeps the turn busy (to observe turn-based concurrency)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hold_ms: int = Field(default=0, ge=0, le=5_000)
    note: str = Field(default="", max_length=200)


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

    def visited(self, visit: Visit, note: str) -> BeaconState:
        return self.model_copy(
            update={
                "touches": self.touches + 1,
                "note": note or self.note,
                "visits": (*self.visits, visit)[-MAX_VISITS:],
            }
        )

    def fired(self, replica: str) -> BeaconState:
        return self.model_copy(
            update={
                "reminder_fires": self.reminder_fires + 1,
                "fired_on": (*self.fired_on, replica)[-20:],
            }
        )
