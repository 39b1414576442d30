"""Paging through an actor's event log, shared by every resource's /history route."""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from actors.toolkit.audit import MAX_PAGE
from actors.toolkit.client import TypedClient
from apps.gateway.schemas import HistoryPage

DEFAULT_PAGE: Final = 50

After = Annotated[int, Query(ge=0, description="Last aggregate version already read")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Events per page")]

DESCRIPTION: Final = (
    "Events oldest first. When more remain, `next_after` is the cursor for the next page "
    'and a `Link: <...>; rel="next"` header points at it.'
)


async def history_page(
    client: TypedClient,
    actor_id: str,
    *,
    after: int,
    limit: int,
    request: Request,
    response: Response,
) -> HistoryPage:
    """One page of `actor_id`'s history, with a Link header to the next page if any."""
    answer = await client.history(actor_id, after=after, limit=limit)
    page = HistoryPage.model_validate(answer.result)
    if page.next_after is not None:
        query = urlencode({"after": page.next_after, "limit": limit})
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return page
