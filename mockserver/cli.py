"""`infoway-mock`: serve the mock exchange, and drive a running one (faults, report).

The `fault` command is built from the fault registry: one subcommand per kind, each with its own typed
options (and `name=value` arguments for the same parameters), validated locally by the same schema the
server applies, so a new kind needs no CLI work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infoway_mock.schemas import documents

from . import conformance
from . import proxy as proxy_mod
from . import replay as replay_mod
from . import scenario as scenario_mod
from .config import DEFAULT_KEY, ServerConfig, config_from_dict, load_config
from .faults import KINDS, Fault, FaultError, schema
from .scenario import Scenario

DEFAULT_CONTROL = "ws://127.0.0.1:8765/control"


def parse_start(text: str) -> int:
    """`--start`: epoch milliseconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO 8601 time (e.g. 2026-08-15T09:30:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _serve_parser(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve the mock exchange")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    s.add_argument("--seed", type=int, default=None, help="market seed (default 42)")
    s.add_argument(
        "--start",
        type=parse_start,
        default=None,
        help="market start time (epoch ms or ISO 8601, e.g. 2026-08-15T09:30:00Z); the market then waits "
        "for the first subscription, so runs with the same --seed and --start give identical frames",
    )
    s.add_argument(
        "--market-hours",
        choices=("always", "real"),
        help="always: every market streams 24/7 (default, so CI runs do not depend on the hour); real: "
        "each market streams only in its trading sessions (closed markets ack and stay silent)",
    )
    s.add_argument("--config", help="JSON or YAML config file (plans, keys, server settings)")
    s.add_argument("--keys", help=f"comma-separated API keys to accept (default: {DEFAULT_KEY})")
    s.add_argument("--heartbeat-timeout", type=float, help="seconds without 10010 before 513 (default 60)")
    s.add_argument("--rate-limit", type=int, help="client frames per minute per connection (default 60)")
    s.add_argument("--rate-window", type=float, help="seconds of the rate window (default 60)")
    s.add_argument("--max-connections", type=int, help="connections per key (HTTP 427 above)")
    s.add_argument("--max-products", type=int, help="products per connection (505 above)")
    s.add_argument(
        "--speed",
        type=_speed,
        help="market clock speed-up (default 1); with --replay/--firehose the playback speed, or max: "
        "everything in large writes as fast as the client takes it",
    )
    s.add_argument("--replay", metavar="FILE", help="serve a capture (proxy --record) instead of the market")
    s.add_argument("--loop", action="store_true", help="with --replay/--firehose: start over at the end")
    s.add_argument(
        "--firehose",
        type=float,
        metavar="SECONDS",
        help="pre-render SECONDS of the seeded market, serve it at --speed (default max): throughput tests",
    )
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
        "--report",
        help="write the contract report here at shutdown: FILE.json (a .txt summary beside it), or "
        "FILE.html, a self-contained page (the .json and .txt beside it)",
    )
    s.add_argument("--control-token", help="token for the /control endpoint (default: random, printed)")
    s.add_argument(
        "--workers",
        type=int,
        help="run N mock processes behind HAProxy (Debian package haproxy), routed by API key with "
        "consistent hashing: per-key quotas stay exact, every process streams the same seeded market; "
        "one control endpoint, /metrics and report for the group",
    )
    s.add_argument(
        "--balancers",
        type=int,
        default=1,
        help="with --workers: HAProxy processes sharing the port (each holds two descriptors per "
        "connection, so past ~half the descriptor limit add one; default 1)",
    )
    s.add_argument(
        "--worker",
        metavar="I/N",
        help="this process is worker I of N in a group (set by --workers, or by hand for a multi-host "
        "group): it takes connection ids I, I+N, I+2N...",
    )
    s.add_argument(
        "--clock-anchor",
        type=int,
        metavar="EPOCH_MS",
        help="the wall time at which market time is --start (default: now): processes given the same "
        "anchor, seed and start stream the same frames (set by --workers)",
    )
    s.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    s.set_defaults(run=_serve_command)


def _speed(text: str) -> float:
    if text == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a speed is a number above 0 or max, not {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"a speed is a number above 0 or max, not {text!r}")
    return value


def _control_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("INFOWAY_MOCK_URL"),
        help=f"the mock's control endpoint (default: env INFOWAY_MOCK_URL, else {DEFAULT_CONTROL}, "
        "or that with --port)",
    )
    p.add_argument("--port", type=int, help="shorthand for --url ws://127.0.0.1:PORT/control")
    p.add_argument(
        "--token",
        default=os.environ.get("INFOWAY_MOCK_TOKEN"),
        help="control token, printed by `serve` at start (default: env INFOWAY_MOCK_TOKEN)",
    )


