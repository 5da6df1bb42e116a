"""`infoway-mock`: serve the mock exchange (and, later, drive its faults)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import scenario as scenario_mod
from .config import DEFAULT_KEY, ServerConfig, config_from_dict, load_config
from .faults import Fault
from .scenario import Scenario, play


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
    s.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check every frame sent against the schemas",
    )
    s.add_argument("--send-timestamp", action="store_true", help='add "st" (send time, ms) to pushes')
    s.add_argument("--legacy-trade-push", action="store_true", help="tutorial-style 10000 trade pushes")
    s.add_argument("--scenario", help="play a scenario (a shipped name or a YAML/JSON file) on a timeline")
    s.add_argument(
        "--report", help="write the contract report here at shutdown (JSON; a .txt summary beside it)"
    )
    s.add_argument("--control-token", help="token for the /control endpoint (default: random, printed)")
    s.add_argument("-v", "--verbose", action="store_true")

    sub.add_parser("scenarios", help="list the shipped scenarios")

    f = sub.add_parser("fault", help="inject a fault into a running mock through its control endpoint")
    f.add_argument(
        "kind",
        help="close, reset, stall, stop_reading, delay, error, refuse, duplicate, reorder, "
        "malformed, restart; or 'clear' to end ongoing faults",
    )
    target = f.add_mutually_exclusive_group()
    target.add_argument("--conn", type=int, help="one connection id")
    target.add_argument("--key", help="every connection of one API key")
    target.add_argument("--all", action="store_true", help="every connection (the default)")
    f.add_argument("--code", type=int, help="close code, error code or HTTP status")
    f.add_argument("--reason", default="", help="close reason")
    f.add_argument("--msg", help="error frame message")
    f.add_argument(
        "--seconds", type=float, help="how long an ongoing fault or refusal lasts; restart down time"
    )
    f.add_argument("--delay", type=float, default=0.0)
    f.add_argument("--jitter", type=float, default=0.0)
    f.add_argument("--probability", type=float, default=1.0)
    f.add_argument("--then-close", action="store_true", help="error: close after the error frame")
    f.add_argument("--variant", default="json", help="malformed: json, types, unknown_code or binary")
    f.add_argument("--id", type=int, help="clear: the fault id (default: all)")
    f.add_argument("--url", default="ws://127.0.0.1:8765/control")
    f.add_argument(
        "--token",
        default=os.environ.get("INFOWAY_MOCK_TOKEN"),
        help="control token (default: env INFOWAY_MOCK_TOKEN)",
    )

    r = sub.add_parser("report", help="print the contract report of a running mock")
    r.add_argument("--url", default="ws://127.0.0.1:8765/control")
    r.add_argument("--token", default=os.environ.get("INFOWAY_MOCK_TOKEN"))
    r.add_argument("--json", action="store_true")
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
    if args.control_token:
        cfg.control_token = args.control_token
    cfg.send_timestamp = cfg.send_timestamp or args.send_timestamp
    cfg.legacy_trade_push = cfg.legacy_trade_push or args.legacy_trade_push
    return cfg.with_overrides(
        rate_limit=args.rate_limit,
        max_connections=args.max_connections,
        max_products_per_connection=args.max_products,
    )


async def _serve(cfg: ServerConfig, scenario: Scenario | None, report_path: str | None) -> None:
    from .report import summary
    from .server import MockServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with MockServer(cfg) as srv:
        key = next(iter(cfg.keys), DEFAULT_KEY)
        print(f"infoway-mock serving {srv.ws_url('crypto', key)}", flush=True)
        print(f"  REST {srv.http_url}/crypto/batch_trade/BTCUSDT  metrics {srv.http_url}/metrics", flush=True)
        print(f"  control ws://{cfg.host}:{srv.port}/control  token {srv.control_token}", flush=True)
        if scenario is not None:
            srv._spawn(play(srv, scenario))
        await stop.wait()
        logging.getLogger("infoway.mock").info("shutting down")
        if report_path:
            write_report(srv.report(), report_path)
            print(summary(srv.report()), flush=True)


def write_report(report: dict, path: str) -> None:
    from .report import summary

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    p.with_suffix(".txt").write_text(summary(report) + "\n", encoding="utf-8")


def _fault(args: argparse.Namespace) -> int:
    from .control import send_command

    if not args.token:
        print(
            "infoway-mock fault: a control token is needed (--token or INFOWAY_MOCK_TOKEN)", file=sys.stderr
        )
        return 2
    if args.kind == "clear":
        command: dict = {"op": "clear", "id": args.id}
    else:
        fault = Fault(
            kind=args.kind,
            conn=args.conn,
            key=args.key,
            code=args.code,
            reason=args.reason,
            msg=args.msg,
            seconds=args.seconds,
            delay=args.delay,
            jitter=args.jitter,
            probability=args.probability,
            then_close=args.then_close,
            variant=args.variant,
        )
        command = {"op": "fault", "fault": fault.to_dict()}
    reply = asyncio.run(send_command(args.url, args.token, command))
    print(json.dumps(reply, ensure_ascii=False))
    return 0 if reply.get("ok") else 1


def _report(args: argparse.Namespace) -> int:
    from .control import send_command
    from .report import summary

    reply = asyncio.run(send_command(args.url, args.token or "", {"op": "report"}))
    if not reply.get("ok"):
        print(reply.get("error"), file=sys.stderr)
        return 1
    print(
        json.dumps(reply["report"], indent=2, ensure_ascii=False) if args.json else summary(reply["report"])
    )
    return 0 if reply["report"]["verdict"] == "pass" else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        if args.command == "scenarios":
            for sc in scenario_mod.shipped():
                print(f"{sc.name:26} {sc.duration:5.0f}s  {sc.description}")
            return 0
        if args.command == "fault":
            return _fault(args)
        if args.command == "report":
            return _report(args)
        cfg = config_from_args(args)
        scenario = scenario_mod.load(args.scenario) if args.scenario else None
        if scenario is not None:
            config_from_dict({"server": scenario.server}, cfg)
    except (ValueError, OSError) as e:
        print(f"infoway-mock: {e}", file=sys.stderr)
        return 2
    asyncio.run(_serve(cfg, scenario, args.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
