"""The plots: PromQL over the last minutes from Prometheus's HTTP API (/api/v1/query_range).

Every query lives in PLOTS, so the metric names (declared in actors/toolkit/metrics.py) are
adjusted in one place. A plot whose
query returns nothing, or a Prometheus that is not running, answers "no data" with why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import httpx


@dataclass(frozen=True)
class Series:
    label: str
    query: str


@dataclass(frozen=True)
class Plot:
    title: str
    unit: str
    series: tuple[Series, ...]


def _quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[1m])))"


PLOTS: Final[dict[str, Plot]] = {
    "throughput": Plot(
        "Order throughput",
        "orders/s",
        (
            Series("placed", "sum(rate(orderflow_orders_placed_total[1m]))"),
            Series("shipped", "sum(rate(orderflow_orders_shipped_total[1m]))"),
            Series("cancelled", "sum(rate(orderflow_orders_cancelled_total[1m]))"),
        ),
    ),
    # per saga step (reserving, authorizing, shipping), every step and outcome together
    "saga_latency": Plot(
        "Saga step latency",
        "s",
        (
            Series("p50", _quantile(0.5, "orderflow_saga_step_duration_seconds")),
            Series("p99", _quantile(0.99, "orderflow_saga_step_duration_seconds")),
        ),
    ),
    "projection_lag": Plot(
        "Projection lag",
        "s",
        (
            Series("p50", _quantile(0.5, "orderflow_projection_lag_seconds")),
            Series("p99", _quantile(0.99, "orderflow_projection_lag_seconds")),
        ),
    ),
    "outbox_backlog": Plot(
        "Outbox backlog",
        "events",
        (Series("unpublished", "sum(orderflow_outbox_backlog)"),),
    ),
    "error_rate": Plot(
        "Error rate",
        "/s",
        (
            Series("HTTP 5xx", 'sum(rate(orderflow_http_requests_total{status=~"5.."}[1m]))'),
            Series("dead letters", "sum(rate(orderflow_dead_letters_total[1m]))"),
        ),
    ),
}


@dataclass(frozen=True)
class PlotData:
    """uPlot's data layout: one x axis (unix seconds) and one y array per series."""

    name: str
    plot: Plot
    x: list[float]
    ys: list[list[float | None]]
    no_data: str = ""  # why there is nothing to draw ("" when there is)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.plot.title,
            "unit": self.plot.unit,
            "labels": [s.label for s in self.plot.series],
            "queries": [s.query for s in self.plot.series],
            "data": [self.x, *self.ys],
            "no_data": self.no_data,
        }


class Plotter:
    def __init__(self, http: httpx.AsyncClient, prometheus: str) -> None:
        self._http = http
        self._prometheus = prometheus

    async def data(self, name: str, *, minutes: int = 15, now: float | None = None) -> PlotData:
        """Raises KeyError for a plot that does not exist."""
        plot = PLOTS[name]
        end = time.time() if now is None else now
        step = max(5, minutes * 60 // 180)
        start = end - minutes * 60
        x = [float(t) for t in range(int(start) // step * step, int(end) + 1, step)]
        ys: list[list[float | None]] = []
        errors: list[str] = []
        for series in plot.series:
            values, error = await self._range(series.query, start, end, step)
            errors += [error] if error else []
            ys.append([values.get(t) for t in x])
        empty = all(v is None for y in ys for v in y)
        why = "; ".join(dict.fromkeys(errors)) if errors else "the queries returned no samples"
        return PlotData(name, plot, x, ys, no_data=why if empty else "")

    async def _range(
        self, query: str, start: float, end: float, step: int
    ) -> tuple[dict[float, float], str]:
        params = {"query": query, "start": str(start), "end": str(end), "step": str(step)}
        try:
            resp = await self._http.get(
                f"{self._prometheus}/api/v1/query_range", params=params, timeout=3.0
            )
            body = resp.json()
        except httpx.ConnectError:
            return {}, f"Prometheus is not running ({self._prometheus})"
        except (httpx.HTTPError, ValueError) as exc:
            return {}, f"Prometheus did not answer ({type(exc).__name__})"
        if body.get("status") != "success":
            return {}, f"Prometheus refused the query: {body.get('error', resp.status_code)}"
        return _points(body.get("data", {}).get("result") or [], step), ""


def _points(result: list[dict[str, Any]], step: int) -> dict[float, float]:
    """The first series' samples, keyed by their time aligned to `step`."""
    points: dict[float, float] = {}
    for stamp, value in (result[0].get("values") or []) if result else []:
        try:
            number = float(value)
        except ValueError:
            continue
        if number == number:  # NaN (no rate yet) is a gap, not a point
            points[float(int(stamp) // step * step)] = number
    return points
