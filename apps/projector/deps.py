"""Route dependencies of the projector: the store, reader and stats the lifespan built.

Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
per delivery for a dictionary lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps.projector.reader import EventReader
from apps.projector.stats import ProjectorStats
from apps.projector.store import ProjectionStore


async def get_store(request: Request) -> ProjectionStore:
    store: ProjectionStore = request.app.state.store
    return store


async def get_reader(request: Request) -> EventReader:
    reader: EventReader = request.app.state.reader
    return reader


async def get_stats(request: Request) -> ProjectorStats:
    stats: ProjectorStats = request.app.state.stats
    return stats


StoreDep = Annotated[ProjectionStore, Depends(get_store)]
StatsDep = Annotated[ProjectorStats, Depends(get_stats)]
ReaderDep = Annotated[EventReader, Depends(get_reader)]