def _param_option(p: argparse.ArgumentParser, name: str, spec: dict[str, Any]) -> None:
    flag = "--" + name.replace("_", "-")
    help_text = spec.get("description", "")
    if "default" in spec:
        help_text = f"{help_text} (default {spec['default']})".strip()
    if spec.get("type") == "boolean":
        p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        return
    kind = {"integer": int, "number": float}.get(spec.get("type", ""), str)
    if "enum" in spec:
        kind = type(spec["enum"][0])
        p.add_argument(flag, dest=name, type=kind, default=None, choices=spec["enum"], help=help_text)
        return
    p.add_argument(flag, dest=name, type=kind, default=None, help=help_text)


def _fault_parser(sub: Any) -> None:
    f = sub.add_parser(
        "fault",
        help="inject a fault into a running mock (through its control endpoint)",
        description="One subcommand per fault kind. Parameters go as options (--seconds 5) or as "
        "name=value arguments (seconds=5). `clear` ends ongoing faults, `list` shows them, `schema` "
        "prints the JSON Schema every door validates faults with.",
    )
    kinds = f.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, kind in KINDS.items():
        k = kinds.add_parser(name, help=kind.summary, description=kind.summary)
        # Every kind gets every target option; the registry says which it accepts, in one clear line.
        target = k.add_mutually_exclusive_group()
        target.add_argument("--conn", type=int, help="one connection id (see `infoway-mock report`)")
        target.add_argument("--key", help="every connection of one API key")
        target.add_argument("--all", action="store_true", help="every connection (the default)")
        for param, spec in kind.params.items():
            _param_option(k, param, spec)
        k.add_argument("assign", nargs="*", metavar="NAME=VALUE", help="parameters as name=value")
        _control_args(k)
    c = kinds.add_parser("clear", help="end ongoing faults and refusals")
    c.add_argument("--id", type=int, help="one fault id (default: all)")
    _control_args(c)
    lst = kinds.add_parser("list", help="the ongoing faults")
    _control_args(lst)
    kinds.add_parser("schema", help="print the fault JSON Schema")
    f.set_defaults(run=_fault)


def _report_parser(sub: Any) -> None:
    r = sub.add_parser("report", help="print the contract report of a running mock")
    _control_args(r)
    r.add_argument("--json", action="store_true", help="the whole report as JSON")
    r.add_argument("--html", metavar="FILE", help="write the report as a self-contained HTML page")
    r.set_defaults(run=_report)


