"""Server configuration: plans, keys, limits and protocol variants, loaded from a schema-checked file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infoway_mock.schemas.masking import mask_key

DEFAULT_KEY = "demo"
# Shipped for load tests (loadtests/locustfile.py's default): the demo key's 9 connections would turn a
# 20-user run into 427s. Mock-only; the live service has no such plan.
LOAD_TEST_KEY = "load-test"


@dataclass(frozen=True)
class Plan:
    """What one API key may do. Defaults follow the vendor's published Pro plan."""

    name: str = "pro"
    max_connections: int = 9  # per key; over it the handshake gets HTTP 427
    max_products: int = 5000  # across all connections of a key (error 516)
    max_products_per_connection: int = 600  # error 505
    rate_limit: int = 60  # frames a client may send per rate window on one connection (error 501)
    rest_rate_limit: int = 600  # REST calls per key per rate window (HTTP 429)
    daily_request_limit: int = 0  # 0 = unlimited (error 502)
    max_kline_subscriptions: int = 0  # (symbol, type) pairs per connection, 0 = unlimited (error 503)
    max_depth_products: int = 0  # depth symbols per connection, 0 = unlimited (error 504)
    news: bool = True  # may open the /news socket (without it: HTTP 401, as the SDK documents)
    max_news_connections: int = 1  # the SDK: one news connection per key (a second gets error 520)


# The vendor's published plans; "pro" is the default for the demo key so tests are not cramped by it.
BUILTIN_PLANS: dict[str, Plan] = {
    "free": Plan(
        "free",
        max_connections=1,
        max_products=10,
        max_products_per_connection=10,
        rest_rate_limit=60,
        news=False,  # our choice: news is a separate entitlement, not part of the free plan
    ),
    "basic": Plan("basic", max_connections=1, max_products=200, max_products_per_connection=200),
    "premium": Plan("premium", max_connections=2, max_products=800, max_products_per_connection=600),
    "pro": Plan("pro", max_connections=9, max_products=5000, max_products_per_connection=600),
    # Not a vendor plan: room for thousands of locust users on one key; per-connection limits stay live.
    "load": Plan(
        "load",
        max_connections=10_000,
        max_products=1_000_000,
        max_products_per_connection=600,
        rest_rate_limit=1_000_000,
    ),
}


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 42
    # key -> plan name
    keys: dict[str, str] = field(default_factory=lambda: {DEFAULT_KEY: "pro", LOAD_TEST_KEY: "load"})
    plans: dict[str, Plan] = field(default_factory=lambda: dict(BUILTIN_PLANS))
    banned_keys: frozenset[str] = frozenset()

    # Timing. All of these are seconds of wall time so tests can shrink them.
    heartbeat_timeout: float = 60.0
    rate_window: float = 60.0
    depth_interval: float = 0.1
    kline_interval: float = 1.0
    news_interval: float = 5.0  # a news item on /news this often (per language subscribed)
    pump_interval: float = 0.01  # how often the market is advanced and trades fanned out

    # Market.
    speed: float = 1.0  # market clock runs this many times faster than wall time
    # Market start time (epoch ms); None = the wall clock at start-up. When set, the market clock is
    # held at start_ms until the first subscription (+ start_settle s), so runs are frame-for-frame equal.
    start_ms: int | None = None
    start_settle: float = 0.2
    # Worker groups (serve --workers): market time follows the wall clock from this anchor (epoch ms at
    # which market time is start_ms), so every process computes the same market time and streams the same
    # frames; and connection ids are offset + k * stride, unique across the group.
    clock_anchor_ms: int | None = None
    conn_id_offset: int = 1
    conn_id_stride: int = 1
    trade_rate: float = 2.0  # trades per second of market time, per symbol
    # "always": every symbol streams 24/7 (CI never depends on the time of day); "real": exchange sessions
    # (trading_hours.py), a closed market acks subscriptions and stays silent, as live.
    market_hours: str = "always"

    # Bounds.
    max_frame_size: int = 64 * 1024  # larger client frames are closed with 1009
    max_send_buffer: int = 4 * 1024 * 1024  # bytes queued to one client before it is dropped as too slow
    # Benchmarks only (0 = off): hold the market pump while any connection has more than this many bytes
    # queued, as a bare server measuring delivered throughput would, instead of queueing without end.
    pump_high_water: int = 0
    max_codes_per_request: int = 1000  # more codes in one request: error 506
    max_trace_length: int = 256
    max_http_body: int = 64 * 1024  # REST request bodies (POST v2 batch_kline); 413 above
    http_idle_timeout: float = 30.0  # an HTTP keep-alive connection idle this long is closed
    close_timeout: float = 2.0  # after our close frame the client has this long to answer, then TCP abort
    backlog: int = 1024  # the listen socket's accept queue (reconnect storms arrive all at once)

    # Protocol variants (PROTOCOL.md OPEN items and tutorial differences).
    strict: bool = False  # validate every frame the server sends against the schemas
    stock_banner: bool = True  # plain-text banner before the welcome on business=stock, as seen live
    legacy_trade_push: bool = False  # the tutorial's {"code":10000,"data":{s,p,v,t}} instead of 10002
    ack_unsubscribe: tuple[int, ...] = (11000, 11001, 11002)  # which unsubscribes get an 11010 ack
    subscribe_mode: str = "add"  # "add" or "replace": a second subscribe of the same kind
    idle_reset_on_any_frame: bool = False  # True: any client frame, not only 10010, resets the idle timer
    error_close_code: int = 1008  # WebSocket close code after 501 / 513 (OPEN on the live service)
    send_timestamp: bool = False  # add "st" (server send time, epoch ms) to pushes, for latency measurement

    # Control endpoint (fault injection) on the same listener, loopback peers only; None = a random token.
    control_token: str | None = None

    # Contract report.
    report_heartbeat_interval: float = 30.0  # a client that goes longer without 10010 fails the rule
    max_report_records: int = 10_000  # closed connections remembered for the report

    # Catalogue: restrict the market to these symbols (None = the whole default catalogue).
    symbols: list[str] | None = None
    max_trades_per_advance: int = 10_000  # per symbol, so a long pause can't make one pump step explode

    def plan_for(self, key: str) -> Plan:
        return self.plans[self.keys[key]]

    def with_overrides(self, **plan_overrides: Any) -> ServerConfig:
        """Apply CLI limit flags to every plan, so `--rate-limit 10` means what it says for any key."""
        overrides = {k: v for k, v in plan_overrides.items() if v is not None}
        if overrides:
            self.plans = {n: dataclasses.replace(p, **overrides) for n, p in self.plans.items()}
        return self


