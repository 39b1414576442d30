"""What one actor turn costs the actor host's Python process, measured in process.

    python -m bench.turn [--commands N] [--rounds R] [--concurrency C] [--ids I]

Builds the actor host exactly as production does (apps.actor_host.main.create_app, its
lifespan included, with both API tokens as a local cluster runs it) and calls its ASGI app
directly, as uvicorn would for daprd's `PUT /actors/<type>/<id>/method/<m>` (the app
token in its `dapr-api-token` header): no HTTP server, no daprd. Two kinds of turns,
interleaved round by round:

    Deposit  WalletActor.Deposit {"amount": 1, "message_id": <fresh>}: the inbox check and
             the fenced append (snapshot, event key, inbox entry, the CloudEvent XADDed to
             the topic's stream) in one EVALSHA against a real redis-server this script
             starts on 127.0.0.1:12270 (and stops at exit)
    Touch    BeaconActor.Touch {}: the bare SDK actor (the bench's baseline), whose state
             write goes through the SDK's state manager and the app's SidecarHTTP to a
             stand-in for daprd: a child process on a loopback port the OS picks that
             answers the actor state API (and the deadline sweepers' Start) the way daprd
             does, keeping the state in memory

Each round runs one unmeasured turn per id of each kind first (activations, caches),
then the measured ones; a beacon's state grows with every Touch (its recent visits), so
each round touches fresh beacon ids (a few visits each, as in `make bench`'s runs).

Only this process's CPU is counted (time.process_time: user + system), so neither Redis
nor the stand-in sidecar is in the figures: the same split as the "actor-host" row of
`make bench`. Prints the median µs of CPU per command of each kind over the rounds, and
the ratio Deposit / Touch. The machine is shared and noisy: compare ratios and
interleaved medians, never one round. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

REDIS_PORT = 12270
LOOPBACK = "127.0.0.1"
# as the launcher gives the actor host (cluster/tokens.py): its guard checks the app token
# on every turn, its SidecarHTTP sends the Dapr one (the stand-in sidecar checks nothing)
DAPR_TOKEN, APP_TOKEN = secrets.token_hex(32), secrets.token_hex(32)
_TOKEN_HEADER = (b"dapr-api-token", APP_TOKEN.encode())
ASGIApp = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=2000, help="per kind per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=8, help="turns in flight")
    parser.add_argument("--ids", type=int, default=256, help="actor ids per kind")
    parser.add_argument("--only", choices=("deposit", "touch"), help="one kind (profiling)")
    parser.add_argument("--sidecar", type=int, help=argparse.SUPPRESS)  # the child's mode
    return parser.parse_args()


# --- the stand-in sidecar (the child process) -----------------------------------------------


class _SidecarProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length bodies, as actors.toolkit.http1 sends."""

    state: dict[str, bytes] = {}  # noqa: RUF012 (one process, one store)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head[0].split(" ", 2)
            self._answer(*self._route(method, path, body))

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        parts = path.split("?", 1)[0].strip("/").split("/")  # v1.0 actors T I state [key]
        if len(parts) >= 5 and parts[1] == "actors" and parts[4] == "state":
            actor = "/".join(parts[2:4])
            if method == "GET":
                found = self.state.get(f"{actor}/{parts[5]}")
                return (200, found) if found is not None else (204, b"")
            for op in json.loads(body):  # PUT: the transaction (upserts and deletes)
                key = f"{actor}/{op['request']['key']}"
                if op["operation"] == "upsert":
                    self.state[key] = json.dumps(op["request"]["value"]).encode()
                else:
                    self.state.pop(key, None)
            return 204, b""
        if len(parts) >= 6 and parts[4] == "method":  # the deadline sweepers' Start
            return 200, b'{"ok":true,"result":{}}'
        return 404, b'{"errorCode":"ERR_NOT_FOUND"}'

    def _answer(self, status: int, body: bytes) -> None:
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\n\r\n"
        self.transport.write(head.encode() + body)


async def _serve_sidecar(port_out: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_SidecarProtocol, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    os.write(port_out, f"{port}\n".encode())
    os.close(port_out)
    await server.serve_forever()


# --- the processes this script starts ---------------------------------------------------------


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[None]:
    """A throwaway redis-server on 127.0.0.1:`port` (no persistence) for the block; the
    in-process benches' Redis (bench.turn, bench.project)."""
    command = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port)):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def _sidecar() -> Iterator[int]:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.turn", "--sidecar", str(write_end)], pass_fds=(write_end,)
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as ports:
            yield int(ports.readline())
    finally:
        proc.terminate()
        proc.wait(10)


# --- driving the ASGI app ------------------------------------------------------------------


