"""uvicorn's protocol with an answer written at once (actors.toolkit.onewrite): the
transport adapter, and a real uvicorn server using it over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from actors.toolkit.onewrite import CoalescedWrites, OneWriteHttpToolsProtocol


class _Transport:
    """What CoalescedWrites hands on: the writes, and whether it was closed or aborted."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False
        self.extra = {"peername": ("127.0.0.1", 1)}

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


async def test_the_writes_of_one_loop_turn_leave_as_one() -> None:
    inner = _Transport()
    writes = CoalescedWrites(inner)  # type: ignore[arg-type]

    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writes.write(memoryview(b"body"))
    assert inner.writes == []
    assert writes.get_write_buffer_size() == 7 + 19 + 4
    await asyncio.sleep(0)
    writes.write(b"next turn")
    await asyncio.sleep(0)

    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next turn"]
    assert writes.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest delegated


async def test_close_sends_what_is_gathered_first_and_abort_drops_it() -> None:
    closed, aborted = _Transport(), _Transport()
    for transport in (closed, aborted):
        writes = CoalescedWrites(transport)  # type: ignore[arg-type]
        writes.write(b"last words")
        if transport is closed:
            writes.close()
        else:
            writes.abort()
    await asyncio.sleep(0)

    assert (closed.writes, closed.closed) == ([b"last words"], True)
    assert (aborted.writes, aborted.aborted) == ([], True)


# --- a real uvicorn with the protocol ---------------------------------------------------------


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    request = await receive()
    if scope["path"] == "/stream":  # a body in chunks, each from a later loop turn
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(3):
            await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"chunk%d;" % n, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"echo:" + request.get("body", b"")
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _served() -> AsyncIterator[str]:
    config = uvicorn.Config(  # log_config=None: the process's logging stays as it was
        _app, host="127.0.0.1", port=0, http=OneWriteHttpToolsProtocol, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn's Server has a flag, no event)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def one_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the adapter hands to the socket's transport."""
    sent: list[bytes] = []
    flush = CoalescedWrites._flush

    def counted(self: CoalescedWrites) -> None:
        if self._pending:
            sent.extend(self._pending)  # the pieces of this write
            sent.append(b"|")
        flush(self)

    monkeypatch.setattr(CoalescedWrites, "_flush", counted)
    return sent


async def test_uvicorn_answers_head_and_body_in_one_write_on_kept_alive_connections(
    one_writes: list[bytes],
) -> None:
    async with _served() as url, httpx.AsyncClient(base_url=url) as client:
        first = await client.post("/a", content=b"one")
        second = await client.post("/b", content=b"two")

    assert (first.status_code, first.text, second.text) == (201, "echo:one", "echo:two")
    writes = b"".join(one_writes).split(b"|")[:-1]
    assert len(writes) == 2  # one per answer, the head and the body together
    assert all(w.startswith(b"HTTP/1.1 201") and w.endswith(b"echo:" + b) for w, b in
               zip(writes, (b"one", b"two"), strict=True))  # fmt: skip


async def test_a_streamed_body_still_goes_out_chunk_by_chunk_and_a_closing_answer_arrives() -> None:
    async with _served() as url, httpx.AsyncClient(base_url=url) as client:
        streamed = await client.get("/stream")
        closing = await client.post("/c", content=b"bye", headers={"connection": "close"})

    assert streamed.text == "chunk0;chunk1;chunk2;"
    assert (closing.status_code, closing.text) == (201, "echo:bye")
