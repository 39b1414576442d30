"""The console's JSON API (used by its pages' scripts and the redrive CLI) and its
subscription to the dead-letter topic."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError
from redis.exceptions import RedisError

from actors.catalog import DEAD_LETTERS, PUBSUB
from actors.toolkit.subscriber import DROP, RETRY, SUCCESS
from apps.console.deadletters import Filter, LetterNotFoundError, NotRedrivableError
from apps.console.deps import ConsoleDep, OperatorDep

CODE: Final = r"^[A-Za-z0-9_.:-]{1,120}$"  # dead-letter codes, e.g. inventory.reservation_not_found
TOPIC: Final = r"^[A-Za-z0-9_.-]{1,120}$"
log = logging.getLogger("orderflow.console")
router = APIRouter()

CodeQuery = Annotated[str | None, Query(pattern=CODE, description="exact code")]
TopicQuery = Annotated[str | None, Query(pattern=TOPIC, description="exact topic")]


@router.get("/dapr/subscribe", include_in_schema=False)
async def subscribe() -> list[dict[str, Any]]:
    return [{"pubsubname": PUBSUB, "topic": DEAD_LETTERS, "route": "/deadletters/inbox"}]


@router.post("/deadletters/inbox", include_in_schema=False)
async def receive(request: Request, console: ConsoleDep) -> dict[str, str]:
    """One dead letter from the router: keep it (DROP what is no dead letter at all)."""
    try:
        event = json.loads(await request.body())
        data = event.get("data")
        data = json.loads(data) if isinstance(data, str) else data
        await console.letters.record(str(event["id"]), data)
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
        log.warning("not a dead letter, dropped: %r", exc)
        return DROP
    except RedisError as exc:
        log.info("RETRY dead letter: Redis: %s: %s", type(exc).__name__, exc)
        return RETRY
    return SUCCESS


@router.get("/api/deadletters", tags=["dead letters"])
async def letters(
    console: ConsoleDep,
    code: CodeQuery = None,
    topic: TopicQuery = None,
    status: Annotated[str, Query(pattern="^(open|all)$")] = "open",
) -> dict[str, Any]:
    found = await console.letters.list(Filter(code, topic, everything=status == "all"))
    return {"letters": [letter.model_dump(mode="json") for letter in found]}


@router.post("/api/deadletters/redrive", tags=["dead letters"])
async def redrive_matching(
    console: ConsoleDep,
    operator: OperatorDep,
    code: CodeQuery = None,
    topic: TopicQuery = None,
    everything: Annotated[bool, Query(alias="all")] = False,
) -> dict[str, Any]:
    """Redrive every open letter matching code and/or topic (`all=true`: every open one)."""
    if code is None and topic is None and not everything:
        raise HTTPException(422, "name a code and/or a topic, or pass all=true")
    results = await console.redriver.redrive_matching(Filter(code, topic), by=operator)
    return {"results": [dataclasses.asdict(r) for r in results]}


@router.post("/api/deadletters/{letter_id:path}/redrive", tags=["dead letters"])
async def redrive_one(letter_id: str, console: ConsoleDep, operator: OperatorDep) -> dict[str, Any]:
    try:
        result = await console.redriver.redrive(letter_id, by=operator)
    except LetterNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    except NotRedrivableError as exc:
        raise HTTPException(409, str(exc)) from exc
    if not result.ok:
        raise HTTPException(503, result.detail)
    return dataclasses.asdict(result)


@router.get("/api/plots/{name}", tags=["plots"])
async def plot(
    name: str, console: ConsoleDep, minutes: Annotated[int, Query(ge=1, le=360)] = 15
) -> dict[str, Any]:
    try:
        data = await console.plotter.data(name, minutes=minutes)
    except KeyError as exc:
        raise HTTPException(404, f"no plot {name!r}") from exc
    return data.as_dict()
