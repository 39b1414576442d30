"""Paging through an actor's event log, shared by every resource's /history route."""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response

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


class HistoryQuery:
    """The paging of a /history route (`after`, `limit`) and what answering it needs."""

    def __init__(
        self, request: Request, response: Response, after: After = 0, limit: Limit = DEFAULT_PAGE
    ) -> None:
        self.request, self.response = request, response
        self.after, self.limit = after, limit

    async def page(self, client: TypedClient, actor_id: str) -> HistoryPage:
        """One page of `actor_id`'s history, with a Link header to the next page if any."""
        answer = await client.history(actor_id, after=self.after, limit=self.limit)
        page = HistoryPage.model_validate(answer.result)
        if page.next_after is not None:
            query = urlencode({"after": page.next_after, "limit": self.limit})
            self.response.headers["Link"] = f'<{self.request.url.path}?{query}>; rel="next"'
        return page


History = Annotated[HistoryQuery, Depends()]
