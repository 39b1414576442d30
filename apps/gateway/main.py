"""Composition root of the gateway (the public HTTP API)."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(title="Orderflow API", version="0.1.0")

    @app.get("/healthz", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
