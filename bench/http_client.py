"""What one call to the sidecar costs the calling process: aiohttp against Http1Pool.

    python -m bench.http_client [--requests N] [--rounds R] [--loop uvloop|asyncio]

Starts a raw ASGI app (no framework: it reads the body and answers 11 bytes of JSON) under
uvicorn in a child process on a free loopback port, then sends the same POST, as an actor
invocation looks (a JSON body, content-type, the `dapr-api-token` header every call to a
cluster's daprd carries), from this process: through an aiohttp ClientSession as
SidecarHTTP used it, and through actors.toolkit.http1.Http1Pool (the token among its
fixed headers, as SidecarHTTP sends it), at
concurrency 1 and 16, alternating rounds. Prints the best CPU time of this process
(user + system, getrusage) per request of each, and the ratios. The server's CPU is not
counted; the figures are the client's only.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import uvicorn
import uvloop

from actors.toolkit.apitoken import sidecar_headers
from actors.toolkit.http1 import Http1Pool

PATH = "/v1.0/actors/InventoryActor/tea-green-100g/method/Restock"
BODY = b'{"quantity":1,"message_id":"0f8fad5b-d9cb-469f-a165-70867728950e"}'
HEADERS = {"content-type": "application/json"}
TOKEN = sidecar_headers(secrets.token_hex(32))  # as long as a cluster's DAPR_API_TOKEN
AIOHTTP_HEADERS = {**HEADERS, **TOKEN}
CLIENTS = ("aiohttp", "http1")
Call = Callable[[], Awaitable[tuple[int, bytes]]]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The server: read the request body, answer 200 with a small JSON document."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


@contextmanager
def _server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    serve = ("-m", "bench.http_client", "--serve-fd", str(sock.fileno()))
    child = subprocess.Popen([sys.executable, *serve], pass_fds=[sock.fileno()])
    try:
        yield sock.getsockname()[1]
    finally:
        child.terminate()
        child.wait(timeout=10)
        sock.close()


def _serve(fd: int) -> None:
    """The child: uvicorn on the inherited listener (a TCP socket: uvicorn's --fd would
    take it for a Unix socket and leave Nagle on, 40 ms per answer)."""
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(call: Call, *, requests: int, concurrency: int) -> float:
    """CPU seconds of this process per request, after a warm-up."""
    await asyncio.gather(*(call() for _ in range(concurrency)))
    for _ in range(100):
        await call()

    async def worker(count: int) -> None:
        for _ in range(count):
            status, _ = await call()
            assert status == 200

    started = _cpu()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (_cpu() - started) / requests


async def _with_aiohttp(port: int, *, requests: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=30.0, connect=5.0)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(
        base, connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def call() -> tuple[int, bytes]:
            async with session.request("POST", PATH, data=BODY, headers=AIOHTTP_HEADERS) as resp:
                return resp.status, await resp.read()

        return await _measure(call, requests=requests, concurrency=concurrency)


async def _with_http1(port: int, *, requests: int, concurrency: int) -> float:
    pool = Http1Pool("127.0.0.1", port, fixed_headers=TOKEN)
    try:

        async def call() -> tuple[int, bytes]:
            return await pool.request("POST", PATH, content=BODY, headers=HEADERS)

        return await _measure(call, requests=requests, concurrency=concurrency)
    finally:
        await pool.close()


async def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fd is not None:
        _serve(args.serve_fd)
        return
    run = uvloop.run if args.loop == "uvloop" else asyncio.run
    runs = {"aiohttp": _with_aiohttp, "http1": _with_http1}
    with _server() as port:
        run(_wait_listening(port))
        for concurrency in (1, 16):
            best = dict.fromkeys(CLIENTS, float("inf"))
            for _ in range(args.rounds):
                for name in CLIENTS:
                    cpu = run(runs[name](port, requests=args.requests, concurrency=concurrency))
                    best[name] = min(best[name], cpu)
            for name in CLIENTS:
                print(f"c={concurrency:<2} {name:<8} client CPU {best[name] * 1e6:5.0f} us/request")
            print(f"c={concurrency:<2} aiohttp / http1  {best['aiohttp'] / best['http1']:.2f}")
    print(f"({args.requests} POSTs per run, best of {args.rounds}, {args.loop} loop)")


if __name__ == "__main__":
    main()
