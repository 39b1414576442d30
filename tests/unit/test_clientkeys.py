"""How a caller presents a client key (actors/toolkit/clientkeys.py `presented`)."""

from __future__ import annotations

import base64

import pytest

from actors.toolkit.clientkeys import Presented, presented


def basic(text: str) -> bytes:
    return b"Basic " + base64.b64encode(text.encode())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Bearer k-1", Presented("k-1")),
        (b"bearer   k-1  ", Presented("k-1")),
        (basic("ops:k-1"), Presented("k-1", "ops")),
        (basic("ops:k:with:colons"), Presented("k:with:colons", "ops")),
        (None, None),
        (b"Bearer ", None),
        (b"Bearer", None),
        (b"Token k-1", None),
        (basic("ops"), None),  # no password
        (basic("ops:"), None),  # an empty one
        (b"Basic not*base64", None),
        (b"Basic " + base64.b64encode(b"\xff\xfe:k"), None),  # not UTF-8
    ],
)
def test_a_bearer_key_or_basic_credentials_and_nothing_else(
    header: bytes | None, expected: Presented | None
) -> None:
    assert presented(header) == expected
