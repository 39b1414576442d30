"""Sagas in progress as gauges, read from the read models when Prometheus scrapes.

Per waiting status (reserving, authorizing, confirmed): how many orders, the age of the
oldest since it was placed, and how many were placed longer than `stuck_after` ago. The
order's deadline reminders cancel a saga that stops moving well before that (its step
timeouts add up to 2 minutes by default), so a stuck order means a saga lost its way:
the `OrderflowSagasStuck` alert (deploy/prometheus/alerts.yml) fires on it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

from redis.exceptions import RedisError

from actors.order.model import TERMINAL, Status
from actors.toolkit.metrics import ProjectorMetrics
from readmodels.queries import ReadModels

WAITING: Final = tuple(s.value for s in Status if s not in TERMINAL and s is not Status.NEW)
DEFAULT_STUCK_AFTER: Final = dt.timedelta(minutes=5)
log = logging.getLogger("orderflow.projector")


class SagaGauges:
    def __init__(
        self,
        readmodels: ReadModels,
        metrics: ProjectorMetrics,
        *,
        stuck_after: dt.timedelta = DEFAULT_STUCK_AFTER,
    ) -> None:
        self._readmodels = readmodels
        self._metrics = metrics
        self._stuck_after = stuck_after

    async def refresh(self, now: dt.datetime) -> None:
        """Set the gauges from the read models (Redis down: they keep their last values)."""
        now_ms = now.timestamp() * 1000
        cutoff_ms = now_ms - self._stuck_after.total_seconds() * 1000
        try:
            found = await self._readmodels.in_progress(WAITING, cutoff_ms=cutoff_ms)
        except RedisError as exc:
            log.info("saga gauges not refreshed: %s: %s", type(exc).__name__, exc)
            return
        m = self._metrics
        for status in found:
            oldest = status.oldest_placed_ms
            age_s = max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0.0
            m.in_progress.labels(status.status).set(status.count)
            m.oldest_age.labels(status.status).set(age_s)
            m.stuck.labels(status.status).set(status.placed_by_cutoff)
