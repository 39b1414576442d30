"""The error tree: each infrastructure error sits in the branch its handling depends on."""

from __future__ import annotations

import pytest

from actors.toolkit.client import RuntimeUnavailableError
from actors.toolkit.envelope import InvalidDeliveryError
from actors.toolkit.errors import (
    ConflictError,
    DomainError,
    InfrastructureError,
    PermanentError,
    TransientError,
)
from actors.toolkit.publisher import PublishError
from actors.toolkit.router import DeadLetterError
from actors.toolkit.sidecar import SidecarError, SidecarUnavailableError
from actors.toolkit.store import ConcurrencyError, StoreUnavailableError
from actors.toolkit.subscriber import gives_up

TRANSIENT = (
    SidecarUnavailableError("down"),
    SidecarError("PUT", "/v1.0/actors/T/1/state", 500, b"busy"),
    RuntimeUnavailableError("actor call failed", status=500),
    PublishError("1 of 1 not published"),
    ConcurrencyError("fenced", expected=1, found=2),
    StoreUnavailableError("redis down"),
)
PERMANENT = (
    InvalidDeliveryError("no envelope"),
    DeadLetterError("event.unknown_type", "no such type"),
)


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_transient_failure_is_retried_never_set_aside(error: Exception) -> None:
    assert isinstance(error, TransientError)
    assert isinstance(error, InfrastructureError)
    assert not gives_up(error)


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_a_permanent_failure_is_set_aside(error: Exception) -> None:
    assert isinstance(error, PermanentError)
    assert not isinstance(error, TransientError)
    assert gives_up(error)


def test_a_refusal_is_set_aside_and_is_no_infrastructure_error() -> None:
    refusal = ConflictError("taken")
    assert isinstance(refusal, DomainError)
    assert not isinstance(refusal, InfrastructureError)
    assert gives_up(refusal)


def test_an_unforeseen_error_stays_on_the_broker() -> None:
    assert not gives_up(KeyError("a bug"))
