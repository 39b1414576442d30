"""CPackedConnection sends exactly the bytes redis-py's own packer writes, and raises its
errors: hiredis packs what it packs identically, redis-py's packer does the rest."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from actors.toolkit.redis_connection import CPackedConnection

names = st.sampled_from(
    ["SET", "EVALSHA", "CLIENT SETNAME", "CONFIG  GET", b"XADD", b"SCRIPT LOAD", b"a\tb", ""]
) | st.text(max_size=12)
arguments: st.SearchStrategy[Any] = (
    st.text()  # non-ASCII too
    | st.binary()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # nan, inf, -0.0, 1e-05 ...
    | st.binary().map(lambda raw: memoryview(raw))
    | st.just("")
    | st.text(min_size=7000, max_size=7000)  # over the buffer cutoff
)


class Level(enum.IntEnum):
    HIGH = 3


class Shouting(str):
    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return super().upper().encode(encoding, errors)


def sent(connection: Connection, *args: Any) -> bytes | tuple[type[BaseException], str]:
    """What `connection` would write for the command, or the error it raises."""
    try:
        return b"".join(connection.pack_command(*args))
    except Exception as exc:
        return type(exc), str(exc)


def ours() -> CPackedConnection:
    return CPackedConnection(host="127.0.0.1", port=6379)


def theirs() -> Connection:
    return Connection(host="127.0.0.1", port=6379)


@given(names, st.lists(arguments, max_size=8))
def test_a_command_is_sent_as_redis_py_packs_it(name: str | bytes, args: list[Any]) -> None:
    assert sent(ours(), name, *args) == sent(theirs(), name, *args)


@given(st.lists(st.tuples(names, st.lists(arguments, max_size=5)), max_size=6))
def test_a_pipeline_is_sent_as_redis_py_packs_it(commands: list[tuple[Any, list[Any]]]) -> None:
    flat = [(name, *args) for name, args in commands]
    assert b"".join(ours().pack_commands(flat)) == b"".join(theirs().pack_commands(flat))


@pytest.mark.parametrize(
    "args",
    [
        ("SET", None),
        ("SET", True),
        ("SET", "k", False),
        ("SET", object()),
        ("SET", "\ud800"),
        ("SET", "é", bytearray(b"x")),
        ("SET", Level.HIGH),
        ("SET", Shouting("quiet")),
        ("SET", memoryview(b"\x00\x01\x02\x03").cast("I")),
        (1.5, "x"),
        (7, "x"),
        ("",),
        (),
    ],
)
def test_what_hiredis_would_pack_otherwise_goes_to_redis_py(args: tuple[Any, ...]) -> None:
    assert sent(ours(), *args) == sent(theirs(), *args)


def test_invalid_arguments_raise_redis_pys_own_errors() -> None:
    with pytest.raises(DataError, match="NoneType"):
        ours().pack_command("SET", "k", None)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="bool"):
        ours().pack_command("SET", "k", True)


def test_another_encoding_is_packed_by_redis_py() -> None:
    latin = CPackedConnection(encoding="latin-1")
    assert not latin._c_packing
    assert sent(latin, "SET", "café") == sent(Connection(encoding="latin-1"), "SET", "café")
    assert ours()._c_packing


def test_hiredis_packs_what_it_can_in_one_piece() -> None:
    command = ("SET", "k", "v" * 7000)  # redis-py sends a value this long as its own chunk
    assert len(ours().pack_command(*command)) == 1
    assert len(theirs().pack_command(*command)) == 3
