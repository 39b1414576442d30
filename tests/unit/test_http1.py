"""actors.toolkit.http1 against real local servers: uvicorn, and asyncio ones that misbehave.

uvicorn (in this process, on a free loopback port) runs a raw ASGI app that records every
request and echoes its body; the asyncio servers answer with bytes written by hand, close
connections early, answer `Connection: close` or HTTP/1.0, or never answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
import yarl

from actors.toolkit.http1 import Http1Error, Http1Pool, quote_path
from actors.toolkit.sidecar import SidecarHTTP, SidecarUnavailableError

MiB = 1024 * 1024


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` for up to 5 s."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition still false after 5 s")


@contextlib.asynccontextmanager
async def pool_to(port: int, **options: Any) -> AsyncIterator[Http1Pool]:
    pool = Http1Pool("127.0.0.1", port, **options)
    try:
        yield pool
    finally:
        await pool.close()


# --- uvicorn, recording --------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    target: bytes  # the raw path and query, as sent
    headers: dict[bytes, bytes]
    body: bytes
    client_port: int


@dataclass
class Recorder:
    """A raw ASGI app: records each request and echoes its body (x-status sets the status)."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = dict(scope["headers"])
        query = scope["query_string"]
        target = scope["raw_path"] + (b"?" + query if query else b"")
        self.seen.append(Seen(scope["method"], target, headers, body, scope["client"][1]))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if scope["path"] == "/slow":
            await asyncio.sleep(0.005)
        self.in_flight -= 1
        status = int(headers.get(b"x-status", b"200"))
        await send({"type": "http.response.start", "status": status, "headers": []})
        if scope["path"] == "/chunked":  # no Content-Length, several body messages: chunked
            for piece in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": body})

    def client_ports(self) -> set[int]:
        return {seen.client_port for seen in self.seen}


@pytest.fixture(scope="module")
async def uvicorn_app() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    # proto given: asyncio sets TCP_NODELAY on accepted sockets only when it is IPPROTO_TCP
    # (else Nagle holds uvicorn's body behind its headers for a delayed ACK, 40 ms a request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    recorder.port = sock.getsockname()[1]
    # log_config None (and no log_level, access_log): uvicorn leaves the logging setup alone
    config = uvicorn.Config(recorder, lifespan="off", ws="none", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await until(lambda: server.started)
    yield recorder
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def app(uvicorn_app: Recorder) -> Recorder:
    uvicorn_app.seen.clear()
    uvicorn_app.most_in_flight = 0
    return uvicorn_app


@pytest.fixture
async def pool(app: Recorder) -> AsyncIterator[Http1Pool]:
    async with pool_to(app.port) as pool:
        yield pool


# --- asyncio servers, by hand --------------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
RESET = b"<reset>"  # a reply piece: give the client a moment to read, then reset the connection
Reply = Sequence[bytes] | None  # pieces written one by one; None: close without answering


class RawServer:
    """Answers the n-th request (from 1, across connections) with `reply(n)`.

    An empty reply says nothing and keeps the connection open; `close_after_reply` closes
    every connection once it answered.
    """

    def __init__(self, reply: Callable[[int], Reply], *, close_after_reply: bool = False):
        self.reply = reply
        self.close_after_reply = close_after_reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed_by_client = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                pieces = self.reply(len(self.requests))
                if pieces is None:
                    return
                for piece in pieces:
                    if piece == RESET:
                        await _reset(writer)
                        return
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)  # one piece per write, as far as we can
                if pieces and self.close_after_reply:
                    return
            self.closed_by_client += 1
        finally:
            writer.close()


