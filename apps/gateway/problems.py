"""Every error the gateway answers, as application/problem+json (RFC 9457).

DomainError (from an actor)      400 fallback, code as the actor sent it
├── NotFoundError                404
├── ConflictError                409
└── RuleViolationError           422 (InvalidCommandError: "request.invalid")
RequestProblemError              its own status (e.g. 400 "request.idempotency_key")
RequestValidationError           422 "request.invalid" with a field list;
                                 400 "request.invalid_json" for a body that is not JSON
HTTPException (routing)          404 "request.not_found", 405 "request.method_not_allowed"
TransientError (sidecar, actor     503 "runtime.unavailable" + Retry-After
  host, store: actors.toolkit.errors)
RedisError (read models)         503 "runtime.unavailable" + Retry-After
anything else                    500 "internal": logged here, never echoed
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from actors.toolkit.errors import (
    ConflictError,
    DomainError,
    NotFoundError,
    RuleViolationError,
    TransientError,
)

log = logging.getLogger("orderflow.gateway")

TYPE_BASE: Final = "https://orderflow.dev/problems/"
MEDIA_TYPE: Final = "application/problem+json"
RETRY_AFTER_SECONDS: Final = 1
REF_PREFIX: Final = "#/components/schemas/"

Handler = Callable[[Request, Exception], Awaitable[Response]]


class FieldError(BaseModel):
    location: str = Field(description="body, query, path or header")
    field: str = Field(description="dotted path inside the location, e.g. lines.0.quantity")
    message: str
    type: str


class Problem(BaseModel):
    """An error answer (RFC 9457); `code` is stable, `type` is its URL form."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": f"{TYPE_BASE}order.conflict",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "order already placed with different content",
                    "code": "order.conflict",
                    "context": {"status": "reserving"},
                    "instance": "/orders",
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
    context: dict[str, Any] | None = None
    errors: list[FieldError] | None = None


class RequestProblemError(Exception):
    """A request the gateway itself refuses before any actor is called."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem(
    path: str,
    *,
    status: int,
    code: str,
    detail: str,
    context: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    """The problem+json response for `status`/`code` about the (decoded) request `path`."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": quote(path),  # a URI reference: "/orders/a%20b", not "/orders/a b"
    }
    if context:
        body["context"] = context
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring the problem+json answers of a route."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": f"{REF_PREFIX}Problem"}}},
        }
        for status in statuses
    }


def add_schemas(openapi: dict[str, Any]) -> None:
    """Put Problem (which `problem_responses` refers to) into the OpenAPI components."""
    schema = Problem.model_json_schema(ref_template=REF_PREFIX + "{model}", mode="serialization")
    defs = schema.pop("$defs", {})
    openapi.setdefault("components", {}).setdefault("schemas", {}).update(
        {"Problem": schema, **defs}
    )


# --- handlers -----------------------------------------------------------------------------


def _domain_handler(status: int) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return problem(
            request.url.path,
            status=status,
            code=exc.code,
            detail=exc.detail,
            context=exc.context,
        )

    return handle


async def _request_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestProblemError)
    return problem(request.url.path, status=exc.status, code=exc.code, detail=exc.detail)


def _field_error(err: dict[str, Any]) -> dict[str, str]:
    location, *path = err.get("loc") or ("body",)
    message = str(err.get("msg", "invalid"))
    if location == "body" and not path and isinstance(err.get("input"), bytes):
        # FastAPI hands over raw bytes when the body was not declared as JSON.
        message = "expected a JSON object with Content-Type: application/json"
    return {
        "location": str(location),
        "field": ".".join(str(part) for part in path),
        "message": message,
        "type": str(err.get("type", "value_error")),
    }


def _where(error: dict[str, str]) -> str:
    return ".".join(part for part in (error["location"], error["field"]) if part)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw: Sequence[dict[str, Any]] = exc.errors()
    for err in raw:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed")
            position = err["loc"][-1]
            detail = f"the request body is not valid JSON: {reason} at position {position}"
            return problem(request.url.path, status=400, code="request.invalid_json", detail=detail)
    errors = [_field_error(err) for err in raw]
    detail = "; ".join(f"{_where(e)}: {e['message']}" for e in errors)
    return problem(
        request.url.path, status=422, code="request.invalid", detail=detail, errors=errors
    )


_HTTP_CODES: Final = {404: "request.not_found", 405: "request.method_not_allowed"}


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"request.http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(
        request.url.path,
        status=exc.status_code,
        code=code,
        detail=detail,
        headers=dict(exc.headers or {}),
    )


async def _unavailable(request: Request, exc: Exception) -> Response:
    # The detail names the sidecar's answer: worth a log line, not worth showing a client.
    log.warning("runtime unavailable for %s %s: %s", request.method, request.url.path, exc)
    return problem(
        request.url.path,
        status=503,
        code="runtime.unavailable",
        detail="the order runtime is temporarily unavailable; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        request.url.path,
        status=500,
        code="internal",
        detail="an unexpected error occurred; it has been logged",
    )


def install(app: FastAPI) -> None:
    """Register one handler per error family on `app`."""
    app.add_exception_handler(NotFoundError, _domain_handler(404))
    app.add_exception_handler(ConflictError, _domain_handler(409))
    app.add_exception_handler(RuleViolationError, _domain_handler(422))
    app.add_exception_handler(DomainError, _domain_handler(400))
    app.add_exception_handler(RequestProblemError, _request_problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(TransientError, _unavailable)
    app.add_exception_handler(RedisError, _unavailable)
    # Starlette runs the Exception handler outermost, sends its answer, then re-raises so
    # the server logs the failure as well.
    app.add_exception_handler(Exception, _unexpected)