def build_parser() -> argparse.ArgumentParser:
    """One line per command: each adds its subparser and sets `run` (args -> exit status)."""
    parser = argparse.ArgumentParser(prog="infoway-mock", description="An offline mock Infoway exchange.")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    sub.add_parser("scenarios", help="list the shipped scenarios").set_defaults(run=_scenarios)
    _fault_parser(sub)
    _report_parser(sub)
    conformance.add_parser(sub)
    _spec_parser(sub)
    proxy_mod.add_command(sub)
    replay_mod.add_command(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    cfg = load_config(args.config) if args.config else ServerConfig()
    cfg.host, cfg.port = args.host, args.port
    if args.keys:
        plan = cfg.keys.get(DEFAULT_KEY, "pro")
        cfg.keys = {k.strip(): plan for k in args.keys.split(",") if k.strip()}
    for name in ("seed", "heartbeat_timeout", "rate_window", "speed", "trade_rate", "strict", "market_hours"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.start is not None:
        cfg.start_ms = args.start
    if args.clock_anchor is not None:
        cfg.clock_anchor_ms = args.clock_anchor
        if cfg.start_ms is None:
            cfg.start_ms = args.clock_anchor
    if args.worker:
        index, _, total = args.worker.partition("/")
        if not (index.isdigit() and total.isdigit() and 1 <= int(index) <= int(total)):
            raise ValueError(f"--worker {args.worker!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
        cfg.conn_id_offset, cfg.conn_id_stride = int(index), int(total)
    if args.control_token:
        cfg.control_token = args.control_token
    cfg.send_timestamp = cfg.send_timestamp or args.send_timestamp
    cfg.legacy_trade_push = cfg.legacy_trade_push or args.legacy_trade_push
    return cfg.with_overrides(
        rate_limit=args.rate_limit,
        max_connections=args.max_connections,
        max_products_per_connection=args.max_products,
    )


async def _serve(
    cfg: ServerConfig, scenario: Scenario | None, report_path: str | None, feed: Any = None
) -> None:
    from .report import summary
    from .server import MockServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    srv = MockServer(cfg)
    if feed is not None:
        srv.use_feed(feed)
    async with srv:
        key = next(iter(cfg.keys), DEFAULT_KEY)
        print(f"infoway-mock serving {srv.ws_url('crypto', key)}", flush=True)
        if feed is not None:
            print(f"  {replay_mod.describe(feed)}", flush=True)
        print(f"  REST {srv.http_url}/crypto/batch_trade/BTCUSDT  metrics {srv.http_url}/metrics", flush=True)
        print(f"  control ws://{cfg.host}:{srv.port}/control  token {srv.control_token}", flush=True)
        print(f"  console {srv.http_url}/console?token={srv.control_token}", flush=True)
        if scenario is not None:
            srv.scenarios.start(scenario, settings=False)  # its server: block is in cfg already
        await stop.wait()
        logging.getLogger("infoway.mock").info("shutting down")
        if report_path:
            html = srv.report_html() if is_html(report_path) else None
            write_report(srv.report(), report_path, html)
            print(summary(srv.report()), flush=True)


def is_html(path: str) -> bool:
    return Path(path).suffix.lower() in (".html", ".htm")


def write_report(report: dict[str, Any], path: str, html: str | None = None) -> None:
    """The JSON report and its .txt summary; given `html` (the page), it goes to `path` and the JSON
    beside it, so a .html report never loses the machine-readable one."""
    from .report import summary

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if html is not None:
        p.write_text(html, encoding="utf-8")
        p = p.with_suffix(".json")
    p.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    p.with_suffix(".txt").write_text(summary(report) + "\n", encoding="utf-8")


def _control_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url
    if args.port:
        return f"ws://127.0.0.1:{args.port}/control"
    return DEFAULT_CONTROL


def _value(text: str) -> Any:
    """A name=value argument's value: JSON where it parses (5, 0.5, true, "x"), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def fault_from_args(args: argparse.Namespace) -> Fault:
    params: dict[str, Any] = {}
    for item in args.assign:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise FaultError(f"{item!r}: parameters are name=value (e.g. seconds=5)")
        params[name.replace("-", "_")] = _value(value)
    for name in KINDS[args.kind].params:
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return Fault(args.kind, conn=getattr(args, "conn", None), key=getattr(args, "key", None), **params)


def _fault(args: argparse.Namespace) -> int:
    from .control import send_command

    if args.kind == "schema":
        print(json.dumps(schema(), indent=2))
        return 0
    if args.kind == "clear":
        command: dict[str, Any] = {"op": "clear", "id": args.id}
    elif args.kind == "list":
        command = {"op": "faults"}
    else:
        command = {"op": "fault", "fault": fault_from_args(args).to_dict()}
    if not args.token:
        raise _UsageError("a control token is needed (--token or INFOWAY_MOCK_TOKEN; `serve` prints it)")
    reply = asyncio.run(send_command(_control_url(args), args.token, command))
    print(json.dumps(reply, ensure_ascii=False))
    return 0 if reply.get("ok") else 1


def _report(args: argparse.Namespace) -> int:
    from .control import send_command
    from .report import summary

    if not args.token:
        raise _UsageError("a control token is needed (--token or INFOWAY_MOCK_TOKEN; `serve` prints it)")
    if args.html:
        reply = asyncio.run(send_command(_control_url(args), args.token, {"op": "report", "format": "html"}))
        if "html" not in reply:
            print(
                f"infoway-mock report: {reply.get('error', 'this mock cannot write HTML reports')}",
                file=sys.stderr,
            )
            return 1
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(reply["html"], encoding="utf-8")
        print(f"wrote {args.html} (verdict {reply['verdict']})")
        return 0 if reply["verdict"] != "fail" else 1
    reply = asyncio.run(send_command(_control_url(args), args.token, {"op": "report"}))
    if not reply.get("ok"):
        print(f"infoway-mock report: {reply.get('error')}", file=sys.stderr)
        return 1
    print(
        json.dumps(reply["report"], indent=2, ensure_ascii=False) if args.json else summary(reply["report"])
    )
    return 0 if reply["report"]["verdict"] != "fail" else 1


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    from .cluster import ClusterError
    from .control import ControlError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[argv.index("serve") + 1 :] if args.command == "serve" else []
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        return int(args.run(args))
    except (ValueError, OSError, ControlError, _UsageError, ClusterError) as e:
        print(f"infoway-mock {args.command}: {e}", file=sys.stderr)
        return 2


def _serve_command(args: argparse.Namespace) -> int:
    playback = _playback(args)
    if args.workers:
        return _serve_group(args)
    cfg = config_from_args(args)
    scenario = scenario_mod.load(args.scenario) if args.scenario else None
    if scenario is not None:
        config_from_dict({"server": scenario.server}, cfg)
    asyncio.run(_serve(cfg, scenario, args.report, _feed(args, cfg, playback)))
    return 0


def _playback(args: argparse.Namespace) -> float | None:
    """The playback speed of --replay/--firehose (taken out of --speed, which is the market's otherwise)."""
    if not (args.replay or args.firehose is not None):
        if args.speed is not None and math.isinf(args.speed):
            raise _UsageError("--speed max plays a capture or the firehose: give --replay or --firehose")
        if args.loop:
            raise _UsageError("--loop repeats a capture or the firehose: use it with --replay or --firehose")
        return None
    if args.replay and args.firehose is not None:
        raise _UsageError("--replay and --firehose are two sources of pushes: give one")
    if args.workers:
        # Each worker would play the capture to its own share of the connections: not one replay.
        raise _UsageError("--replay and --firehose serve one process: leave out --workers")
    playback, args.speed = args.speed, None
    return playback


def _feed(args: argparse.Namespace, cfg: ServerConfig, playback: float | None) -> Any:
    if args.replay:
        return replay_mod.ReplayFeed(replay_mod.load(args.replay), speed=playback or 1.0, loop=args.loop)
    if args.firehose is not None:
        from .firehose import render

        return replay_mod.ReplayFeed(render(cfg, args.firehose), speed=playback or math.inf, loop=args.loop)
    return None


def _serve_group(args: argparse.Namespace) -> int:
    """serve --workers N: the supervisor. Workers get this command line minus what only the group has."""
    import secrets

    from .cluster import run_cluster

    config_from_args(args)  # refuse a bad command line here, once, rather than in every worker
    if args.report:
        raise _UsageError("--report with --workers: ask the group with `infoway-mock report --port PORT`")
    argv = list(args.argv)
    drop = {
        "--workers",
        "--balancers",
        "--host",
        "--port",
        "--control-token",
        "--worker",
        "--clock-anchor",
        "--report",
    }
    worker_args: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in drop:
            skip = "=" not in a and i + 1 < len(argv)
            continue
        worker_args.append(a)
    token = args.control_token or secrets.token_hex(16)
    asyncio.run(run_cluster(args.workers, args.host, args.port, worker_args, token, args.balancers))
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    for sc in scenario_mod.shipped():
        print(f"{sc.name:26} {sc.duration:5.0f}s  {sc.description}")
    return 0


def _spec_parser(sub: Any) -> None:
    p = sub.add_parser(
        "spec",
        help="print an API document, self-contained: openapi (REST) or asyncapi (WebSockets)",
        description="Print the OpenAPI 3.1 (REST) or AsyncAPI 3.0 (WebSocket) document with every schema "
        "inlined, as a running mock serves it at /openapi.yaml and /asyncapi.yaml.",
    )
    p.add_argument("document", choices=sorted(documents.DOCUMENTS), help="which document")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    p.add_argument(
        "--server-url",
        help="the mock the document should name, e.g. http://127.0.0.1:9000 (default: the placeholder "
        "http://127.0.0.1:8765 and the live service)",
    )
    p.set_defaults(run=_spec)


def _spec(args: argparse.Namespace) -> int:
    sys.stdout.write(documents.render(args.document, server_url=args.server_url, fmt=args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
