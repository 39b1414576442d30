"""Route dependencies of the shipping app: the partner state and the event publisher.

Async on purpose: FastAPI runs a sync dependency in its thread pool (a hand-off per
request that showed as ~8 % of a subscriber's CPU in py-spy)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from actors.toolkit.publisher import SidecarPublisher
from apps.shipping.partner import Partner


async def get_partner(request: Request) -> Partner:
    partner: Partner = request.app.state.partner
    return partner


async def get_publisher(request: Request) -> SidecarPublisher:
    publisher: SidecarPublisher = request.app.state.publisher
    return publisher


PartnerDep = Annotated[Partner, Depends(get_partner)]
PublisherDep = Annotated[SidecarPublisher, Depends(get_publisher)]
