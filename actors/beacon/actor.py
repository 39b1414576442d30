"""BeaconActor: state, a reminder, and the replica that served each call."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from typing import cast

from dapr.actor import Actor, Remindable
from pydantic import ValidationError

from actors.beacon.interface import BeaconActorInterface
from actors.beacon.model import Arm, BeaconState, Touch, Visit

STATE_KEY = "beacon"
REMINDER = "beat"


def replica_name() -> str:
    """The name BeaconActor answers with: this process's (ORDERFLOW_APP_NAME)."""
    return os.environ.get("ORDERFLOW_APP_NAME", "unknown")


def _error(exc: ValidationError) -> bytes:
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return json.dumps(
        {"ok": False, "error": {"code": "request.invalid", "detail": detail}}
    ).encode()


class BeaconActor(Actor, BeaconActorInterface, Remindable):
    async def _load(self) -> BeaconState:
        found, raw = await self._state_manager.try_get_state(STATE_KEY)
        return BeaconState.model_validate_json(cast(bytes, raw)) if found else BeaconState()

    async def _save(self, state: BeaconState) -> None:
        await self._state_manager.set_state(STATE_KEY, state.model_dump_json().encode())
        await self._state_manager.save_state()

    def _ok(self, state: BeaconState) -> bytes:
        body = {"ok": True, "result": {**state.model_dump(mode="json"), "replica": replica_name()}}
        return json.dumps(body).encode()

    async def touch(self, payload: bytes) -> bytes:
        try:
            cmd = Touch.model_validate_json(payload or b"{}")
        except ValidationError as exc:
            return _error(exc)
        enter = time.time()
        if cmd.hold_ms:
            await asyncio.sleep(cmd.hold_ms / 1000)
        state = await self._load()
        state = state.visited(Visit(enter=enter, exit=time.time(), replica=replica_name()), cmd)
        await self._save(state)
        return self._ok(state)

    async def get(self) -> bytes:
        return self._ok(await self._load())

    async def arm(self, payload: bytes) -> bytes:
        try:
            cmd = Arm.model_validate_json(payload or b"{}")
        except ValidationError as exc:
            return _error(exc)
        await self.register_reminder(
            REMINDER,
            b"",
            dt.timedelta(milliseconds=cmd.due_ms),
            dt.timedelta(milliseconds=cmd.period_ms),
        )
        return self._ok(await self._load())

    async def disarm(self) -> bytes:
        await self.unregister_reminder(REMINDER)
        return self._ok(await self._load())

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: dt.timedelta,
        period: dt.timedelta,
        ttl: dt.timedelta | None = None,
    ) -> None:
        if name == REMINDER:
            await self._save((await self._load()).fired(replica_name()))
