"""The AsyncAPI document of our topics (docs/events/asyncapi.json) is current, says what
the code does, and the AsyncAPI parser takes it (and refuses a broken one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from actors import catalog
from actors.contracts import asyncapi
from actors.reactions import KNOWN_EVENTS
from cluster.config import ROOT

RUNTIME = Path(os.environ.get("ORDERFLOW_RUNTIME_DIR", ROOT / ".runtime"))
PARSER_DIR = RUNTIME / "asyncapi"
VALIDATE = Path(__file__).with_name("asyncapi_validate.js")


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    parser = PARSER_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json"
    if node is None or not parser.is_file():
        pytest.fail(
            f"no AsyncAPI parser in {PARSER_DIR}: run `make contract-tools` (make setup does)"
        )
    argv = [node, str(VALIDATE), str(PARSER_DIR), str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_document_is_current() -> None:
    assert asyncapi.OUT.read_text() == asyncapi.render(asyncapi.document()), (
        "stale: run python -m actors.contracts.asyncapi"
    )
    assert asyncapi.main(["--check"]) == 0


def test_the_asyncapi_parser_takes_it_without_a_diagnostic() -> None:
    result = validate(asyncapi.OUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["valid: 6 channels, 22 operations, 22 messages"]


def test_the_parser_refuses_a_broken_document(tmp_path: Path) -> None:
    doc: dict[str, Any] = asyncapi.document()
    operation = next(iter(doc["operations"].values()))
    operation["channel"] = {"$ref": "#/channels/no-such-topic"}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(doc))
    result = validate(broken)
    assert result.returncode == 1
    assert "error" in result.stdout


def test_it_has_a_channel_per_routed_topic_and_a_message_per_known_event() -> None:
    doc = asyncapi.document()
    assert set(doc["channels"]) == set(catalog.ROUTED_TOPICS)
    for topic in catalog.ROUTED_TOPICS:
        known = KNOWN_EVENTS[topic]
        names = {
            doc["components"]["messages"][ref.removeprefix("#/components/messages/")]["name"]
            for ref in (m["$ref"] for m in doc["channels"][topic]["messages"].values())
        }
        assert names == set(known), topic


def test_its_operations_are_the_topic_scopes_grants() -> None:
    doc = asyncapi.document()
    routed = set(catalog.ROUTED_TOPICS)
    expected = {
        f"{app}.{action}.{topic}"
        for action, grants in (("send", catalog.PUBLISHES), ("receive", catalog.SUBSCRIBES))
        for app, topics in grants.items()
        for topic in topics
        if topic in routed
    }
    assert set(doc["operations"]) == expected
    assert doc["operations"]["shipping.send.shipments"]["action"] == "send"
    assert doc["operations"]["projector.receive.orders"]["action"] == "receive"


def test_a_message_carries_its_events_own_payload_schema() -> None:
    doc = asyncapi.document()
    placed = doc["components"]["messages"]["order_placed_v1"]
    _, extra = placed["payload"]["allOf"]
    _, envelope = extra["properties"]["data"]["allOf"]
    assert envelope["properties"]["type"]["const"] == "order.placed"
    payload = envelope["properties"]["payload"]
    assert {"customer_id", "lines"} <= set(payload["properties"])
    # its Line, hoisted to the components, is referenced from there
    assert "Line" in doc["components"]["schemas"]
    assert "#/components/schemas/Line" in json.dumps(payload)