async def _reset(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(0.05)
    linger = struct.pack("ii", 1, 0)  # on, 0 s: close() sends RST
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        assert length is not None, head
        return head + await reader.readexactly(int(length[1]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


@contextlib.asynccontextmanager
async def raw_server(
    reply: Callable[[int], Reply], *, close_after_reply: bool = False
) -> AsyncIterator[tuple[RawServer, int]]:
    raw = RawServer(reply, close_after_reply=close_after_reply)
    server = await asyncio.start_server(raw._handle, "127.0.0.1", 0)
    try:
        yield raw, server.sockets[0].getsockname()[1]
    finally:
        server.close()


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
async def test_a_request_reaches_the_server_as_sent_and_its_answer_comes_back(
    pool: Http1Pool, app: Recorder, method: str
) -> None:
    params = {"metadata.cloudevent.id": "ev 1+2/3", "type": "inventory.restocked"}
    headers = {"content-type": "application/json", "x-status": "201"}

    status, body = await pool.request(
        method, "/v1.0/things/a", content=b'{"n":1}', params=params, headers=headers
    )

    assert (status, body) == (201, b'{"n":1}')
    [seen] = app.seen
    assert seen.method == method
    path, query = seen.target.split(b"?")
    assert path == b"/v1.0/things/a"
    assert dict(parse_qsl(query.decode())) == params
    assert seen.headers[b"content-type"] == b"application/json"
    assert seen.headers[b"host"] == f"127.0.0.1:{app.port}".encode()


@pytest.mark.parametrize(
    "content", [None, b"", "thé", b"x" * MiB], ids=["none", "empty", "str", "1MiB"]
)
async def test_bodies_of_any_size_go_and_come_back_whole(
    pool: Http1Pool, app: Recorder, content: bytes | str | None
) -> None:
    expected = content.encode() if isinstance(content, str) else content or b""

    status, body = await pool.request("POST", "/echo", content=content)

    assert (status, body) == (200, expected)
    assert app.seen[0].headers[b"content-length"] == str(len(expected)).encode()


async def test_an_error_status_is_an_answer_not_an_exception(pool: Http1Pool) -> None:
    assert await pool.request("GET", "/missing", headers={"x-status": "404"}) == (404, b"")


async def test_a_chunked_answer_is_read_to_its_last_chunk(pool: Http1Pool) -> None:
    assert await pool.request("POST", "/chunked", content=b"!") == (200, b"one two three!")


async def test_a_head_answer_ends_with_its_headers_and_retires_the_connection() -> None:
    replies: dict[int, Reply] = {1: [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]}
    async with (
        raw_server(lambda n: replies.get(n, [OK])) as (server, port),
        pool_to(port, timeout=2.0) as pool,
    ):
        assert await pool.request("HEAD", "/") == (200, b"")
        assert await pool.request("GET", "/") == (200, b"ok")

    assert server.connections == 2


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "byte-by-byte"])
async def test_a_chunked_answer_in_any_number_of_pieces_is_reassembled(split: bool) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n1\r\n!\r\n0\r\n\r\n"
    )
    pieces = [answer[i : i + 1] for i in range(len(answer))] if split else [answer]
    async with raw_server(lambda n: pieces) as (server, port), pool_to(port) as pool:
        assert await pool.request("GET", "/") == (200, b"hello world!")
        assert await pool.request("GET", "/") == (200, b"hello world!")

    assert server.connections == 1


# --- the pool --------------------------------------------------------------------------------


async def test_sequential_requests_share_one_kept_alive_connection(
    pool: Http1Pool, app: Recorder
) -> None:
    for n in range(50):
        assert await pool.request("POST", "/echo", content=b"%d" % n) == (200, b"%d" % n)

    assert len(app.seen) == 50
    assert len(app.client_ports()) == 1
    assert pool.open_connections == 1


async def test_concurrent_requests_open_no_more_connections_than_allowed(app: Recorder) -> None:
    async with pool_to(app.port, max_connections=8) as pool:
        answers = await asyncio.gather(
            *(pool.request("POST", "/slow", content=b"%d" % n) for n in range(100))
        )

        assert answers == [(200, b"%d" % n) for n in range(100)]
        assert 1 < len(app.client_ports()) <= 8
        assert app.most_in_flight <= 8
        assert pool.open_connections <= 8


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async with (
        raw_server(lambda n: [OK], close_after_reply=True) as (server, port),
        pool_to(port) as pool,
    ):
        assert await pool.request("POST", "/", content=b"1") == (200, b"ok")
        await until(lambda: pool.open_connections == 0)
        # a POST is never retried: it works only because the dead connection was dropped
        assert await pool.request("POST", "/", content=b"2") == (200, b"ok")

    assert (server.connections, len(server.requests)) == (2, 2)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_connection_the_server_asked_to_close_is_not_reused(answer: bytes) -> None:
    async with raw_server(lambda n: [answer]) as (server, port), pool_to(port) as pool:
        assert await pool.request("GET", "/") == (200, b"ok")
        assert await pool.request("GET", "/") == (200, b"ok")
        await until(lambda: server.closed_by_client == 2)

    assert server.connections == 2


