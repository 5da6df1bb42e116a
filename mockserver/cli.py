"""`infoway-mock`: serve the mock exchange (and, later, drive its faults)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from .config import DEFAULT_KEY, ServerConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infoway-mock", description="An offline mock Infoway exchange.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the mock exchange")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--seed", type=int, default=None, help="market seed (default 42)")
    s.add_argument("--config", help="JSON or YAML config file (plans, keys, server settings)")
    s.add_argument("--keys", help=f"comma-separated API keys to accept (default: {DEFAULT_KEY})")
    s.add_argument("--heartbeat-timeout", type=float, help="seconds without 10010 before 513 (default 60)")
    s.add_argument("--rate-limit", type=int, help="client frames per minute per connection (default 60)")
    s.add_argument("--rate-window", type=float, help="seconds of the rate window (default 60)")
    s.add_argument("--max-connections", type=int, help="connections per key (HTTP 427 above)")
    s.add_argument("--max-products", type=int, help="products per connection (505 above)")
    s.add_argument("--speed", type=float, help="market clock speed-up (default 1)")
    s.add_argument("--trade-rate", type=float, help="trades per second per symbol (default 2)")
    s.add_argument("--strict", action=argparse.BooleanOptionalAction, default=None,
                   help="check every frame sent against the schemas")
    s.add_argument("--send-timestamp", action="store_true", help='add "st" (send time, ms) to pushes')
    s.add_argument("--legacy-trade-push", action="store_true", help="tutorial-style 10000 trade pushes")
    s.add_argument("-v", "--verbose", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    cfg = load_config(args.config) if args.config else ServerConfig()
    cfg.host, cfg.port = args.host, args.port
    if args.keys:
        plan = cfg.keys.get(DEFAULT_KEY, "pro")
        cfg.keys = {k.strip(): plan for k in args.keys.split(",") if k.strip()}
    for name in ("seed", "heartbeat_timeout", "rate_window", "speed", "trade_rate", "strict"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    cfg.send_timestamp = cfg.send_timestamp or args.send_timestamp
    cfg.legacy_trade_push = cfg.legacy_trade_push or args.legacy_trade_push
    return cfg.with_overrides(
        rate_limit=args.rate_limit,
        max_connections=args.max_connections,
        max_products_per_connection=args.max_products,
    )


async def _serve(cfg: ServerConfig) -> None:
    from .server import MockServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with MockServer(cfg) as srv:
        print(f"infoway-mock serving {srv.ws_url('crypto', next(iter(cfg.keys), DEFAULT_KEY))}", flush=True)
        print(f"  REST {srv.http_url}/crypto/batch_trade/BTCUSDT  metrics {srv.http_url}/metrics", flush=True)
        await stop.wait()
        logging.getLogger("infoway.mock").info("shutting down")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.command == "serve":
        try:
            cfg = config_from_args(args)
        except (ValueError, OSError) as e:
            print(f"infoway-mock: {e}", file=sys.stderr)
            return 2
        asyncio.run(_serve(cfg))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
