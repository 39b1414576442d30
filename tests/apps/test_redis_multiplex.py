"""The event store's shared Redis connection (actors.toolkit.redis_multiplex) on a real
redis-server: replies matched to their calls, errors, timeouts, a lost and a new Redis."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from actors.toolkit.redis_multiplex import MultiplexedRedis, Script


@pytest.fixture
async def multiplexed(redis_port: int) -> AsyncIterator[MultiplexedRedis]:
    client = MultiplexedRedis(f"127.0.0.1:{redis_port}")
    await client.execute("FLUSHALL")
    yield client
    await client.aclose()


async def test_concurrent_calls_each_get_their_own_reply(multiplexed: MultiplexedRedis) -> None:
    await multiplexed.execute_many([("SET", f"k{i}", f"v{i}".encode() * i) for i in range(300)])

    replies = await asyncio.gather(*(multiplexed.execute("GET", f"k{i}") for i in range(300)))

    assert replies == [f"v{i}".encode() * i for i in range(300)]


async def test_the_commands_of_one_loop_turn_leave_in_one_write(
    multiplexed: MultiplexedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await multiplexed.execute("PING")  # connected
    writes: list[bytes] = []
    transport = multiplexed._protocol.transport  # type: ignore[union-attr]
    real_write = transport.write  # type: ignore[union-attr]

    def counted(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    monkeypatch.setattr(transport, "write", counted)

    replies = await asyncio.gather(*(multiplexed.execute("ECHO", f"m{i}") for i in range(50)))

    assert replies == [f"m{i}".encode() for i in range(50)]
    assert len(writes) == 1
    assert writes[0].count(b"ECHO") == 50


async def test_an_error_reply_raises_for_its_call_alone(multiplexed: MultiplexedRedis) -> None:
    await multiplexed.execute("SET", "text", "x")

    replies: list[object] = await asyncio.gather(
        multiplexed.execute("GET", "text"),
        multiplexed.execute("HGET", "text", "field"),
        multiplexed.execute("GET", "text"),
        return_exceptions=True,
    )

    before, wrong, after = replies
    assert (before, after) == (b"x", b"x")
    assert isinstance(wrong, ResponseError)
    assert "WRONGTYPE" in str(wrong)


async def test_a_batch_reads_every_reply_then_raises_its_first_error(
    multiplexed: MultiplexedRedis,
) -> None:
    await multiplexed.execute("SET", "text", "x")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await multiplexed.execute_many([("HGET", "text", "f"), ("SET", "after", "1")])

    assert await multiplexed.execute_many([("GET", "after"), ("HGET", "none", "f")]) == [
        b"1",
        None,
    ]


async def test_a_script_is_loaded_on_noscript_and_called_by_its_sha(
    multiplexed: MultiplexedRedis,
) -> None:
    script = Script("return {KEYS[1], ARGV[1], #ARGV}")
    await multiplexed.execute("SCRIPT", "FLUSH")
    with pytest.raises(NoScriptError):
        await multiplexed.execute("EVALSHA", script.sha, 0)

    reply = await multiplexed.evalsha(script, ["key"], ["first", 2, b"\x00"])

    assert reply == [b"key", b"first", 3]
    assert await multiplexed.execute("SCRIPT", "EXISTS", script.sha) == [1]


async def test_a_cancelled_call_keeps_the_replies_in_step(multiplexed: MultiplexedRedis) -> None:
    await multiplexed.execute_many([("SET", "a", "A"), ("SET", "b", "B")])
    blocking = asyncio.create_task(multiplexed.execute("BLPOP", "nothing", "0.3"))
    cancelled = asyncio.create_task(multiplexed.execute("GET", "a"))
    await asyncio.sleep(0.05)  # both written; the GET waits behind the BLPOP
    cancelled.cancel()

    assert await multiplexed.execute("GET", "b") == b"B"
    assert await blocking is None
    assert cancelled.cancelled()


async def test_a_timeout_fails_the_calls_on_that_connection_and_the_next_call_reconnects(
    redis_port: int,
) -> None:
    client = MultiplexedRedis(f"127.0.0.1:{redis_port}", timeout_s=0.2)
    try:
        await client.execute("SET", "after-timeout", "ok")
        slow = asyncio.create_task(client.execute("BLPOP", "nothing", "2"))
        await asyncio.sleep(0.1)  # its own timer would fire 0.1 s after the BLPOP's
        queued = asyncio.create_task(client.execute("GET", "after-timeout"))

        with pytest.raises(TimeoutError, match=r"no reply from Redis in 0\.2 s"):
            await slow
        with pytest.raises(ConnectionError):
            await queued
        assert await client.execute("GET", "after-timeout") == b"ok"
    finally:
        await client.aclose()


async def test_no_redis_is_a_connection_error_naming_the_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        client = MultiplexedRedis(f"127.0.0.1:{port}")
        with pytest.raises(ConnectionError, match=f"cannot connect to Redis at 127.0.0.1:{port}"):
            await client.execute("PING")


async def test_a_closed_client_refuses_calls(redis_port: int) -> None:
    client = MultiplexedRedis(f"127.0.0.1:{redis_port}")
    assert await client.execute("PING") == b"PONG"
    await client.aclose()

    with pytest.raises(ConnectionError, match="closed"):
        await client.execute("PING")


# --- a Redis of the test's own, killed and started again on the same port -------------------


class _OwnRedis:
    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[_OwnRedis]:
    server = _OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


async def test_calls_in_flight_when_redis_dies_fail_and_a_new_redis_is_used_after(
    own_redis: _OwnRedis,
) -> None:
    client = MultiplexedRedis(f"127.0.0.1:{own_redis.port}")
    try:
        script = Script("return ARGV[1]")
        assert await client.evalsha(script, [], ["before"]) == b"before"
        waiting = asyncio.create_task(client.execute("BLPOP", "nothing", "5"))
        await asyncio.sleep(0.05)

        own_redis.kill()
        with pytest.raises(ConnectionError, match="lost"):
            await waiting
        with pytest.raises(ConnectionError, match="cannot connect"):
            await client.execute("PING")

        own_redis.start()  # empty: no data, no scripts
        assert await client.evalsha(script, [], ["after"]) == b"after"
        assert await client.execute("GET", "anything") is None
    finally:
        await client.aclose()
