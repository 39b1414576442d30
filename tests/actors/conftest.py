"""Fixtures for actor tests."""

from __future__ import annotations

import pytest

from tests.actors.doubles import RecordingPublisher


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()
