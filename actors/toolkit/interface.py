"""Actor interfaces generated from an AggregateSpec, and the class the runtime hosts.

    EventSourcedInterface     Get, History, Replay: every event-sourced actor has them
    actor_interface(spec)     + one method per command: wire name "OnStockReserved" ->
                              python name on_stock_reserved(payload: bytes) -> bytes
    @dispatchable             on an EventSourcedActor subclass: returns the class Dapr hosts,
                              the subclass plus its generated interface and Remindable (the
                              SDK only dispatches methods of interfaces that list
                              ActorInterface among their direct bases, and only delivers
                              reminders to classes that list Remindable directly), with one
                              method per command: `self._command(<command model>, payload)`

The actor type is the class name, so `dispatchable` refuses a class whose name is not the
spec's actor type. Payloads are JSON objects: the command's fields plus the optional
message_id, correlation_id and causation_id (actors.toolkit.commands).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from dapr.actor import ActorInterface, Remindable, actormethod

from actors.toolkit.aggregate import AggregateSpec, python_name
from actors.toolkit.domain import Command


class EventSourcedInterface(ActorInterface):
    @actormethod(name="Get")  # type: ignore[untyped-decorator]
    async def get(self) -> bytes:
        """{"ok": true, "result": <view>, "aggregate_version": n}"""

    @actormethod(name="History")  # type: ignore[untyped-decorator]
    async def history(self, payload: bytes) -> bytes:
        """Payload {"after": 0, "limit": 1..100}; result {"events": [...], "next_after"}."""

    @actormethod(name="Replay")  # type: ignore[untyped-decorator]
    async def replay(self) -> bytes:
        """Result {"matches_snapshot": bool, "events_replayed": n, "replayed": <view>}."""


class Commanded(Protocol):
    spec: AggregateSpec

    async def _command(self, command_type: type[Command], payload: bytes | None) -> bytes: ...


A = TypeVar("A", bound=type[Any])
_INTERFACES: dict[str, tuple[AggregateSpec, type[ActorInterface]]] = {}


def actor_interface(spec: AggregateSpec) -> type[ActorInterface]:
    """The SDK interface of `spec`'s actor type (the same class on every call)."""
    known = _INTERFACES.get(spec.actor_type)
    if known is not None:
        if known[0] is not spec:
            raise ValueError(f"two specs declare actor type {spec.actor_type}")
        return known[1]
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": f"Wire contract of {spec.actor_type} (generated from its AggregateSpec).",
    }
    for wire_name, model in spec.commands.items():
        namespace[python_name(wire_name)] = _declared(wire_name, model)
    interface = type(
        f"{spec.actor_type}Interface", (EventSourcedInterface, ActorInterface), namespace
    )
    _INTERFACES[spec.actor_type] = (spec, interface)
    return interface


def dispatchable(cls: A) -> A:
    """The class Dapr hosts for `cls` (see the module docstring)."""
    spec: AggregateSpec = cls.spec
    if cls.__name__ != spec.actor_type:
        raise TypeError(f"class {cls.__name__} must be named {spec.actor_type}: Dapr's type")
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "upcasters": cls.upcasters,  # the same registry, whichever class registers
    }
    for wire_name, model in spec.commands.items():
        name = python_name(wire_name)
        if name in cls.__dict__:
            raise TypeError(f"{cls.__name__}.{name} is generated from the spec; do not define it")
        namespace[name] = _implementation(name, model)
    hosted = type(cls.__name__, (cls, actor_interface(spec), Remindable), namespace)
    return cast(A, hosted)


def _declared(wire_name: str, model: type[Command]) -> Callable[..., Awaitable[bytes]]:
    async def method(self: Any, payload: bytes) -> bytes:
        raise NotImplementedError(wire_name)

    method.__name__ = python_name(wire_name)
    method.__doc__ = _describe(model)
    wrapped: Callable[..., Awaitable[bytes]] = actormethod(name=wire_name)(method)
    return wrapped


def _implementation(name: str, model: type[Command]) -> Callable[..., Awaitable[bytes]]:
    async def method(self: Commanded, payload: bytes) -> bytes:
        return await self._command(model, payload)

    method.__name__ = name
    method.__doc__ = _describe(model)
    return method


def _describe(model: type[Command]) -> str:
    fields = ", ".join(
        f'"{name}"' if info.is_required() else f'"{name}"?'
        for name, info in model.model_fields.items()
    )
    return f"{model.__name__}: {{{fields}}}"
