"""A lean HTTP/1.1 client for an app's calls to its own sidecar: pooled keep-alive, C parser.

One `Http1Pool` per sidecar. Each connection is an asyncio.Protocol that writes the request
bytes itself and parses the answer with httptools (llhttp, in C): no streams, no per-request
objects beyond a future, the request bytes and the body.

    pool.request(method, path, content=..., params=..., headers=...) -> (status, body)
    Http1Error    no complete response: refused, reset, closed early, timed out, unparseable

A request on a kept-alive connection that fails before any byte of the answer arrived (the
server closed it as we sent) is sent once more on a fresh connection, for idempotent methods
only, as aiohttp does: a POST may have been acted on.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Mapping
from typing import cast
from urllib.parse import quote, urlencode

import httptools

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Requoting as yarl (hence aiohttp) does it: these stay as they are in a path...
_PATH_SAFE = "/:@!$&'()*+,;="
# ... a valid %XX escape of one of these is decoded, any other escape is upper-cased (so
# "%2F" stays an escaped slash), and a "%" that starts no escape becomes "%25".
_UNESCAPED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*,;=:@"
)
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_QUERY_SAFE = "/:@?!$'()*,"  # yarl's query quoting, with urlencode's "+" for a space


def quote_path(path: str) -> str:
    """`path` as aiohttp sends it (yarl's requoting), without its dot-segment folding."""
    if "%" not in path:
        return quote(path, safe=_PATH_SAFE)
    parts = _ESCAPE.split(path)  # text, hex, text, hex, ..., text
    for i in range(1, len(parts), 2):
        char = chr(int(parts[i], 16))
        parts[i] = char if char in _UNESCAPED else "%" + parts[i].upper()
    for i in range(0, len(parts), 2):
        parts[i] = quote(parts[i], safe=_PATH_SAFE)
    return "".join(parts)


class Http1Error(Exception):
    """No complete response: refused, reset, closed early, timed out, or unparseable."""


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its response parsed as the bytes arrive."""

    def __init__(self, registry: set[_Connection]) -> None:
        self._registry = registry
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._head = False  # the request was HEAD: no body follows the headers
        self._framed = False  # Content-Length or Transfer-Encoding (else: the body ends at EOF)
        self._headers_done = False
        self.answered = False  # a byte of the current response arrived
        self.reusable = True  # open, and every response so far allowed keep-alive
        self.idle_since = 0.0
        self._deadline = 0.0  # of the request in flight (loop time)

    async def exchange(self, data: bytes, *, head: bool, deadline: float) -> tuple[int, bytes]:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise Http1Error("connection closed")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.answered = self._headers_done = False
        self._head, self._deadline = head, deadline
        transport.write(data)
        return await waiter

    def expire(self, now: float) -> bool:
        """Fail the request in flight if its deadline passed; whether one is still waiting."""
        if self._waiter is None:
            return False
        if now < self._deadline:
            return True
        self._fail(Http1Error("no response within the timeout"))
        self.close()
        return False

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._registry.discard(self)
        if self._waiter is None:
            return
        if exc is None and self._headers_done and not self._framed:
            self._finish()  # an HTTP/1.0-style body, delimited by the close
        else:
            self._fail(Http1Error(f"connection closed before a full response ({exc!r})"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # an answer nobody asked for: the exchange is out of step
            self.close()
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(Http1Error(f"malformed response: {exc!r}"))
            self.close()

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second response after ours
            self.reusable = False
        self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._head:  # the parser expects the body Content-Length announces: drop the line
            self.reusable = False
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():  # Connection: close, or HTTP/1.0
            self.reusable = False
        self._finish()

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        body = b"".join(self._body)
        self._body.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), body))

    def _fail(self, exc: Http1Error) -> None:
        waiter, self._waiter = self._waiter, None
        self._body.clear()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def _header_lines(headers: Mapping[str, str] | None) -> str:
    """`name: value\\r\\n` for each header; ValueError on a line break in one."""
    if not headers:
        return ""
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if fields.count("\n") != len(headers) or fields.count("\r") != len(headers):
        raise ValueError(f"a line break in a header: {headers!r}")
    return fields


class Http1Pool:
    """Keep-alive connections to one `host` (an IP literal) and `port`, reused LIFO.

    At most `max_connections` requests are in flight (the rest wait), so at most that many
    connections are open. `timeout` bounds a whole request, the wait for a slot included.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 256,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        idle_timeout: float = 30.0,
        fixed_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._address = (host, port)
        self._host = f"{host}:{port}"
        # the head's lines every request carries: Host, and `fixed_headers` (a token)
        self._fixed = f"Host: {self._host}\r\n" + _header_lines(fixed_headers)
        self._slots = asyncio.Semaphore(max_connections)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open: set[_Connection] = set()
        # One timer for all requests in flight rather than one per request (asyncio.timeout
        # cost more CPU than the rest of a request on uvloop): late by at most `_tick`.
        self._tick = min(1.0, timeout / 4)
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or busy."""
        return len(self._open)

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; answer (status, body) or raise Http1Error."""
        data = self._encode(method, path, content=content, params=params, headers=headers)
        deadline = asyncio.get_running_loop().time() + self._timeout
        if self._slots.locked():  # every connection busy: wait for one, within the deadline
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise Http1Error(f"no connection free within {self._timeout}s") from exc
        else:
            await self._slots.acquire()
        try:
            return await self._send(method, data, deadline)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Close every connection; requests in flight fail with Http1Error."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._idle.clear()
        for conn in list(self._open):
            conn.close()
        await asyncio.sleep(0)  # let the transports report connection_lost

    def _encode(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> bytes:
        body = content.encode() if isinstance(content, str) else content or b""
        target = quote_path(path)
        if params:
            target += "?" + urlencode(params, safe=_QUERY_SAFE)
        fields = _header_lines(headers)
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}Content-Length: {len(body)}\r\n"
        return (head + fields + "\r\n").encode() + body

    async def _send(self, method: str, data: bytes, deadline: float) -> tuple[int, bytes]:
        conn = self._checkout()
        if conn is not None:
            try:
                return await self._round_trip(conn, data, method=method, deadline=deadline)
            except Http1Error:
                retry = not conn.answered and method in IDEMPOTENT
                if not retry or asyncio.get_running_loop().time() >= deadline:
                    raise
            # the server closed the kept-alive connection as we sent: once more, on a new one
        conn = await self._connect(deadline)
        return await self._round_trip(conn, data, method=method, deadline=deadline)

    async def _round_trip(
        self, conn: _Connection, data: bytes, *, method: str, deadline: float
    ) -> tuple[int, bytes]:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self._tick, self._sweep)
        try:
            answer = await conn.exchange(data, head=method == "HEAD", deadline=deadline)
        except BaseException:  # failed, timed out or cancelled: the response may still come
            conn.close()
            raise
        if conn.reusable and not self._closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    def _sweep(self) -> None:
        """Fail the requests past their deadline; again in a tick while any is in flight."""
        now = asyncio.get_running_loop().time()
        waiting = [conn.expire(now) for conn in list(self._open)]
        self._sweeper = None
        if any(waiting) and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(self._tick, self._sweep)

    def _checkout(self) -> _Connection | None:
        stale = asyncio.get_running_loop().time() - self._idle_timeout
        idle = self._idle
        while idle and idle[0].idle_since <= stale:  # oldest first, LIFO leaves them last
            idle.popleft().close()
        while idle:
            conn = idle.pop()
            if conn.reusable:
                return conn
        return None

    async def _connect(self, deadline: float) -> _Connection:
        if self._closed:
            raise Http1Error("pool closed")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout)):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._open), *self._address
                )
        except OSError as exc:  # refused, unreachable, and TimeoutError (an OSError)
            raise Http1Error(f"connect to {self._host}: {exc!r}") from exc
        return conn
