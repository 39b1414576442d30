"""The floor of a Python HTTP hop on this machine: a forwarder that does nothing else.

    python -m bench.hopfloor --port P --dapr-port D

Serves `POST /wallets/{id}/deposit` as the gateway does, minus everything that makes the
gateway a product: no ASGI, no FastAPI, no validation beyond finding the amount, no
metrics, no trace context, no logs, no idempotency key. httptools parses the request (an
asyncio.Protocol on uvloop, one per connection, no task per request), the body is turned
into `WalletActor.Deposit` and sent to daprd over `Http1Pool` (the gateway's own sidecar
client, with the `dapr-api-token` header when DAPR_API_TOKEN is set, as the gateway
sends it), and daprd's status and body go back as they came. `python -m bench.gateway_floor`
drives it beside the gateway and raw daprd: what this forwarder costs, no Python gateway
in front of daprd can undercut by much.

Not a product: it answers only that route, and only for a well-formed body.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
from collections.abc import Sequence
from typing import cast

import httptools
import uvloop

from actors.toolkit import codec
from actors.toolkit.apitoken import dapr_api_token_from_env, sidecar_headers
from actors.toolkit.http1 import Http1Pool

_PREFIX = b"/wallets/"
_SUFFIX = b"/deposit"
_HEADERS = {"content-type": "application/json"}


class _Forward(asyncio.Protocol):
    def __init__(self, sidecar: Http1Pool, ids: itertools.count[int], tag: str) -> None:
        self._sidecar = sidecar
        self._ids = ids
        self._tag = tag
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._answer(400, b'{"error": "malformed request"}', close=True)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url, body = self._url, b"".join(self._body)
        self._url, self._body = b"", []
        if not (url.startswith(_PREFIX) and url.endswith(_SUFFIX)):
            self._answer(404, b'{"error": "not found"}')
            return
        wallet = url[len(_PREFIX) : -len(_SUFFIX)].decode()
        task = asyncio.ensure_future(self._deposit(wallet, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deposit(self, wallet: str, body: bytes) -> None:
        amount = codec.loads(body)["amount"]
        command = {"amount": amount, "message_id": f"{self._tag}-{next(self._ids)}"}
        path = f"/v1.0/actors/WalletActor/{wallet}/method/Deposit"
        status, answer = await self._sidecar.request(
            "POST", path, content=codec.dumps(command), headers=_HEADERS
        )
        self._answer(status, answer)

    def _answer(self, status: int, body: bytes, *, close: bool = False) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        head = (
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        self._transport.write(head.encode() + body)
        if close:
            self._transport.close()


async def serve(port: int, dapr_port: int) -> None:
    token = sidecar_headers(dapr_api_token_from_env())
    sidecar = Http1Pool("127.0.0.1", dapr_port, fixed_headers=token)
    ids, tag = itertools.count(), os.urandom(6).hex()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Forward(sidecar, ids, tag), "127.0.0.1", port, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hopfloor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dapr-port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port, args.dapr_port))


if __name__ == "__main__":
    main()
