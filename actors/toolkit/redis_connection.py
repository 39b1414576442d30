"""The one Redis client (over one connection pool) an app builds in its lifespan.

Shared infrastructure: the actor host's event store, the projector and the gateway's
read side all build their client here, so no app imports another for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from redis.asyncio import BlockingConnectionPool, Redis

DEFAULT_REDIS_HOST: Final = "127.0.0.1:6380"


def redis_host_from_env(env: Mapping[str, str] | None = None) -> str:
    """ORDERFLOW_REDIS_HOST (host:port), as the launcher and the compose file set it."""
    env = os.environ if env is None else env
    return env.get("ORDERFLOW_REDIS_HOST") or DEFAULT_REDIS_HOST


def redis_client(host: str, *, max_connections: int = 64, decode_responses: bool = True) -> Redis:
    """A client owning a blocking pool: callers wait for a free connection, never fail.

    The actor host's event store reads and writes bytes (`decode_responses=False`).

    Close it with `await client.aclose()` (that closes the pool too).
    """
    pool = BlockingConnectionPool.from_url(
        f"redis://{host}/0",
        max_connections=max_connections,
        timeout=5,
        decode_responses=decode_responses,
        socket_connect_timeout=2,
        socket_timeout=5,
    )
    return Redis.from_pool(pool)
