"""Published event contracts: one JSON Schema per event type and schema version.

    python -m actors.contracts.schemas          writes docs/events/*.schema.json
    python -m actors.contracts.schemas --check  fails when a file is missing or stale

The schema is the envelope's `payload` for that type (the envelope itself is
docs/events/envelope.schema.json). tests/contracts checks the files are current and
validates one JSON sample per type and version against the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from actors.reactions import KNOWN_EVENTS
from actors.toolkit.envelope import EventEnvelope

OUT = Path(__file__).resolve().parents[2] / "docs" / "events"


def documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for the envelope and every event type on every topic."""
    docs: dict[str, dict[str, Any]] = {"envelope.schema.json": EventEnvelope.model_json_schema()}
    for topic, events in sorted(KNOWN_EVENTS.items()):
        for event_type, cls in sorted(events.items()):
            schema = cls.model_json_schema()
            schema["title"] = event_type
            schema["description"] = (cls.__doc__ or "").strip() or f"{event_type} payload"
            schema["x-topic"] = topic
            schema["x-schema-version"] = cls.schema_version
            docs[f"{event_type}.v{cls.schema_version}.schema.json"] = schema
    return docs


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    stale = []
    for name, schema in documents().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != render(schema):
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))
    if stale:
        print(f"stale event schemas: {', '.join(stale)}; run python -m actors.contracts.schemas")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
