"""Fixtures for actor tests."""

from __future__ import annotations

import pytest

from actors.reactions import build_router
from actors.toolkit.client import ActorClient
from actors.toolkit.testing import InMemorySidecar
from tests.actors.doubles import RecordingPublisher


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def sidecar() -> InMemorySidecar:
    """The real actors and the saga's event router behind the in-memory sidecar."""
    return InMemorySidecar(router=build_router())


@pytest.fixture
def actors(sidecar: InMemorySidecar) -> ActorClient:
    """The real ActorClient on this module's `sidecar`."""
    return ActorClient(sidecar)
