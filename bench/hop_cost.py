"""The gateway's own CPU per command, alone: no cluster, a stand-in daprd, the bare forwarder.

    python -m bench.hop_cost [--rounds 6] [--seconds 4] [--workers 32] [--against DIR]
    python -m bench.hop_cost --gaps-ms 0,5,20,50 [--rounds 3] [--seconds 4]
    python -m bench.hop_cost --command order [--against DIR] ...   # POST /orders instead

`make bench` and `python -m bench.gateway_floor` measure the gateway inside the whole
cluster, where every process shares the two cores and the figures move ±20 % from run to
run. This one measures the hop itself. A stand-in for the gateway's daprd (a child
process answering every request with a canned `WalletActor.Deposit` answer) serves:

    gateway         this checkout's gateway, started as the launcher starts it (uvicorn,
                    the apps' --http protocol, tracing off as in `make bench`)
    baseline        with `--against DIR`: the gateway of another checkout (a `git worktree`
                    of an earlier commit), the same way
    bare forwarder  `bench.hopfloor`: the floor of a Python hop

Each gets a Dapr API token and an app token, as the launcher gives every app of a local
cluster, so the hop sends the `dapr-api-token` header to the stand-in as it does to daprd
(the stand-in checks nothing; a baseline from before the tokens sends none). The gateway
gets a clients file (ORDERFLOW_GATEWAY_CLIENTS, written into the logs' temp dir: one
operator, no rate limit) and every request to it carries that client's key, so its
figures include the auth check (apps/gateway/auth.py) as production pays it. A baseline
checkout without apps/gateway/auth.py runs open and gets no key (it says so); the bare
forwarder stays bare.

Each takes `POST /wallets/{id}/deposit` from `--workers` closed-loop workers (over the
toolkit's `Http1Pool`, cheap next to the servers) for `--seconds`, interleaved round by
round (the order reversed every other round). With `--command order` they send `POST
/orders` (a two-line order, an Idempotency-Key per worker) and the stand-in answers
`OrderActor.Place` with a canned order; the bare forwarder knows only the deposit, so it
is left out. Only the server's own CPU is counted
(utime + stime from /proc); the stand-in's and the load's are not. Prints every round,
then each server's median µs per request and its ratio to the gateway's. Asserts nothing.

With `--gaps-ms`, one worker sends the requests one at a time and waits each gap after
each answer: every server's median µs per request at each gap, and its ratio to its own
at the first gap. That is the price of a wake-up on this machine: a Python process woken
after some milliseconds asleep spends several times the CPU on the same request (session
18: the gateway 249 µs back to back, 935 with 20 ms between requests; the bare forwarder
and a ten-line echo server rose too). It is why CPU per order falls as the saga's rate
rises (README, "Performance", item 3).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import uvloop

from actors.toolkit import codec
from actors.toolkit.clientkeys import OPERATOR, ClientsFile, ClientSpec, key_digest
from actors.toolkit.http1 import Http1Pool
from apps.gateway.auth import CLIENTS_ENV
from bench import procfs
from cluster.config import HTTP_PROTOCOL, ROOT
from cluster.ports import any_free_port, can_bind
from cluster.processes import wait_until
from cluster.tokens import ApiTokens

ANSWER = codec.dumps(
    {
        "ok": True,
        "result": {"customer_id": "c", "balance": 10, "held": 0, "available": 10},
        "aggregate_version": 3,
        "events": [{"type": "wallet.deposited", "data": {"amount": 1}}],
        "duplicate": False,
    }
)
ORDER = {
    "customer_id": "hop",
    "lines": [
        {"sku": "tea-green", "quantity": 2, "unit_price": 450},
        {"sku": "mug-white", "quantity": 1, "unit_price": 1200},
    ],
}
ORDER_ANSWER = codec.dumps(
    {
        "ok": True,
        "result": {
            **ORDER,
            "order_id": "ord-0123456789abcdef01234567",
            "status": "reserving",
            "total": 2100,
            "reserved_skus": [],
            "cancel_reason": None,
        },
        "aggregate_version": 1,
        "events": [{"type": "order.placed", "data": {}}],
        "duplicate": False,
    }
)
# what each --command sends: worker n's (path, body, headers)
COMMANDS: dict[str, Callable[[int], tuple[str, bytes, dict[str, str]]]] = {
    "deposit": lambda n: (f"/wallets/hop-{n}/deposit", b'{"amount": 1}', {}),
    "order": lambda n: ("/orders", codec.dumps(ORDER), {"idempotency-key": f"hop-{n}"}),
}
REQUESTS_PER_GAP = 300
# the servers' tokens: as long as a cluster's (cluster/tokens.py), checked by nobody here
TOKENS = ApiTokens(dapr=secrets.token_hex(32), app=secrets.token_hex(32))
_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
AUTH_MODULE = Path("apps") / "gateway" / "auth.py"  # a checkout's gateway checks keys


@dataclass(frozen=True)
class Server:
    """One server under measure: its process, its port, what every request to it carries
    (the gateway's client key; nothing for a server that checks none)."""

    process: subprocess.Popen[bytes]
    port: int
    headers: dict[str, str] = field(default_factory=dict)


class _StandIn(asyncio.Protocol):
    """daprd's actor API as the hop sees it: an order's Place answered with ORDER_ANSWER,
    every other request with ANSWER."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._parser = httptools.HttpRequestParser(self)
        self._answer = ANSWER

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self._answer = ORDER_ANSWER if b"/OrderActor/" in url else ANSWER

    def on_message_complete(self) -> None:
        self._transport.write(_HEAD % len(self._answer) + self._answer)


async def _stand_in(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_StandIn, "127.0.0.1", port, reuse_address=True)
    async with server:
        await server.serve_forever()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hop_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of every server (6)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per server and round (4)")
    parser.add_argument("--workers", type=int, default=32, help="closed-loop workers (32)")
    parser.add_argument(
        "--against", type=Path, help="another checkout whose gateway runs beside (a baseline)"
    )
    parser.add_argument(
        "--gaps-ms",
        type=_gaps,
        help="one worker, waiting each of these gaps (ms, comma-separated) after every answer",
    )
    parser.add_argument(
        "--command",
        choices=sorted(COMMANDS),
        default="deposit",
        help="what the workers send: POST /wallets/{id}/deposit (deposit) or POST /orders",
    )
    parser.add_argument("--stand-in", type=int, help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args(argv)
    if args.against is not None and not (args.against / "apps" / "gateway").is_dir():
        parser.error(f"--against {args.against}: no apps/gateway there (a checkout's root?)")
    return args


def _gaps(text: str) -> tuple[float, ...]:
    try:
        gaps = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: milliseconds, comma-separated") from None
    if not gaps or any(gap < 0 for gap in gaps):
        raise argparse.ArgumentTypeError(f"{text!r}: one gap or more, none negative")
    return gaps


def write_clients(folder: Path, key: str) -> Path:
    """A clients file in `folder` with one client, "ops": the operator (every route, no
    rate limit), as the tools call a local cluster's gateway; its path."""
    spec = ClientSpec(id="ops", scopes=[OPERATOR], key_sha256=key_digest(key), rate=None)
    path = folder / "gateway-clients.json"
    path.write_text(ClientsFile(clients=[spec]).model_dump_json(indent=2) + "\n")
    return path


def _gateway(
    root: Path, *, port: int, dapr_port: int, log: Path, clients: Path | None
) -> subprocess.Popen[bytes]:
    """The gateway of the checkout at `root`, checking keys against the clients file
    `clients` (None: open), its log (stderr, at the cluster's level: an order's "order
    accepted" line is part of its cost) written to `log`."""
    env = {
        **os.environ,
        "DAPR_HTTP_PORT": str(dapr_port),
        "ORDERFLOW_TRACE_SAMPLING": "0",  # as make bench runs it
        "ORDERFLOW_REDIS_HOST": "127.0.0.1:1",  # the read models: not queried here
        "PYTHONPATH": str(root),
        **TOKENS.env,  # as the launcher starts it: its calls to daprd carry the token
    }
    env.pop(CLIENTS_ENV, None)  # never the shell's: this run's file, or none
    if clients is not None:
        env[CLIENTS_ENV] = str(clients)
    argv = [sys.executable, "-m", "uvicorn", "apps.gateway.main:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    argv += ["--log-level", "warning", "--http", HTTP_PROTOCOL]
    with log.open("wb") as stderr:
        return subprocess.Popen(argv, env=env, cwd=root, stderr=stderr)


async def _drive(
    server: Server, seconds: float, workers: int, gap_s: float = 0.0, command: str = "deposit"
) -> tuple[int, int]:
    """(answered 2xx, other answers) from `workers` closed-loop workers sending `command`
    (with the server's headers), each waiting `gap_s` after every answer."""
    pool = Http1Pool("127.0.0.1", server.port, max_connections=workers)
    counts = [0, 0]
    stop = time.monotonic() + seconds

    async def worker(n: int) -> None:
        path, body, headers = COMMANDS[command](n)
        headers = {**headers, **server.headers, "content-type": "application/json"}
        while time.monotonic() < stop:
            status, _ = await pool.request("POST", path, content=body, headers=headers)
            counts[not 200 <= status < 300] += 1
            if gap_s:
                await asyncio.sleep(gap_s)

    try:
        await asyncio.gather(*(worker(n) for n in range(workers)))
    finally:
        await pool.close()
    return counts[0], counts[1]


def _cpu_us(
    server: Server,
    seconds: float,
    workers: int,
    gap_s: float = 0.0,
    command: str = "deposit",
) -> tuple[float, int, int]:
    """The server's own CPU µs per request over one drive; (µs, ok, other)."""
    pid = {"server": server.process.pid}
    before = procfs.cpu_ticks(pid)["server"]
    ok, other = uvloop.run(_drive(server, seconds, workers, gap_s, command))
    used = (procfs.cpu_ticks(pid)["server"] - before) / procfs.CLK_TCK
    return used * 1e6 / max(1, ok + other), ok, other


def measure(servers: dict[str, Server], args: argparse.Namespace) -> None:
    names = list(servers)
    for name in names:  # warm each (imports done, connections open, caches filled)
        uvloop.run(_drive(servers[name], 1.5, args.workers, command=args.command))
    per_request: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            us, ok, other = _cpu_us(servers[name], args.seconds, args.workers, 0.0, args.command)
            per_request[name].append(us)
            print(
                f"round {round_ + 1}  {name:15} {ok / args.seconds:7.0f} req/s  "
                f"{us:6.1f} µs CPU/request  ({other} not 2xx)",
                flush=True,
            )
    base = statistics.median(per_request["gateway"])
    print(f"\n{'':15} {'median µs CPU/request':>22} {'x gateway':>10}")
    for name in names:
        median = statistics.median(per_request[name])
        print(f"{name:15} {median:22.1f} {median / base:10.2f}")


def measure_gaps(servers: dict[str, Server], args: argparse.Namespace) -> None:
    """One worker; every gap in turn, each round (the order reversed every other round)."""
    names, gaps = list(servers), list(args.gaps_ms)
    for name in names:
        uvloop.run(_drive(servers[name], 1.5, 1, command=args.command))
    per_request: dict[tuple[str, float], list[float]] = {(n, g): [] for n in names for g in gaps}
    for round_ in range(args.rounds):
        for gap in gaps if round_ % 2 == 0 else gaps[::-1]:
            for name in names:
                # at least ~300 requests, so the 10 ms /proc tick stays small against them
                seconds = max(args.seconds, REQUESTS_PER_GAP * gap / 1000)
                us, ok, other = _cpu_us(servers[name], seconds, 1, gap / 1000, args.command)
                per_request[name, gap].append(us)
                print(
                    f"round {round_ + 1}  gap {gap:5g} ms  {name:15} {ok:6d} requests  "
                    f"{us:7.1f} µs CPU/request  ({other} not 2xx)",
                    flush=True,
                )
    print(f"\n{'':15} " + " ".join(f"{f'gap {gap:g} ms':>16}" for gap in gaps))
    for name in names:
        medians = [statistics.median(per_request[name, gap]) for gap in gaps]
        cells = [f"{m:7.0f} µs {m / medians[0]:4.1f}x" for m in medians]
        print(f"{name:15} " + " ".join(f"{cell:>16}" for cell in cells))


def _listening(process: subprocess.Popen[bytes], port: int) -> Callable[[], bool]:
    """Listening, or exited (then the caller says so)."""
    return lambda: process.poll() is not None or not can_bind(port)


def _gateways(
    args: argparse.Namespace, *, ports: dict[str, int], dapr_port: int, folder: Path
) -> dict[str, Server]:
    """This checkout's gateway and, with --against, the baseline's: each checking the
    operator's key (a clients file in `folder`) and sent it, or open where the checkout
    has no apps/gateway/auth.py."""
    key = secrets.token_urlsafe(32)
    clients, auth = write_clients(folder, key), {"authorization": f"Bearer {key}"}
    wanted = {"gateway": ROOT}
    if args.against is not None:
        wanted["baseline"] = args.against.resolve()
    servers = {}
    for name, root in wanted.items():
        checks = (root / AUTH_MODULE).is_file()
        if not checks:
            print(f"{name} ({root}): no {AUTH_MODULE}, runs open: no clients file, no key")
        log = folder / f"{name}.log"
        port = ports[name]
        process = _gateway(
            root, port=port, dapr_port=dapr_port, log=log, clients=clients if checks else None
        )
        servers[name] = Server(process, port, auth if checks else {})
    return servers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stand_in is not None:
        uvloop.run(_stand_in(args.stand_in))
        return 0
    dapr_port = any_free_port()
    stand_in = subprocess.Popen(
        [sys.executable, "-m", "bench.hop_cost", "--stand-in", str(dapr_port)], cwd=ROOT
    )
    processes = [stand_in]
    try:
        ports = {name: any_free_port() for name in ("gateway", "baseline", "bare forwarder")}
        logs = Path(tempfile.mkdtemp(prefix="hop_cost-"))
        print(f"the gateways' logs: {logs}", flush=True)
        servers = _gateways(args, ports=ports, dapr_port=dapr_port, folder=logs)
        if args.command == "deposit":  # the forwarder serves only the deposit
            port = ports["bare forwarder"]
            forward = [sys.executable, "-m", "bench.hopfloor", "--port", str(port)]
            forwarder = subprocess.Popen(
                [*forward, "--dapr-port", str(dapr_port)],
                env={**os.environ, **TOKENS.env},  # the gateway's token header: the same cost
                cwd=ROOT,
            )
            servers["bare forwarder"] = Server(forwarder, port)
        processes += [server.process for server in servers.values()]
        for name, server in servers.items():
            process, port = server.process, server.port
            wait_until(_listening(process, port), timeout=30, what=f"{name} on port {port}")
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode} before it listened")
        (measure if args.gaps_ms is None else measure_gaps)(servers, args)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
