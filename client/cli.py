"""`infoway-client stream`: print pushes as JSON lines or a table; lifecycle events go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from .client import InfowayClient
from .errors import AuthError, GaveUp
from .events import Depth, Kline, Lifecycle, Trade
from .record import Recorder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infoway-client", description="The reference Infoway client.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stream", help="subscribe and print pushes")
    s.add_argument("--url", required=True, help="ws(s)://host/ws?business=crypto[&apikey=KEY]")
    s.add_argument(
        "--api-key", default=os.environ.get("INFOWAY_API_KEY"), help="default: env INFOWAY_API_KEY"
    )
    s.add_argument("--trade", help="comma-separated symbols")
    s.add_argument("--depth", help="comma-separated symbols")
    s.add_argument(
        "--kline",
        action="append",
        default=[],
        metavar="TYPE:CODES",
        help="kline type and symbols, e.g. 1:BTCUSDT,ETHUSDT (repeatable)",
    )
    s.add_argument("--limit", type=int, default=0, help="exit 0 after this many pushes (0 = never)")
    s.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    s.add_argument("--heartbeat-interval", type=float, default=30.0)
    s.add_argument("--dead-peer-timeout", type=float, default=None)
    s.add_argument("--backoff-cap", type=float, default=30.0)
    s.add_argument("--max-attempts", type=int, default=None, help="give up after this many failures in a row")
    s.add_argument(
        "--record",
        metavar="FILE",
        help="also write what arrives to FILE as a capture (replay it: infoway-mock serve --replay FILE)",
    )
    return parser


def _table_row(ev: Any) -> str:
    if isinstance(ev, Trade):
        return f"trade  {ev.symbol:12} {ev.raw['p']:>14} x {ev.raw['v']:<12} td={ev.direction}"
    if isinstance(ev, Depth):
        a, b = ev.raw["a"], ev.raw["b"]
        return f"depth  {ev.symbol:12} {b[0][0]:>14} / {a[0][0]:<14} ({len(a[0])} levels)"
    if isinstance(ev, Kline):
        r = ev.raw
        ohlc = f"o={r['o']} h={r['h']} l={r['l']} c={r['c']} v={r['v']}"
        return f"kline  {ev.symbol:12} ty={r['ty']:<2} t={r['t']} {ohlc}"
    return str(ev)


async def _stream(args: argparse.Namespace) -> int:
    client = InfowayClient(
        args.url,
        api_key=args.api_key,
        heartbeat_interval=args.heartbeat_interval,
        dead_peer_timeout=args.dead_peer_timeout,
        backoff_cap=args.backoff_cap,
        max_attempts=args.max_attempts,
    )
    out = sys.stdout
    n = 0
    recorder = Recorder(args.record, client.url) if args.record else None
    async with client, recorder or contextlib.nullcontext():
        if args.trade:
            await client.subscribe_trades(args.trade)
        if args.depth:
            await client.subscribe_depth(args.depth)
        for spec in args.kline:
            ty, _, codes = spec.partition(":")
            await client.subscribe_klines(codes, [int(ty)])
        async for ev in client:
            if recorder is not None:
                recorder.event(ev)
            if isinstance(ev, Lifecycle):
                print(orjson.dumps(ev.to_json()).decode(), file=sys.stderr, flush=True)
                continue
            line = orjson.dumps(ev.to_json()).decode() if args.format == "jsonl" else _table_row(ev)
            out.write(line + "\n")
            n += 1
            if args.limit and n >= args.limit:
                out.flush()
                return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_stream(args))
        return 130
    except AuthError as e:
        print(f"infoway-client: {e}", file=sys.stderr)
        return 2
    except GaveUp as e:
        print(f"infoway-client: {e}", file=sys.stderr)
        return 3
    except ValueError as e:
        print(f"infoway-client: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
