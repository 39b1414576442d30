"""The projector's stats keep a window of samples, however long nobody reads them."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.projector.projections import Projection
from apps.projector.stats import ProjectorStats
from readmodels.rows import StockRow


def test_applied_times_stay_within_the_window_when_nobody_reads_the_throughput() -> None:
    now = [0.0]
    stats = ProjectorStats(window_s=10.0, clock=lambda: now[0])
    row = StockRow(sku="sku-1")
    applied = Projection(row, row, applied=1)
    at = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)

    for n in range(10_000):  # 100 events a second for 100 s, no stats read meanwhile
        now[0] = n / 100
        stats.record(applied, occurred_at=at, now=at)

    assert stats.applied == 10_000
    assert len(stats._applied_times) <= 10 * 100 + 1
    assert stats.throughput() == pytest.approx(100.0, abs=0.2)
