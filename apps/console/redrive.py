"""Redrive dead letters from a shell, through a running console's API (the same redrive
as its Dead letters page):

    python -m apps.console.redrive --list [--code C] [--topic T]
    python -m apps.console.redrive --code inventory.reservation_not_found [--topic orders]
    python -m apps.console.redrive --id <letter id>
    python -m apps.console.redrive --all            every open letter

The console's address: --console, else http://127.0.0.1:<8410 + ORDERFLOW_PORT_OFFSET>.
An operator's key from ORDERFLOW_CONSOLE_KEY (`eval "$(make -s tokens)"` exports the local
cluster's), sent as `Authorization: Bearer <key>`; a console without a clients file takes
none.
Exit status 0 when every redrive was published, 1 when one failed, 2 on bad usage or an
unreachable console.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

CONSOLE_PORT = 8410
KEY_ENV = "ORDERFLOW_CONSOLE_KEY"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m apps.console.redrive", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--console", help="the console's base URL")
    parser.add_argument("--code", help="only letters with this code")
    parser.add_argument("--topic", help="only letters from this topic")
    parser.add_argument("--id", dest="letter_id", help="one letter, by id")
    parser.add_argument("--all", action="store_true", help="every open letter")
    parser.add_argument("--list", action="store_true", help="list open letters, redrive none")
    return parser


def _filters(args: argparse.Namespace) -> dict[str, str]:
    return {k: v for k, v in (("code", args.code), ("topic", args.topic)) if v}


def run(argv: Sequence[str], *, http: httpx.Client | None = None) -> int:
    args = _parser().parse_args(argv)
    offset = int(os.environ.get("ORDERFLOW_PORT_OFFSET", "0"))
    base = (args.console or f"http://127.0.0.1:{CONSOLE_PORT + offset}").rstrip("/")
    if not (args.list or args.letter_id or args.all or _filters(args)):
        print("name --code and/or --topic, --id, --all or --list", file=sys.stderr)
        return 2
    key = os.environ.get(KEY_ENV)
    client = http or httpx.Client(timeout=60)
    if key:
        client.headers["authorization"] = f"Bearer {key}"
    try:
        return _run(client, base, args)
    except httpx.HTTPError as exc:
        print(f"the console at {base} did not answer: {exc}", file=sys.stderr)
        return 2
    finally:
        if http is None:
            client.close()


def _run(client: httpx.Client, base: str, args: argparse.Namespace) -> int:
    if args.list:
        resp = client.get(f"{base}/api/deadletters", params=_filters(args))
        if resp.status_code != 200:
            return _refused(resp)
        for letter in resp.json()["letters"]:
            print(f"{letter['id']}  {letter['code']}  {letter['topic']}  {letter['reason']}")
        return 0
    if args.letter_id:
        resp = client.post(f"{base}/api/deadletters/{quote(args.letter_id, safe='')}/redrive")
        if resp.status_code != 200:
            return _refused(resp)
        results: list[dict[str, Any]] = [resp.json()]
    else:
        params = _filters(args) | ({"all": "true"} if args.all else {})
        resp = client.post(f"{base}/api/deadletters/redrive", params=params)
        if resp.status_code != 200:
            return _refused(resp)
        results = resp.json()["results"]
    for result in results:
        print(f"{'ok    ' if result['ok'] else 'FAILED'} {result['letter_id']}: {result['detail']}")
    print(f"{sum(r['ok'] for r in results)} of {len(results)} redriven")
    return 0 if all(r["ok"] for r in results) else 1


def _refused(resp: httpx.Response) -> int:
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    print(f"refused (HTTP {resp.status_code}): {detail}", file=sys.stderr)
    if resp.status_code == 401:
        print(f'set {KEY_ENV} to an operator\'s key (`eval "$(make -s tokens)"`)', file=sys.stderr)
    return 1 if resp.status_code in (404, 409) else 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
