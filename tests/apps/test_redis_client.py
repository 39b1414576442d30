"""The apps' Redis client (actors.toolkit.redis_connection) against a real redis-server."""

from __future__ import annotations

import pytest

from actors.toolkit.redis_connection import CPackedConnection, redis_client

ECHO = "return {ARGV[1], ARGV[#ARGV], #ARGV}"


@pytest.mark.parametrize("decode_responses", [True, False])
async def test_commands_and_pipelines_round_trip_through_c_packing(
    redis_port: int, decode_responses: bool
) -> None:
    client = redis_client(f"127.0.0.1:{redis_port}", decode_responses=decode_responses)
    try:
        assert client.connection_pool.connection_class is CPackedConnection
        await client.execute_command("CLIENT SETNAME", "packed")  # type: ignore[no-untyped-call]
        await client.set("k:é", "café ☕")
        await client.hset("h", mapping={"n": 7, "f": 1.5, "b": "\x00é".encode(), "e": ""})
        sha = await client.script_load(ECHO)
        async with client.pipeline(transaction=False) as pipe:
            pipe.get("k:é")
            pipe.hgetall("h")
            pipe.evalsha(sha, 0, "first", *range(100), "x" * 10_000)
            pipe.client_getname()
            found = await pipe.execute()
    finally:
        await client.aclose()

    def text(value: str) -> str | bytes:
        return value if decode_responses else value.encode()

    assert found[0] == text("café ☕")
    assert found[1] == {
        text(k): text(v) for k, v in {"n": "7", "f": "1.5", "b": "\x00é", "e": ""}.items()
    }
    assert found[2] == [text("first"), text("x" * 10_000), 102]
    assert found[3] == "packed"  # redis-py decodes CLIENT GETNAME's answer itself
