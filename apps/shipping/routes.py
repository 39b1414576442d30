"""The partner's control API: default behaviour, per-order overrides, counters (its feed's too).

Everything here lives in memory (it is a simulator): a restart forgets it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from actors.toolkit.ids import ORDER_ID_PATTERN
from apps.shipping.deps import FeedDep, FeedModeDep, PartnerDep
from apps.shipping.partner import Override, OverrideLimitError, PartnerSettings

router = APIRouter(prefix="/partner", tags=["partner"])
OrderIdParam = Annotated[str, Path(pattern=ORDER_ID_PATTERN, description="the order's id")]


@router.get("/settings")
async def get_settings(partner: PartnerDep) -> PartnerSettings:
    return partner.settings


@router.put("/settings")
async def put_settings(settings: PartnerSettings, partner: PartnerDep) -> PartnerSettings:
    """Delay and failure rate for every order without an override."""
    partner.settings = settings
    return settings


@router.get("/stats")
async def get_stats(partner: PartnerDep, mode: FeedModeDep, feed: FeedDep) -> dict[str, Any]:
    """Counts since start: dispatched, failed, silent, ignored, dropped, retried; and
    `feed`: where the orders come from (`mode`: streams or dapr) and, with the streams
    feed, what it read, acknowledged, claimed and is deciding now."""
    body: dict[str, Any] = {**partner.stats.as_dict(), "feed": {"mode": mode}}
    if feed is not None:
        body["feed"].update(group=feed.settings.group, consumer=feed.settings.consumer)
        body["feed"].update(feed.stats.as_dict())
    return body


@router.get("/orders/{order_id}")
async def get_override(order_id: OrderIdParam, partner: PartnerDep) -> Override:
    override = partner.override_for(order_id)
    if override is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no override for order {order_id}")
    return override


@router.put("/orders/{order_id}")
async def put_override(order_id: OrderIdParam, override: Override, partner: PartnerDep) -> Override:
    """Fix this order's outcome: dispatch, fail (with an optional reason) or silent."""
    try:
        partner.set_override(order_id, override)
    except OverrideLimitError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return override


@router.delete("/orders/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_override(order_id: OrderIdParam, partner: PartnerDep) -> None:
    partner.clear_override(order_id)
