"""Which actor types record business metrics of their own as they commit (ActorMetrics).

The composition roots (the actor host, the in-memory sidecar) build their ActorMetrics
here, as they build the event router from actors/reactions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prometheus_client import CollectorRegistry

from actors import catalog
from actors.order.metrics import SagaWatcher
from actors.toolkit.metrics import ActorMetrics, WatcherFactory

WATCHERS: Final[Mapping[str, WatcherFactory]] = {catalog.ORDER_ACTOR: SagaWatcher}


def build_actor_metrics(registry: CollectorRegistry | None = None) -> ActorMetrics:
    """The actors' metrics on `registry` (a new one if None), the order saga's included."""
    return ActorMetrics(registry, watchers=WATCHERS)
