"""Parsing an actor method's JSON payload into message metadata and a command model.

A payload is one JSON object: the command's fields plus optional metadata
    message_id      1..128 of [A-Za-z0-9._:/-]; the inbox dedupes on it
    correlation_id  the business flow it belongs to (copied onto the events it causes)
    causation_id    the message that caused it (defaults to message_id on the events)
    (correlation and causation ids: any printable string of 1..256 characters)
Validation is strict JSON validation (a quantity "5" or 5.0 is refused, never coerced)
and every failure is an InvalidCommandError naming the fields; nothing is half-parsed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from actors.toolkit import codec
from actors.toolkit.domain import Command
from actors.toolkit.errors import InvalidCommandError

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MESSAGE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
META_FIELDS: Final = ("message_id", "correlation_id", "causation_id")
FAULT_FIELD: Final = "fault"  # test-only fault injection, see actors.toolkit.actor

C = TypeVar("C", bound=Command)


@dataclass(frozen=True)
class Meta:
    message_id: str = ""
    correlation_id: str = ""
    causation_id: str = ""
    fault: str = ""


def parse_object(payload: bytes | None) -> dict[str, Any]:
    """The payload as a JSON object ({} when empty); InvalidCommandError otherwise."""
    if not payload:
        return {}
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidCommandError(
            f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}",
            context={"limit": MAX_PAYLOAD_BYTES},
        )
    try:
        body = codec.loads(payload)
    except ValueError as exc:
        raise InvalidCommandError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidCommandError(f"payload must be a JSON object, not {type(body).__name__}")
    return body


def split_meta(
    body: dict[str, Any], *, faults_enabled: bool = False
) -> tuple[Meta, dict[str, Any]]:
    """Take the metadata fields out of `body`; returns (meta, the command's own fields)."""
    fields = dict(body)
    values: dict[str, str] = {}
    names = (*META_FIELDS, FAULT_FIELD) if faults_enabled else META_FIELDS
    for name in names:
        if name not in fields:
            continue
        value = fields.pop(name)
        if name == "message_id":
            ok = isinstance(value, str) and MESSAGE_ID_PATTERN.fullmatch(value) is not None
            rule = "1..128 characters of A-Z a-z 0-9 . _ : / -"
        else:  # ids minted by other services: any short printable string
            ok = isinstance(value, str) and 0 < len(value) <= 256 and value.isprintable()
            rule = "a printable string of 1..256 characters"
        if not ok:
            raise InvalidCommandError(f"{name} must be {rule}", context={"field": name})
        values[name] = value
    return Meta(**values), fields


def validate_command(command_type: type[C], fields: dict[str, Any]) -> C:
    try:
        return command_type.model_validate_json(json.dumps(fields), strict=True)
    except ValidationError as exc:
        raise InvalidCommandError(_describe(exc), context={"errors": _errors(exc)}) from exc


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" for e in _errors(exc))
