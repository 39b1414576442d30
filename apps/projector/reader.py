"""The one reader of events for the projections: live deliveries and rebuilt histories alike.

`EventReader.read(envelope)` answers the envelope at the newest schema version the code
knows for its type, upcast with its aggregate's own upcasters (`<Actor>.upcasters`):
    a type its aggregate does not declare       as is (no projection reads it)
    schema_version newer than the code knows    NewerSchemaError: this projector is older
                                                than the writer. Live: RETRY (the message
                                                circles through the redelivery topic until
                                                an upgraded projector takes it; never lost,
                                                never half-read). Rebuild: the rebuild fails.
    older, and the upcasters reach the newest   the upcast envelope
    older, and the upcasters stop short         MissingUpcasterError, an InvalidEventError:
                                                live: recorded as rejected, like any payload
                                                a projection cannot read; rebuild: fails
The live projector (apps.projector.events) and the rebuild (apps.projector.rebuild) both
read through it, so a schema change reaches both at once. History pages come from the
actors already upcast by their event log; reading them again changes nothing.
The payload stays a tolerant read (apps.projector.projections.Payload): a field a newer
writer adds within the same schema version is ignored, not refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.inventory.actor import InventoryActor
from actors.order.actor import OrderActor
from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.errors import TransientError
from actors.toolkit.upcasting import Upcasters
from actors.wallet.actor import WalletActor
from apps.projector.projections import InvalidEventError


class NewerSchemaError(TransientError):
    """An event written in a schema version this code does not know yet (transient)."""


class MissingUpcasterError(InvalidEventError):
    """An old schema version no chain of upcasters brings to the newest (permanent)."""


@dataclass(frozen=True)
class Schema:
    """What the reader knows of one aggregate type's events."""

    events: Mapping[str, type[Event]]  # type string -> the newest model (its schema_version)
    upcasters: Upcasters


class EventReader:
    def __init__(self, schemas: Mapping[str, Schema]) -> None:
        self._schemas = dict(schemas)

    @classmethod
    def of(cls, *actor_types: Any) -> EventReader:
        """A reader from actor classes: each one's `aggregate_type`, `events`, `upcasters`."""
        return cls({a.aggregate_type: Schema(a.events, a.upcasters) for a in actor_types})

    @classmethod
    def for_actors(cls) -> EventReader:
        """The reader of every aggregate the read models project."""
        return cls.of(InventoryActor, OrderActor, WalletActor)

    def newest_version(self, envelope: EventEnvelope) -> int | None:
        schema = self._schemas.get(envelope.aggregate_type)
        model = schema.events.get(envelope.type) if schema else None
        return model.schema_version if model else None

    def read(self, envelope: EventEnvelope) -> EventEnvelope:
        """`envelope` at the newest schema version of its type (see the module docstring)."""
        newest = self.newest_version(envelope)
        if newest is None or envelope.schema_version == newest:
            return envelope
        if envelope.schema_version > newest:
            raise NewerSchemaError(
                f"{envelope.type} v{envelope.schema_version} is newer than this code "
                f"(v{newest}): upgrade the projector"
            )
        upcast = self._schemas[envelope.aggregate_type].upcasters.upcast(envelope)
        if upcast.schema_version != newest:
            raise MissingUpcasterError(
                f"{envelope.type}: no upcaster from v{upcast.schema_version} "
                f"(read v{envelope.schema_version}, newest v{newest})"
            )
        return upcast

    def read_all(self, envelopes: Iterable[EventEnvelope]) -> list[EventEnvelope]:
        return [self.read(envelope) for envelope in envelopes]