async def test_an_answer_without_length_ends_where_the_server_closes() -> None:
    answer = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    async with (
        raw_server(lambda n: [answer], close_after_reply=True) as (_, port),
        pool_to(port) as pool,
    ):
        assert await pool.request("GET", "/") == (200, b"until the end")


async def test_an_answer_without_length_cut_by_a_reset_is_an_error_not_a_short_body() -> None:
    answer = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the"
    async with raw_server(lambda n: [answer, RESET]) as (_, port), pool_to(port) as pool:
        with pytest.raises(Http1Error, match="closed before a full response"):
            await pool.request("GET", "/")


def _answer_once_then_drop(n: int) -> Reply:
    return [OK] if n == 1 else None


async def test_a_post_the_server_dropped_unanswered_on_a_kept_alive_connection_is_not_resent() -> (
    None
):
    async with raw_server(_answer_once_then_drop) as (server, port), pool_to(port) as pool:
        await pool.request("POST", "/", content=b"first")
        with pytest.raises(Http1Error, match="closed before a full response"):
            await pool.request("POST", "/", content=b"second")

    assert len(server.requests) == 2


async def test_a_get_the_server_dropped_unanswered_is_sent_once_more_on_a_new_connection() -> None:
    async with raw_server(_answer_once_then_drop) as (server, port), pool_to(port) as pool:
        await pool.request("GET", "/")
        with pytest.raises(Http1Error, match="closed before a full response"):
            await pool.request("GET", "/")

    assert (server.connections, len(server.requests)) == (2, 3)


async def test_a_get_resent_after_a_drop_gets_the_answer_of_the_new_connection() -> None:
    replies = {1: [OK], 2: None}
    async with (
        raw_server(lambda n: replies.get(n, [OK])) as (server, port),
        pool_to(port) as pool,
    ):
        await pool.request("GET", "/")
        assert await pool.request("GET", "/") == (200, b"ok")

    assert (server.connections, len(server.requests)) == (2, 3)


async def test_a_request_that_times_out_fails_is_not_resent_and_its_connection_is_closed() -> None:
    replies: dict[int, Reply] = {2: []}  # the second request is never answered
    async with (
        raw_server(lambda n: replies.get(n, [OK])) as (server, port),
        pool_to(port, timeout=0.2) as pool,
    ):
        await pool.request("GET", "/")
        started = asyncio.get_running_loop().time()
        with pytest.raises(Http1Error, match="no response within the timeout"):
            await pool.request("GET", "/")  # on the kept-alive connection, idempotent
        assert 0.2 <= asyncio.get_running_loop().time() - started < 1.0
        await until(lambda: server.closed_by_client == 1)
        assert await pool.request("GET", "/") == (200, b"ok")

    assert (server.connections, len(server.requests)) == (2, 3)


async def test_a_request_waiting_for_a_free_connection_fails_at_its_deadline_too() -> None:
    async with (
        raw_server(lambda n: []) as (server, port),
        pool_to(port, max_connections=1, timeout=0.2) as pool,
    ):
        answers = await asyncio.gather(
            pool.request("GET", "/"), pool.request("GET", "/"), return_exceptions=True
        )

    assert [type(answer) for answer in answers] == [Http1Error, Http1Error]
    assert "no connection free within 0.2s" in str(answers[1])
    assert len(server.requests) == 1


