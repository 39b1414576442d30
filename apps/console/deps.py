"""What the console's routes need, built once in the lifespan (app.state.console)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from actors.toolkit.client import TypedClient
from apps.console.auth import OPERATOR_STATE
from apps.console.cluster import ClusterProbe
from apps.console.deadletters import LetterStore, Redriver
from apps.console.plots import Plotter
from apps.console.targets import Targets
from readmodels.queries import ReadModels


@dataclass(frozen=True)
class Console:
    targets: Targets
    letters: LetterStore
    redriver: Redriver
    probe: ClusterProbe
    plotter: Plotter
    readmodels: ReadModels
    orders: TypedClient  # OrderActor: Get and History only (the console never writes)
    stuck_after: dt.timedelta
    vendor_dir: Path | None  # uPlot's dist folder, when setup installed it


def _console(request: Request) -> Console:
    console: Console | None = getattr(request.app.state, "console", None)
    if console is None:
        raise HTTPException(503, "the console is starting")
    return console


ConsoleDep = Annotated[Console, Depends(_console)]


def _operator(request: Request) -> str | None:
    """The operator who signed in (apps/console/auth.py); None on an open console."""
    operator: str | None = request.scope.get("state", {}).get(OPERATOR_STATE)
    return operator


OperatorDep = Annotated[str | None, Depends(_operator)]
