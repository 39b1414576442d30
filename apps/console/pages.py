"""The console's HTML pages (server-rendered, Jinja2 autoescaped); forms post back here."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from actors.toolkit.client import RuntimeUnavailableError
from actors.toolkit.errors import NotFoundError
from apps.console import orders
from apps.console.api import CODE, TOPIC
from apps.console.cluster import uptime_text
from apps.console.deadletters import Filter, LetterNotFoundError, NotRedrivableError
from apps.console.deps import ConsoleDep, OperatorDep
from apps.console.plots import PLOTS

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["uptime"] = uptime_text
router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=http_status)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/cluster", status_code=303)


@router.get("/cluster")
async def cluster(request: Request, console: ConsoleDep) -> HTMLResponse:
    return _page(request, "cluster.html", view=await console.probe.view())


@router.get("/orders")
async def order_search(request: Request, console: ConsoleDep, q: str = "") -> HTMLResponse:
    now = dt.datetime.now(dt.UTC)
    stuck = await orders.stuck(console.readmodels, idle_for=console.stuck_after, now=now)
    context: dict[str, Any] = {"q": q, "stuck": stuck, "stuck_after": console.stuck_after}
    try:
        rows = await orders.search(console.readmodels, q)
    except orders.InvalidQueryError as exc:
        return _page(request, "orders.html", 422, rows=[], error=str(exc), **context)
    return _page(request, "orders.html", rows=rows, error="", **context)


@router.get("/orders/{order_id}")
async def order_timeline(request: Request, order_id: str, console: ConsoleDep) -> HTMLResponse:
    try:
        line = await orders.timeline(console.orders, orders.checked_id(order_id))
    except orders.InvalidQueryError as exc:
        return _page(request, "error.html", 422, title="Not an order id", detail=str(exc))
    except NotFoundError:
        detail = f"no order {order_id} (its actor has no history)"
        return _page(request, "error.html", 404, title="Order not found", detail=detail)
    except RuntimeUnavailableError as exc:
        return _page(request, "error.html", 503, title="Actors unavailable", detail=exc.detail)
    return _page(request, "order.html", timeline=line, targets=console.targets)


def _filter(code: str, topic: str) -> tuple[str | None, str | None, str]:
    """(code, topic, error) from a form or query string; "" means no filter."""
    if code and not re.fullmatch(CODE, code):
        return None, None, f"{code[:80]!r} is not a dead-letter code"
    if topic and not re.fullmatch(TOPIC, topic):
        return None, None, f"{topic[:80]!r} is not a topic name"
    return code or None, topic or None, ""


@router.get("/deadletters")
async def deadletters(
    request: Request,
    console: ConsoleDep,
    code: str = "",
    topic: str = "",
    status: str = "open",
    msg: str = "",
) -> HTMLResponse:
    wanted_code, wanted_topic, error = _filter(code, topic)
    which = Filter(wanted_code, wanted_topic, everything=status == "all")
    letters = [] if error else await console.letters.list(which)
    return _page(
        request,
        "deadletters.html",
        422 if error else 200,
        letters=letters,
        codes=await console.letters.codes(),
        code=code,
        topic=topic,
        status=status,
        msg=msg,
        error=error,
    )


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {key: values[-1] for key, values in fields.items()}


def _back(form: dict[str, str], msg: str) -> RedirectResponse:
    query = {k: form[k] for k in ("code", "topic") if form.get(k)} | {"msg": msg}
    return RedirectResponse(f"/deadletters?{urlencode(query)}", status_code=303)


@router.post("/deadletters/redrive")
async def redrive_matching(
    request: Request, console: ConsoleDep, operator: OperatorDep
) -> Response:
    form = await _form(request)
    code, topic, error = _filter(form.get("code", ""), form.get("topic", ""))
    if error or (code is None and topic is None and form.get("all") != "yes"):
        return _back({}, error or "name a code and/or a topic, or tick 'every open letter'")
    results = await console.redriver.redrive_matching(Filter(code, topic), by=operator)
    done = sum(r.ok for r in results)
    failed = [f"{r.letter_id}: {r.detail}" for r in results if not r.ok]
    msg = f"redrove {done} of {len(results)} letters" + (
        "; " + "; ".join(failed[:5]) if failed else ""
    )
    return _back(form, msg)


@router.post("/deadletters/{letter_id:path}/redrive")
async def redrive_one(
    letter_id: str, request: Request, console: ConsoleDep, operator: OperatorDep
) -> Response:
    form = await _form(request)
    try:
        result = await console.redriver.redrive(letter_id, by=operator)
    except (LetterNotFoundError, NotRedrivableError) as exc:
        return _back(form, f"not redriven: {exc}")
    return _back(form, f"{letter_id}: {result.detail}")


@router.get("/plots")
async def plots(request: Request, console: ConsoleDep) -> HTMLResponse:
    return _page(
        request,
        "plots.html",
        plots=PLOTS,
        uplot=console.vendor_dir is not None,
        prometheus=console.targets.prometheus,
    )
