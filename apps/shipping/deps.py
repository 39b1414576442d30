"""Route dependencies of the shipping app: the partner state, the event publisher and the
feed (where the orders come from).

Async on purpose: FastAPI runs a sync dependency in its thread pool (a hand-off per
request that showed as ~8 % of a subscriber's CPU in py-spy)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.publisher import SidecarPublisher
from apps.shipping.partner import Partner


async def get_partner(request: Request) -> Partner:
    partner: Partner = request.app.state.partner
    return partner


async def get_publisher(request: Request) -> SidecarPublisher:
    publisher: SidecarPublisher = request.app.state.publisher
    return publisher


async def get_feed_mode(request: Request) -> str:
    """ORDERFLOW_SHIPPING_FEED as the lifespan resolved it: streams or dapr."""
    mode: str = request.app.state.feed_mode
    return mode


async def get_feed(request: Request) -> ConcurrentStreamFeed | None:
    """The orders stream's feed (None with the dapr feed, or in tests without Redis)."""
    feed: ConcurrentStreamFeed | None = request.app.state.feed
    return feed


PartnerDep = Annotated[Partner, Depends(get_partner)]
PublisherDep = Annotated[SidecarPublisher, Depends(get_publisher)]
FeedModeDep = Annotated[str, Depends(get_feed_mode)]
FeedDep = Annotated[ConcurrentStreamFeed | None, Depends(get_feed)]
