"""A serializer for the Dapr SDK that never coerces user strings.

The SDK's DefaultJSONSerializer decodes with a scanner that turns every date-shaped
string ("2024-05-01") into a datetime and every duration-shaped one ("12m", "1h")
into a timedelta, so a SKU or a note could come back as another type. This one
passes bytes through untouched (actor payloads and state are JSON documents that
our pydantic models parse) and decodes anything else with the standard json module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.serializers.base import Serializer
from dapr.serializers.json import DaprJSONEncoder


class RawJSONSerializer(Serializer):
    """bytes in, bytes out; plain JSON for everything else.

    With `raw_reads=True` (the actor *state* serializer) reads always return the
    stored bytes, which the actor parses with its own pydantic model.
    """

    def __init__(self, *, raw_reads: bool = False) -> None:
        self._raw_reads = raw_reads

    def serialize(self, obj: object, custom_hook: Callable[[object], bytes] | None = None) -> bytes:
        if isinstance(obj, bytes | bytearray | memoryview):
            return bytes(obj)
        if callable(custom_hook):
            obj = custom_hook(obj)
        elif isinstance(obj, ActorRuntimeConfig):
            obj = obj.as_dict()
        # The encoder only matters for values the SDK itself sends (reminder periods).
        return json.dumps(obj, cls=DaprJSONEncoder, separators=(",", ":")).encode()

    def deserialize(
        self,
        data: bytes,
        data_type: type | None = object,
        custom_hook: Callable[[Any], object] | None = None,
    ) -> Any:
        # `data_type` is the annotation of the actor method argument (a string under
        # postponed evaluation of annotations).
        if self._raw_reads or data_type in (bytes, "bytes"):
            return bytes(data)
        obj = json.loads(data) if data else None
        return custom_hook(obj) if callable(custom_hook) else obj
