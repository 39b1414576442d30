"""Orderflow's event contracts as one AsyncAPI 3.1 document, for the services around it.

    python -m actors.contracts.asyncapi          writes docs/events/asyncapi.json
    python -m actors.contracts.asyncapi --check  fails when it is missing or stale

Made from what the code itself uses, so it cannot drift: a channel per topic the router
takes events from (actors/catalog.py ROUTED_TOPICS), each with the message of every event
type known there (actors/reactions.py KNOWN_EVENTS; payloads from the same pydantic models
as docs/events/*.schema.json), and an operation per app id and topic the pub/sub
component's scopes grant (catalog PUBLISHES: send, SUBSCRIBES: receive). A message is the
CloudEvent daprd carries (Redis Streams): `id` and `type` are the envelope's `event_id` and
`type`, `data` the envelope, and the envelope's `payload` the event's own schema. The
dead-letter topic and the projector's redelivery topic are the operators' and the
projector's own, not a contract, and are left out. tests/contracts checks the file is
current and valid (the AsyncAPI parser, from npm: `make contract-tools`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Final

from actors import catalog
from actors.reactions import KNOWN_EVENTS
from actors.toolkit.envelope import EventEnvelope

OUT: Final = Path(__file__).resolve().parents[2] / "docs" / "events" / "asyncapi.json"
VERSION: Final = "1.0.0"  # of the document: a new event type or schema version is a minor


def document() -> dict[str, Any]:
    """The AsyncAPI document (plain JSON data)."""
    schemas: dict[str, Any] = {"Envelope": _ENVELOPE, "CloudEvent": _CLOUD_EVENT}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for topic in catalog.ROUTED_TOPICS:
        refs = {}
        for event_type, cls in sorted(KNOWN_EVENTS.get(topic, {}).items()):
            name = _message_name(event_type, cls.schema_version)
            messages[name] = _message(event_type, cls, schemas)
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[topic] = {
            "address": topic,
            "title": topic,
            "description": _TOPIC_DESCRIPTIONS[topic],
            "messages": refs,
        }
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Orderflow events",
            "version": VERSION,
            "description": (
                "Domain events published as CloudEvents through the Dapr pub/sub component "
                f"`{catalog.PUBSUB}` (Redis Streams, one stream per topic). Every event "
                "carries an envelope (event_id, type, schema_version, aggregate, version, "
                "occurred_at, correlation and causation ids, payload); a type string is "
                "never reused, a breaking change gets a new schema version. Delivery is at "
                "least once: the same event_id twice is applied once."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": _operations(),
        "components": {"messages": messages, "schemas": schemas},
    }


_TOPIC_DESCRIPTIONS: Final = {
    catalog.ORDERS: "The order saga's events (OrderActor).",
    catalog.INVENTORY: "Stock per SKU (InventoryActor).",
    catalog.WALLET: "Money per customer (WalletActor).",
    catalog.RESTOCKS: "Goods received, from a warehouse service.",
    catalog.DEPOSITS: "Money deposited, from a payments service.",
    catalog.SHIPMENTS: "A shipping partner's answers to order.confirmed.",
}


def _message_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}".replace(".", "_")


def _message(event_type: str, cls: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    payload = _hoisted(cls.model_json_schema(), schemas)
    kind = {"const": event_type, "type": "string"}
    envelope = {
        "allOf": [
            {"$ref": "#/components/schemas/Envelope"},
            {
                "type": "object",
                "properties": {
                    "type": kind,
                    "schema_version": {"const": cls.schema_version, "type": "integer"},
                    "payload": payload,
                },
            },
        ]
    }
    return {
        "name": event_type,
        "title": f"{event_type} (schema version {cls.schema_version})",
        "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else event_type,
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {"type": "object", "properties": {"type": kind, "data": envelope}},
            ]
        },
    }


def _hoisted(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved to components.schemas and its references pointed
    there (one name, one schema: a clash is an error, not a silent overwrite)."""
    schema = copy.deepcopy(schema)
    for name, definition in schema.pop("$defs", {}).items():
        definition = _repointed(definition)
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name!r}")
    hoisted: dict[str, Any] = _repointed(schema)
    return hoisted


def _repointed(node: Any) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = {**node, "$ref": "#/components/schemas/" + ref.removeprefix("#/$defs/")}
        return {key: _repointed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_repointed(value) for value in node]
    return node


def _envelope_schema() -> dict[str, Any]:
    schema = EventEnvelope.model_json_schema()
    if "$defs" in schema:  # the envelope's fields are plain: keep it so
        raise ValueError("the envelope's schema grew $defs: hoist them too")
    return schema


_ENVELOPE: Final = _envelope_schema()
_CLOUD_EVENT: Final = {
    "type": "object",
    "title": "CloudEvent",
    "description": "The CloudEvent daprd delivers (CloudEvents 1.0); `data` is the envelope.",
    "required": ["id", "type", "source", "specversion", "data"],
    "properties": {
        "id": {"type": "string", "description": "the envelope's event_id"},
        "type": {"type": "string", "description": "the envelope's type"},
        "source": {"type": "string", "description": "the publishing Dapr app id"},
        "specversion": {"const": "1.0", "type": "string"},
        "datacontenttype": {"const": "application/json", "type": "string"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
        "data": {"$ref": "#/components/schemas/Envelope"},
    },
}


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    routed = set(catalog.ROUTED_TOPICS)
    for action, grants in (("send", catalog.PUBLISHES), ("receive", catalog.SUBSCRIBES)):
        for app, topics in grants.items():
            for topic in topics:
                if topic not in routed:
                    continue
                verb = "publishes to" if action == "send" else "reads"
                operations[f"{app}.{action}.{topic}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{topic}"},
                    "title": f"{app} {verb} {topic}",
                    "description": _operation_note(app, action),
                }
    return operations


def _operation_note(app: str, action: str) -> str:
    if action == "send" and app == catalog.GATEWAY_APP:
        return "The local cluster's door for other services' events (its daprd publishes)."
    if action == "send" and app == catalog.CONSOLE_APP:
        return "A dead letter redriven by an operator, to the topic it came from."
    if action == "send" and app == catalog.ACTOR_HOST_APP:
        return "Each commit's events (written with the commit, or through daprd)."
    if action == "receive" and app != catalog.CONSOLE_APP:
        return "Through its own consumer group (the app's feed, or its daprd's subscription)."
    return "Granted by the pub/sub component's topic scopes."


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python -m actors.contracts.asyncapi")
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
