"""Route dependencies of the projector: the stats the lifespan built (its ops routes).

The event deliveries do not use FastAPI's dependencies: they are served by
actors.toolkit.fastpath and read the store, reader and stats from app.state.
Async on purpose: FastAPI runs a plain `def` dependency in its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps.projector.stats import ProjectorStats


async def get_stats(request: Request) -> ProjectorStats:
    stats: ProjectorStats = request.app.state.stats
    return stats


StatsDep = Annotated[ProjectorStats, Depends(get_stats)]
