"""Route dependencies of the shipping app: the partner state and the sidecar client."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from apps.shipping.partner import Partner


def get_partner(request: Request) -> Partner:
    partner: Partner = request.app.state.partner
    return partner


def get_sidecar(request: Request) -> httpx.AsyncClient:
    sidecar: httpx.AsyncClient = request.app.state.sidecar
    return sidecar


PartnerDep = Annotated[Partner, Depends(get_partner)]
SidecarDep = Annotated[httpx.AsyncClient, Depends(get_sidecar)]
