"""The one Redis client (over one connection pool) an app builds in its lifespan.

Shared infrastructure: the actor host's event store, the projector and the gateway's
read side all build their client here, so no app imports another for it.

Its connections pack commands in C (`CPackedConnection`): redis-py's asyncio connection
packs every command in Python even with hiredis installed (the projector's EVALSHAs
carry ~20-100 arguments: packing was ~10 % of its CPU), while hiredis 3 has
`hiredis.pack_command`, which writes the same bytes for the arguments it takes.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

from redis._parsers.encoders import Encoder
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.typing import EncodableT
from redis.utils import HIREDIS_AVAILABLE

if HIREDIS_AVAILABLE:
    from hiredis import pack_command as _c_pack

DEFAULT_REDIS_HOST: Final = "127.0.0.1:6380"


def redis_host_from_env(env: Mapping[str, str] | None = None) -> str:
    """ORDERFLOW_REDIS_HOST (host:port), as the launcher and the compose file set it."""
    env = os.environ if env is None else env
    return env.get("ORDERFLOW_REDIS_HOST") or DEFAULT_REDIS_HOST


REDIS_PASSWORD_ENV: Final = "ORDERFLOW_REDIS_PASSWORD"


def redis_password_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """ORDERFLOW_REDIS_PASSWORD, Redis's `requirepass` (the launcher makes one for a local
    cluster, docker-compose requires one, the Helm chart sets it from a Secret); none when
    unset."""
    env = os.environ if env is None else env
    return env.get(REDIS_PASSWORD_ENV) or None


def redis_client(
    host: str,
    *,
    max_connections: int = 64,
    decode_responses: bool = True,
    password: str | None = None,
) -> Redis:
    """A client owning a blocking pool: callers wait for a free connection, never fail.

    The actor host's event store reads and writes bytes (`decode_responses=False`).
    With a `password`, every connection authenticates when it opens.

    Close it with `await client.aclose()` (that closes the pool too).
    """
    pool = BlockingConnectionPool.from_url(
        f"redis://{host}/0",
        connection_class=CPackedConnection,
        max_connections=max_connections,
        timeout=5,
        decode_responses=decode_responses,
        socket_connect_timeout=2,
        socket_timeout=5,
        password=password,
    )
    return Redis.from_pool(pool)


def host_of(client: Redis) -> str:
    """The host:port a client's pool connects to (a client given by a caller: tests)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"


def password_of(client: Redis) -> str | None:
    """The password a client's pool authenticates with, if any."""
    password: str | None = client.connection_pool.connection_kwargs.get("password")
    return password


@asynccontextmanager
async def feed_client(
    host: str, given: Redis | None = None, *, password: str | None = None
) -> AsyncIterator[Redis]:
    """A stream feed's client (bytes replies: an entry is the producer's bytes): `given`
    (its owner closes it: tests), else a small one of its own, closed at the block's end."""
    if given is not None:
        yield given
        return
    client = redis_client(host, max_connections=4, decode_responses=False, password=password)
    try:
        yield client
    finally:
        await client.aclose()


# what hiredis.pack_command writes exactly as redis-py's Encoder does (exact types: a bool is
# refused by redis-py, an int subclass is written with its repr, a str subclass with its own
# encode(), a memoryview of wider items with its item count as the length)
_PLAIN: Final = frozenset({str, bytes, int, float})


class CPackedConnection(Connection):
    """A redis-py asyncio connection whose commands are packed by `hiredis.pack_command`.

    The bytes sent are the ones redis-py's own `pack_command` writes: its encoder's
    UTF-8 with strict errors, `repr` for numbers, a multi-word command name split into
    words. Anything else (other types: None, bool, bytearray, memoryview, subclasses; a
    text that does not encode; another encoding; no hiredis) goes to redis-py's packer,
    which raises its own errors. Pipelines pack each command through `pack_command`.
    One difference: a value over redis-py's buffer cutoff (6000 bytes) is copied into the
    command instead of being sent as a chunk of its own (the same bytes on the wire).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        encoder = self.encoder
        self._c_packing = (
            HIREDIS_AVAILABLE
            and type(encoder) is Encoder
            and codecs.lookup(encoder.encoding).name == "utf-8"
            and encoder.encoding_errors == "strict"
        )

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        if self._c_packing and args:
            packed = _packed(args)
            if packed is not None:
                return [packed]
        return super().pack_command(*args)


def _packed(args: tuple[Any, ...]) -> bytes | None:
    """The command as redis-py packs it, or None where only redis-py's packer can tell."""
    name = args[0]
    if type(name) is str:  # as redis-py does: "CLIENT SETNAME" is two words
        args = (*name.encode().split(), *args[1:])
    elif type(name) is bytes:
        if b" " in name:
            args = (*name.split(), *args[1:])
    else:
        return None
    if not args or not _PLAIN.issuperset(map(type, args)):
        return None
    try:
        packed: bytes = _c_pack(args)
    except ValueError:  # a str with a lone surrogate: redis-py raises its own error
        return None
    return packed