class _Lifespan:
    """Runs the app's lifespan (startup in `start`, shutdown in `stop`) as a server would."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self._app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {answer}")

    async def stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        if self._task is not None:
            await self._task


async def call(app: ASGIApp, path: str, body: bytes) -> tuple[int, bytes]:
    """One `PUT path` with `body`, as uvicorn hands daprd's request to the app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:3000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            _TOKEN_HEADER,
        ],
        "client": (LOOPBACK, 50000),
        "server": (LOOPBACK, 3000),
        "state": {},
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # never: a disconnect only after the answer
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


Turn = Callable[[int], tuple[str, bytes]]  # n -> (path, body)


def _deposit(tag: str, ids: int) -> Turn:
    def turn(n: int) -> tuple[str, bytes]:
        body = {"amount": 1, "message_id": uuid.uuid4().hex}
        path = f"/actors/WalletActor/turn-{tag}-w{n % ids}/method/Deposit"
        return path, json.dumps(body).encode()

    return turn


def _touch(tag: str, ids: int) -> Turn:
    def turn(n: int) -> tuple[str, bytes]:
        return f"/actors/BeaconActor/turn-{tag}-b{n % ids}/method/Touch", b"{}"

    return turn


async def _run(app: ASGIApp, turn: Turn, *, commands: int, concurrency: int) -> float:
    """µs of this process's CPU per command, `commands` turns `concurrency` at a time."""
    requests = [turn(n) for n in range(commands)]  # built before the clock starts
    failures: list[tuple[int, bytes]] = []

    async def worker(first: int) -> None:
        for path, body in requests[first::concurrency]:
            status, answer = await call(app, path, body)
            if status != 200 or b'"ok":true' not in answer.replace(b" ", b""):
                failures.append((status, answer))

    start = time.process_time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    spent = time.process_time() - start
    if failures:
        raise RuntimeError(f"{len(failures)} turns failed, e.g. {failures[0]!r}")
    return spent / commands * 1e6


async def _measure(args: argparse.Namespace, sidecar_port: int) -> None:
    from apps.actor_host.main import Settings, create_app

    settings = Settings(
        dapr_http_port=sidecar_port,
        redis_host=f"{LOOPBACK}:{REDIS_PORT}",
        replica="bench-turn",
        dapr_api_token=DAPR_TOKEN,
        app_api_token=APP_TOKEN,
    )
    app: ASGIApp = create_app(settings)
    lifespan = _Lifespan(app)
    await lifespan.start()
    try:
        tag = uuid.uuid4().hex[:8]
        kinds = {"Deposit": _deposit, "Touch": _touch}
        if args.only:
            kinds = {k: v for k, v in kinds.items() if k.lower() == args.only}
        figures: dict[str, list[float]] = {kind: [] for kind in kinds}
        for r in range(-1, args.rounds):  # round -1: the warm-up, not counted
            for kind in kinds if r % 2 == 0 else reversed(kinds):
                # a beacon's state grows with every Touch (its last visits): fresh ids each
                # round keep its cost flat; a wallet's does not, so they stay
                turn = kinds[kind](f"{tag}-{r}" if kind == "Touch" else tag, args.ids)
                await _run(app, turn, commands=args.ids, concurrency=args.concurrency)
                spent = await _run(app, turn, commands=args.commands, concurrency=args.concurrency)
                if r >= 0:
                    figures[kind].append(spent)
            if r < 0:
                continue
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} µs" for k, v in figures.items()),
                file=sys.stderr,
            )
    finally:
        await lifespan.stop()
    _report(args, figures)


def _report(args: argparse.Namespace, figures: dict[str, list[float]]) -> None:
    medians = {kind: statistics.median(values) for kind, values in figures.items()}
    print(
        f"actor host CPU per command, in process ({args.rounds} rounds x {args.commands}, "
        f"{args.concurrency} in flight, {args.ids} ids; median, min-max)"
    )
    for kind, values in figures.items():
        print(f"  {kind:8} {medians[kind]:7.0f} µs   ({min(values):.0f}-{max(values):.0f})")
    if len(medians) == 2:
        print(f"  ratio Deposit / Touch {medians['Deposit'] / medians['Touch']:.2f}")


def main() -> None:
    args = _args()
    import uvloop

    if args.sidecar is not None:
        uvloop.run(_serve_sidecar(args.sidecar))
        return
    # as the bench's cluster runs the actor host: no span is exported, logs at info
    os.environ["ORDERFLOW_TRACE_SAMPLING"] = "0"
    os.environ.setdefault("ORDERFLOW_ZIPKIN_URL", "")
    with redis_server(REDIS_PORT), _sidecar() as port:
        uvloop.run(_measure(args, port))


if __name__ == "__main__":
    main()
