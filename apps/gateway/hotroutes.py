"""Which gateway routes the hot lane (apps.gateway.fastpath) may serve, read from FastAPI.

`hot_routes` finds each route as the app serves it (after `include_router`: its prefix and
dependencies count) and reads what FastAPI built for it: the path's regex and convertors,
the validators of its path parameters and body, its response field and status, and its
dependencies. A route that declares more than the lane provides (a query or header
parameter, a dependency it does not know, the request object, a response class or body
limit of its own) raises NotServableError at startup rather than be served without it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.convertors import Convertor
from starlette.routing import BaseRoute

from actors.inventory.model import INVENTORY
from actors.order.saga import ORDER
from actors.toolkit.aggregate import AggregateSpec
from actors.wallet.model import WALLET
from apps.gateway import deps

# The dependencies a hot command may use, and the actor type each client dependency names.
CLIENTS: Final[Mapping[Callable[..., Any], AggregateSpec]] = {
    deps.wallet_client: WALLET,
    deps.inventory_client: INVENTORY,
    deps.order_client: ORDER,
}
# The Idempotency-Key dependencies: each one's parameter, and whether the key is required.
KEYS: Final[Mapping[Callable[..., Any], bool]] = {
    deps.optional_idempotency_key: False,
    deps.required_idempotency_key: True,
}


class NotServableError(TypeError):
    """A route declares something `HotCommands` does not provide (it must stay FastAPI's)."""


@dataclass(frozen=True)
class HotCommand:
    """One route as the app serves it (its include's prefix and dependencies folded in),
    read from what FastAPI built for it."""

    route: APIRoute  # as declared on its router: `scope["route"]`, as FastAPI sets it
    path_regex: re.Pattern[str]
    convertors: Mapping[str, Convertor[Any]]
    methods: frozenset[str]
    path_params: tuple[ModelField, ...]
    body: ModelField
    response: ModelField
    status_code: int
    dump: Mapping[str, Any]  # the route's response_model_* options
    clients: tuple[tuple[str, AggregateSpec], ...]  # (parameter name, actor type)
    key_param: str | None  # the parameter taking the Idempotency-Key
    key_required: bool  # without the header FastAPI's stack answers (the dependency's 400)
    response_param: str | None  # the parameter taking FastAPI's sub-response (headers, status)

    @classmethod
    def of(cls, served: Any, route: APIRoute) -> HotCommand:
        """`served`: the APIRoute, or FastAPI's view of it as included in the app.
        NotServableError if the route needs more than this layer provides."""
        d: Dependant = served.dependant
        if d.query_params or d.header_params or d.cookie_params or len(d.body_params) != 1:
            raise NotServableError(f"{route.path}: query, header or cookie parameters")
        if any(getattr(d, name) for name in _INJECTED):
            raise NotServableError(f"{route.path}: takes the request, response or tasks")
        if not inspect.iscoroutinefunction(route.endpoint):
            raise NotServableError(f"{route.path}: not an async endpoint (FastAPI threads it)")
        if served.body_field is None or served.response_field is None:
            raise NotServableError(f"{route.path}: no body or no response model")
        if not isinstance(served.response_class, DefaultPlaceholder):
            raise NotServableError(f"{route.path}: a response class of its own")
        if getattr(served, "max_body_size", None) is not None:
            raise NotServableError(f"{route.path}: a body size limit of its own")
        clients, key_param, key_required = [], None, False
        for dep in d.dependencies:
            spec = CLIENTS.get(dep.call) if dep.call is not None else None
            required = KEYS.get(dep.call) if dep.call is not None else None
            if spec is not None and dep.name:
                clients.append((dep.name, spec))
            elif required is not None and dep.name and key_param is None:
                key_param, key_required = dep.name, required
            else:
                raise NotServableError(f"{route.path}: depends on {dep.call!r}")
        return cls(
            route=route,
            path_regex=served.path_regex,
            convertors=served.param_convertors,
            methods=frozenset(served.methods or ()),
            path_params=tuple(d.path_params),
            body=served.body_field,
            response=served.response_field,
            status_code=served.status_code or 200,
            dump={name: getattr(served, f"response_model_{name}") for name in _DUMP_OPTIONS},
            clients=tuple(clients),
            key_param=key_param,
            key_required=key_required,
            response_param=d.response_param_name,
        )


_INJECTED: Final = (  # the response object is not here: the lane passes one (`_answer`)
    "request_param_name",
    "websocket_param_name",
    "http_connection_param_name",
    "background_tasks_param_name",
    "security_scopes_param_name",
)
_DUMP_OPTIONS: Final = (
    "include",
    "exclude",
    "by_alias",
    "exclude_unset",
    "exclude_defaults",
    "exclude_none",
)


def hot_routes(app: FastAPI, endpoints: Sequence[Callable[..., Any]]) -> list[HotCommand]:
    """The routes `app` serves with one of `endpoints`, in that order (include the routers
    first: their prefixes and dependencies count)."""
    served = list(_served(app.router.routes))
    found = []
    for endpoint in endpoints:
        match = next(((v, r) for v, r in served if r.endpoint is endpoint), None)
        if match is None:
            raise NotServableError(f"no route serves {endpoint!r}")
        found.append(HotCommand.of(*match))
    return found


def _served(routes: Sequence[BaseRoute]) -> Iterator[tuple[Any, APIRoute]]:
    """Each API route with FastAPI's view of it as served: for an included router, the
    effective route (prefix, dependencies, limits of the include folded in)."""
    for route in routes:
        effective = getattr(route, "effective_route_contexts", None)
        if effective is not None:
            for context in effective():
                if isinstance(context.original_route, APIRoute):
                    yield context, context.original_route
        elif isinstance(route, APIRoute):
            yield route, route