async def test_a_cancelled_request_closes_its_connection_and_the_next_one_works() -> None:
    replies: dict[int, Reply] = {1: []}
    async with (
        raw_server(lambda n: replies.get(n, [OK])) as (server, port),
        pool_to(port) as pool,
    ):
        task = asyncio.create_task(pool.request("POST", "/", content=b"1"))
        await until(lambda: len(server.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: server.closed_by_client == 1)
        assert await pool.request("POST", "/", content=b"2") == (200, b"ok")

    assert server.connections == 2


async def test_a_malformed_answer_fails_and_its_connection_is_closed() -> None:
    replies: dict[int, Reply] = {1: [b"HTTP/1.1 abc nonsense\r\n\r\n"]}
    async with (
        raw_server(lambda n: replies.get(n, [OK])) as (server, port),
        pool_to(port) as pool,
    ):
        with pytest.raises(Http1Error, match="malformed response"):
            await pool.request("GET", "/")
        await until(lambda: server.closed_by_client == 1)
        assert await pool.request("GET", "/") == (200, b"ok")


async def test_an_answer_nobody_asked_for_retires_the_connection() -> None:
    replies: dict[int, Reply] = {1: [OK + OK]}
    async with (
        raw_server(lambda n: replies.get(n, [OK])) as (server, port),
        pool_to(port) as pool,
    ):
        assert await pool.request("POST", "/", content=b"1") == (200, b"ok")
        assert await pool.request("POST", "/", content=b"2") == (200, b"ok")

    assert server.connections == 2


async def test_a_refused_connection_is_an_http1_error_and_a_sidecar_unavailable_one() -> None:
    with socket.socket() as bound:  # bound, not listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        async with pool_to(port) as pool:
            with pytest.raises(Http1Error, match=r"connect to 127\.0\.0\.1"):
                await pool.request("GET", "/")
        async with SidecarHTTP(port) as sidecar:
            with pytest.raises(SidecarUnavailableError, match=r"GET /v1\.0/x"):
                await sidecar.request("GET", "/v1.0/x")


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async with pool_to(1) as pool:  # nothing listens on port 1: nothing is even connected
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", "/", headers={"x": "1\r\nHost: elsewhere"})


# --- quoting, as aiohttp (yarl) does it -----------------------------------------------------

IDS = [
    "tea-green-100g",
    "a b",
    "thé vert",
    "💡",
    "100%",
    "a%20b",
    "a%2Fb",
    "a%2fb",
    "%7E",
    "%zz",
    "a+b",
    "a;b=c&d",
    "a:b@c",
    "a!$'()*,b",
    'a"<b>{c}|d\\e^f`g[h]',
]


@pytest.mark.parametrize("actor_id", IDS)
def test_a_path_is_quoted_as_yarl_requotes_it(actor_id: str) -> None:
    path = f"/v1.0/actors/OrderActor/{actor_id}/method/Place"

    assert quote_path(path) == yarl.URL("http://127.0.0.1:1").join(yarl.URL(path)).raw_path


async def test_paths_and_params_go_on_the_wire_as_aiohttp_sends_them(
    pool: Http1Pool, app: Recorder
) -> None:
    params = {"id": "ev 1+2/3:4@5?6&7=8;9~!*", "type": "thé"}
    for actor_id in IDS:
        await pool.request("GET", f"/v1.0/actors/T/{actor_id}/state", params=params)

    sent = [seen.target.decode() for seen in app.seen]
    base = yarl.URL("http://127.0.0.1:1")
    expected = [
        base.join(yarl.URL(f"/v1.0/actors/T/{actor_id}/state")).with_query(params).raw_path_qs
        for actor_id in IDS
    ]
    assert sent == expected


async def test_fixed_headers_go_with_every_request_and_stay_out_of_errors(app: Recorder) -> None:
    token = {"dapr-api-token": "tok-123"}
    async with pool_to(app.port, fixed_headers=token) as pool:
        await pool.request("GET", "/a")
        await pool.request("POST", "/b", content=b"x", headers={"x-extra": "1"})

    assert [s.headers.get(b"dapr-api-token") for s in app.seen] == [b"tok-123", b"tok-123"]
    assert app.seen[1].headers[b"x-extra"] == b"1"
    async with pool_to(1, fixed_headers=token, connect_timeout=0.5) as closed:
        with pytest.raises(Http1Error) as refused:
            await closed.request("GET", "/")
    assert "tok-123" not in str(refused.value)
    with pytest.raises(ValueError, match="line break"):
        Http1Pool("127.0.0.1", app.port, fixed_headers={"dapr-api-token": "a\r\nb"})


async def test_the_sidecar_client_sends_the_apps_dapr_api_token(app: Recorder) -> None:
    async with SidecarHTTP(app.port, api_token="tok-456") as with_token:
        await with_token.request("GET", "/v1.0/metadata")
    async with SidecarHTTP(app.port) as without:
        await without.request("GET", "/v1.0/metadata")

    assert app.seen[0].headers.get(b"dapr-api-token") == b"tok-456"
    assert b"dapr-api-token" not in app.seen[1].headers