_PLAN_FIELDS = {f.name for f in dataclasses.fields(Plan)}
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(ServerConfig)}


def load_config(path: str | Path, base: ServerConfig | None = None) -> ServerConfig:
    """Read a JSON or YAML config file, check it against schemas/json/config.schema.json, build a config."""
    from infoway_mock import schemas

    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        raw = yaml.safe_load(text)
    else:
        raw = json.loads(text)
    schemas.validate_document(raw, "config.schema.json")
    return config_from_dict(raw, base)


def config_from_dict(raw: dict[str, Any], base: ServerConfig | None = None) -> ServerConfig:
    cfg = base or ServerConfig()
    plans = dict(cfg.plans)
    for name, spec in (raw.get("plans") or {}).items():
        fields = {k: v for k, v in spec.items() if k in _PLAN_FIELDS}
        plans[name] = dataclasses.replace(plans.get(name, Plan(name=name)), name=name, **fields)
    cfg.plans = plans
    keys = raw.get("keys")
    if keys is not None:
        cfg.keys = {k["key"]: k.get("plan", "pro") for k in keys}
        cfg.banned_keys = frozenset(k["key"] for k in keys if k.get("banned"))
    for name, value in (raw.get("server") or {}).items():
        if name in _CONFIG_FIELDS and name not in {"plans", "keys", "banned_keys"}:
            setattr(cfg, name, tuple(value) if name == "ack_unsubscribe" else value)
    for key, plan in cfg.keys.items():
        if plan not in cfg.plans:
            raise ValueError(f"key {mask_key(key)} names unknown plan {plan!r}")
    return cfg
