"""`infoway-client stream`: print pushes as JSON lines or a table; lifecycle events go to stderr.

Exit codes: 0 after --limit pushes (or Ctrl-C: 130), 1 when the client stopped on an error, 2 on a usage
error or an API key the server refused (HTTP 401), 3 when --max-attempts ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from .client import InfowayClient
from .errors import AuthError, GaveUp, InfowayError
from .events import Depth, Kline, Lifecycle, Trade
from .masking import mask_text
from .record import Recorder

EXIT_ERROR, EXIT_USAGE, EXIT_GAVE_UP, EXIT_INTERRUPTED = 1, 2, 3, 130


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _kline_spec(text: str) -> tuple[int, str]:
    ty, sep, codes = text.partition(":")
    if not sep or not codes.strip(","):
        raise argparse.ArgumentTypeError(f"expected TYPE:CODES such as 1:BTCUSDT, not {text!r}")
    if not ty.isdigit() or not 1 <= int(ty) <= 12:
        raise argparse.ArgumentTypeError(f"kline type must be 1..12 (1=1m ... 12=1Y), not {ty!r}")
    return int(ty), codes


def _ws_url(text: str) -> str:
    if urlsplit(text).scheme not in ("ws", "wss") or not urlsplit(text).hostname:
        raise argparse.ArgumentTypeError(f"expected a ws:// or wss:// URL, not {mask_text(text)!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infoway-client", description="The reference Infoway client.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stream", help="subscribe and print pushes", epilog=__doc__)
    s.add_argument("--url", required=True, type=_ws_url, help="ws(s)://host/ws?business=crypto[&apikey=KEY]")
    s.add_argument(
        "--api-key", default=os.environ.get("INFOWAY_API_KEY"), help="default: env INFOWAY_API_KEY"
    )
    s.add_argument("--trade", help="comma-separated symbols")
    s.add_argument("--depth", help="comma-separated symbols")
    s.add_argument(
        "--kline",
        action="append",
        default=[],
        type=_kline_spec,
        metavar="TYPE:CODES",
        help="kline type (1=1m ... 12=1Y) and symbols, e.g. 1:BTCUSDT,ETHUSDT (repeatable)",
    )
    s.add_argument(
        "--limit", type=_non_negative_int, default=0, help="exit 0 after this many pushes (0 = never)"
    )
    s.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    s.add_argument(
        "--heartbeat-interval",
        type=_positive(float),
        default=30.0,
        metavar="SECONDS",
        help="seconds between heartbeats (10010); the server drops a connection silent for 60 s "
        "(default: 30)",
    )
    s.add_argument(
        "--dead-peer-timeout",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="reconnect when a frame the server must answer stays unanswered this many seconds "
        "(default: the heartbeat interval)",
    )
    s.add_argument(
        "--backoff-cap",
        type=_positive(float),
        default=30.0,
        metavar="SECONDS",
        help="longest wait between reconnect attempts while the server refuses (default: 30)",
    )
    s.add_argument(
        "--max-attempts",
        type=_positive(int),
        default=None,
        help="give up (exit 3) after this many failed attempts in a row (default: never)",
    )
    s.add_argument(
        "--record",
        metavar="FILE",
        help="also write what arrives to FILE as a capture (replay it: infoway-mock serve --replay FILE)",
    )
    return parser


def _table_row(ev: Any) -> str:
    if isinstance(ev, Trade):
        return f"trade  {ev.symbol:12} {ev.raw.get('p')!s:>14} x {ev.raw.get('v')!s:<12} td={ev.direction}"
    if isinstance(ev, Depth):
        a, b = ev.raw["a"], ev.raw["b"]
        best_bid = b[0][0] if b[0] else "-"
        best_ask = a[0][0] if a[0] else "-"
        return f"depth  {ev.symbol:12} {best_bid!s:>14} / {best_ask!s:<14} ({len(a[0])} levels)"
    if isinstance(ev, Kline):
        r = ev.raw
        ohlc = f"o={r.get('o')} h={r.get('h')} l={r.get('l')} c={r.get('c')} v={r.get('v')}"
        return f"kline  {ev.symbol:12} ty={r['ty']:<2} t={r['t']} {ohlc}"
    return str(ev)


async def _subscribe(client: InfowayClient, args: argparse.Namespace) -> None:
    if args.trade:
        await client.subscribe_trades(args.trade)
    if args.depth:
        await client.subscribe_depth(args.depth)
    for ty, codes in args.kline:
        await client.subscribe_klines(codes, [ty])


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
        await _subscribe(client, args)
        async for ev in client:  # raises the error that stopped the client
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


def _fail(message: str, code: int) -> int:
    print(f"infoway-client: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_stream(args))
        return EXIT_INTERRUPTED
    except AuthError as e:
        return _fail(str(e), EXIT_USAGE)
    except GaveUp as e:
        return _fail(str(e), EXIT_GAVE_UP)
    except (ValueError, TypeError) as e:  # a setting the client refused
        return _fail(f"error: {e}", EXIT_USAGE)
    except InfowayError as e:
        return _fail(f"error: {e}", EXIT_ERROR)
    except Exception as e:  # the client stopped on an internal error (logged with its traceback)
        return _fail(f"error: {type(e).__name__}: {e}", EXIT_ERROR)


if __name__ == "__main__":
    sys.exit(main())
