"""One Redis connection shared by every call in flight: the event store's hot path.

redis-py's asyncio client takes a connection from its pool for each command, waits for
the reply on it, and gives it back: per command a pool lock, a retry wrapper, a timeout
context and a read loop (~30 % of an actor host's CPU per command, `python -m bench.turn`).
Redis answers the commands of one connection in the order it read them, so many callers
can share one: each call writes its command (packed in C) and queues a future; the
protocol parses the replies in C as they arrive and resolves the futures in that order.
Commands written in the same event-loop turn leave in one `send()`.

Failures, each an exception of redis-py's tree (so a caller's `except RedisError` holds):

    RedisError
    ├── ConnectionError   could not connect, or the connection was lost with the call in
    │                     flight (its command may or may not have run)
    ├── TimeoutError      no reply within `timeout_s`; the connection is closed, as redis-py
    │                     does, so the calls in flight on it fail with ConnectionError
    └── ResponseError     Redis answered with an error (NoScriptError for NOSCRIPT, ...)

A call is never retried here: a command sent on a connection that was lost may have run
(an append's outcome is unknown and its caller says so). A call made after a loss opens
a new connection first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any, Final, cast

import hiredis
from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser
from redis.exceptions import NoScriptError, RedisError, ResponseError

Arg = str | bytes | int | float  # what a command's words may be (packed as redis-py packs them)

DEFAULT_TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 2.0


class Script:
    """A Lua script called by its SHA-1, loaded into Redis on the first NOSCRIPT."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: MultiplexedRedis, *, decode: bool) -> None:
        self._owner = owner
        self._reader = hiredis.Reader(encoding="utf-8") if decode else hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []  # commands written this loop turn, sent at its end
        self.lost = asyncio.get_running_loop().create_future()  # set by connection_lost

    def send(self, packed: bytes) -> None:
        """Queue `packed`: the commands of one event-loop turn leave in one write."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(packed)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(outgoing))  # else connection_lost failed them

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self.waiting
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # the stream is garbage from here on
                self._fail(f"protocol error: {exc}")
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail("a reply with no command waiting for it")
                return
            future = waiting.popleft()
            if future.done():  # timed out or cancelled; its reply still keeps the order
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        self._owner._lost(self)
        self._fail_waiting(f"connection to Redis lost: {exc or 'closed'}")

    def _fail(self, reason: str) -> None:
        self._fail_waiting(reason)
        if self.transport is not None:
            self.transport.abort()

    def _fail_waiting(self, reason: str) -> None:
        error = redis_errors.ConnectionError(reason)
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class MultiplexedRedis:
    """Commands to one Redis over one connection, replies matched in order: bytes, or
    text (UTF-8) with `decode` (as redis-py's `decode_responses`). With a `password`, each
    connection authenticates (AUTH) before any command is written to it."""

    def __init__(
        self,
        host: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        decode: bool = False,
        password: str | None = None,
    ) -> None:
        address, _, port = host.rpartition(":")
        self._address = address or "127.0.0.1"
        self._port = int(port)
        self._timeout_s = timeout_s
        self._decode = decode
        self._password = password
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()  # one connection opened at a time
        self._closed = False

    async def execute(self, *args: Arg) -> Any:
        """One command's reply (an error reply raised as redis-py's exception for it)."""
        protocol = self._protocol or await self._connect()
        return await self._send(protocol, _pack(args))

    async def execute_many(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Several commands written at once (not a transaction); the first error raises."""
        replies = await self.execute_each(commands)
        for reply in replies:
            if isinstance(reply, RedisError):
                raise reply
        return replies

    async def execute_each(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Several commands written at once, each reply in its place, an error reply as its
        exception (as redis-py's pipelines with raise_on_error=False); a lost connection or
        a timeout raises, as there."""
        if not commands:
            return []
        protocol = self._protocol or await self._connect()
        packed = b"".join(_pack(command) for command in commands)
        futures = self._write(protocol, packed, len(commands))
        return await self._await_all(protocol, futures)

    async def evalsha(self, script: Script, keys: list[Any], args: list[Any]) -> Any:
        """EVALSHA, loading the script on NOSCRIPT (a restarted or flushed Redis) once."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self.execute(*command)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.source)
            return await self.execute(*command)

    async def aclose(self) -> None:
        """Close the connection, and wait (briefly) until its socket is closed."""
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.lost), CONNECT_TIMEOUT_S)

    # --- the connection ---------------------------------------------------------------

    async def _connect(self) -> _Protocol:
        async with self._connecting:  # the callers that wait here share what it opens
            if self._closed:
                raise redis_errors.ConnectionError("the Redis client is closed")
            if self._protocol is None:
                protocol = await self._open()
                if self._password is not None:
                    await self._authenticate(protocol, self._password)
                self._protocol = protocol
            return self._protocol

    async def _authenticate(self, protocol: _Protocol, password: str) -> None:
        """AUTH on a new connection (the callers queued on `_connecting` write nothing
        before it answers); a refusal closes it and raises AuthenticationError."""
        try:
            await self._send(protocol, _pack(("AUTH", password)))
        except RedisError as exc:
            if protocol.transport is not None:
                protocol.transport.close()
            raise redis_errors.AuthenticationError(f"Redis refused AUTH: {exc}") from exc

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self, decode=self._decode), self._address, self._port
                )
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(
                f"cannot connect to Redis at {self._address}:{self._port}: {exc!r}"
            ) from exc
        return protocol

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    # --- the calls --------------------------------------------------------------------

    def _write(self, protocol: _Protocol, packed: bytes, count: int) -> list[asyncio.Future[Any]]:
        transport = protocol.transport
        if transport is None or transport.is_closing():
            raise redis_errors.ConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        protocol.waiting.extend(futures)
        protocol.send(packed)
        return futures

    async def _send(self, protocol: _Protocol, packed: bytes) -> Any:
        (future,) = self._write(protocol, packed, 1)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._timeout_s, self._time_out, protocol, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def _await_all(
        self, protocol: _Protocol, futures: list[asyncio.Future[Any]]
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._timeout_s, self._time_out, protocol, futures[-1])
        replies: list[Any] = []
        failed: RedisError | None = None  # the connection's failure, not an error reply
        try:
            for future in futures:  # every one awaited: none is left with an unread error
                try:
                    replies.append(await future)
                except ResponseError as exc:
                    replies.append(exc)
                except RedisError as exc:
                    failed = failed or exc
        finally:
            timer.cancel()
        if failed is not None:
            raise failed
        return replies

    def _time_out(self, protocol: _Protocol, future: asyncio.Future[Any]) -> None:
        if future.done():
            return
        future.set_exception(
            redis_errors.TimeoutError(f"no reply from Redis in {self._timeout_s} s")
        )
        if protocol.transport is not None:  # as redis-py does: the connection is suspect
            protocol.transport.abort()


def _pack(command: tuple[Arg, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(cast(Any, command))
    return packed


def _error(message: str) -> RedisError:
    """redis-py's exception for an error reply (NOSCRIPT: NoScriptError, ...)."""
    error: RedisError = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


__all__ = ["MultiplexedRedis", "RedisError", "Script"]
