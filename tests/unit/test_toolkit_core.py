"""Toolkit core: envelopes, upcasting, inbox keys, error round trips."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.toolkit.domain import Event, remember
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.errors import (
    ConflictError,
    DomainError,
    NotFoundError,
    error_from_dict,
)
from actors.toolkit.inbox import inbox_key
from actors.toolkit.upcasting import Upcasters


class ThingRenamed(Event):
    type: ClassVar[str] = "things.renamed"
    schema_version: ClassVar[int] = 2
    name: str


class ThingLockedError(ConflictError):
    code = "things.locked"


def _envelope(**overrides: object) -> EventEnvelope:
    env = EventEnvelope.wrap(
        ThingRenamed(name="2024-05-01"),
        aggregate_type="Thing",
        aggregate_id="12m",
        aggregate_version=3,
    )
    return env.model_copy(update=overrides)


def test_an_envelope_survives_a_json_round_trip_unchanged() -> None:
    env = _envelope(correlation_id="order-1", causation_id="cmd-1")

    again = EventEnvelope.model_validate_json(env.model_dump_json())

    assert again == env
    assert again.payload == {"name": "2024-05-01"}  # a date-shaped string stays a string
    assert again.occurred_at.tzinfo is not None


def test_an_envelope_from_another_service_may_carry_extra_fields() -> None:
    data = _envelope().model_dump(mode="json") | {"producer": "warehouse"}

    assert EventEnvelope.model_validate(data).type == "things.renamed"


def test_an_old_schema_version_is_upcast_in_a_chain() -> None:
    upcasters = Upcasters()

    @upcasters.register("things.renamed", 1)
    def _v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
        return {"name": payload["title"]}

    @upcasters.register("things.renamed", 2)
    def _v2_to_v3(payload: dict[str, object]) -> dict[str, object]:
        return {**payload, "source": "legacy"}

    old = _envelope(schema_version=1, payload={"title": "x"})
    new = upcasters.upcast(old)

    assert (new.schema_version, new.payload) == (3, {"name": "x", "source": "legacy"})
    assert new.event_id == old.event_id


def test_an_event_in_the_newest_version_is_not_touched() -> None:
    env = _envelope()

    assert Upcasters().upcast(env) is env


@given(st.text(min_size=1, max_size=128), st.text(min_size=1, max_size=128))
def test_inbox_keys_are_url_safe_and_distinct_for_distinct_message_ids(a: str, b: str) -> None:
    key = inbox_key(a)

    assert re.fullmatch(r"inbox-[0-9a-f]{40}", key)
    assert (key == inbox_key(b)) == (a == b)


def test_a_domain_error_is_rebuilt_as_the_class_registered_for_its_code() -> None:
    err = ThingLockedError("thing 12m is locked", context={"id": "12m"})

    again = error_from_dict(err.to_dict(), {ThingLockedError.code: ThingLockedError})

    assert type(again) is ThingLockedError
    assert (again.detail, again.context) == ("thing 12m is locked", {"id": "12m"})


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("other.not_found", NotFoundError),
        ("other.conflict", ConflictError),
        ("other.odd", DomainError),
    ],
)
def test_an_unknown_code_falls_back_to_its_base_class(code: str, cls: type[DomainError]) -> None:
    err = error_from_dict({"code": code, "detail": "d"})

    assert type(err) is cls
    assert err.code == code


@given(keys=st.lists(st.sampled_from("abcdefgh")), limit=st.integers(1, 5))
def test_remember_keeps_the_newest_distinct_keys_up_to_its_limit(
    keys: list[str], limit: int
) -> None:
    recent: tuple[str, ...] = ()
    for key in keys:
        recent = remember(recent, key, limit=limit)
        assert key in recent  # the key just remembered is never the one dropped
        assert len(recent) == len(set(recent)) <= limit
    first_seen = list(dict.fromkeys(keys))
    assert set(recent) <= set(first_seen)
