"""Our JSON log lines captured in memory (tests): `with capturing(...) as out: ...; lines(out)`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from actors.toolkit import logs


@contextlib.contextmanager
def capturing(*, app: str, replica: str) -> Iterator[io.StringIO]:
    """Configure our logging into a string for the block, then take our handler off and
    put the root level back (so no other test logs into a closed stream)."""
    out, root = io.StringIO(), logging.getLogger()
    level = root.level
    logs.configure(app=app, replica=replica, level="info", stream=out)
    try:
        yield out
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logs._Ours)]:
            root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The lines written so far, each decoded."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]
