"""The mock exchange's composition root: it builds the parts, wires them through narrow ports, and does the
asyncio work no part can do alone (the listener, per-connection timers, lifecycle).

    listener -> Connection (HTTP via h11 | WebSocket via websockets' sans-I/O protocol)
        HTTP request  -> REST service / healthz / metrics
        upgrade       -> handshake.Gate (pure: 401/404/427/514/511, refusal faults)
        frame in      -> Session.receive (pure) -> actions -> Outbox (frames) / Hub (subscriptions)
    Pump (market time) -> Market -> Outbox.push / push_trades -> batches -> sockets
    FaultEngine acts through a FaultContext port; ControlChannel through the engine and the report.

Protocol logic lives in session.py, handshake decisions in handshake.py, frames leave only through the
Outbox. Nothing but cli, background and `__init__` imports this module (an architecture test checks).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import random
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from websockets.server import ServerProtocol

from infoway_mock import schemas

from .catalogue import BUSINESSES, Catalogue
from .clock import Clock
from .config import ServerConfig, config_from_dict, mask_key
from .connection import Connection, HttpRequest, HttpResponse, Limits
from .console import Console, ConsolePort, ScenarioPlayer
from .control import ControlChannel
from .documents import document_routes, get_only
from .fanout import text_frame
from .faults import FaultEngine
from .handshake import WS_PATH, Accept, Gate, Refusals, Upgrade
from .hub import Hub
from .limits import QuotaBook
from .market import Market
from .metrics import Metrics
from .news import NewsSession, news_item
from .outbox import Outbox
from .pump import Pump
from .replay import Feed, FeedPorts
from .report import ConnectionRecord, Rules, build_report
from .rest import RestService, is_rest_path
from .scenario import Scenario, play
from .session import BaseSession, Close, Send, Session, Subscribe, Unsubscribe, error_frame

log = logging.getLogger("infoway.mock")


class _MaskKeys(logging.Filter):
    """websockets' protocol debug lines could carry a key: mask them as every other log line is."""

    _KEY = re.compile(r"(?i)(apikey\s*[=:]\s*)([^&\s]+)")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "apikey" in message.lower():
            record.msg = self._KEY.sub(lambda m: m.group(1) + mask_key(m.group(2)), message)
            record.args = ()
        return True


logging.getLogger("websockets.server.infoway").addFilter(_MaskKeys())

_UPGRADE_ONLY = ("/ws", "/news", "/control", "/console/ws")

# Settings a running server takes on at once (sessions read the shared config; the rest is pushed on).
LIVE_SETTINGS = frozenset(
    {
        "heartbeat_timeout",
        "depth_interval",
        "kline_interval",
        "pump_interval",
        "trade_rate",
        "max_frame_size",
        "max_send_buffer",
        "max_codes_per_request",
        "max_trace_length",
        "max_http_body",
        "http_idle_timeout",
        "close_timeout",
        "strict",
        "stock_banner",
        "legacy_trade_push",
        "ack_unsubscribe",
        "subscribe_mode",
        "idle_reset_on_any_frame",
        "error_close_code",
        "send_timestamp",
        "report_heartbeat_interval",
    }
)


class _FaultPort:
    """What fault kinds may do to the server (the FaultContext protocol), and nothing more."""

    def __init__(self, srv: MockServer, seed: int) -> None:
        self._srv = srv
        self.rng = random.Random(seed)
        self.error_close_code = srv.config.error_close_code

    def now(self) -> float:
        return self._srv.clock.monotonic()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, fn, *args)

    def send(self, conn: Connection, frame: dict[str, Any] | str | bytes) -> None:
        self._srv.outbox.send(conn, frame)

    def close(self, conn: Connection, code: int, reason: str) -> None:
        conn.close(code, reason)

    def reset(self, conn: Connection) -> None:
        conn.abort(reset=True)

    def pause_reading(self, conn: Connection) -> None:
        conn.pause_reading()
        if conn.session is not None:
            conn.session.pause_reading(self.now())
        self._srv._arm_timer(conn)

    def resume_reading(self, conn: Connection) -> None:
        conn.resume_reading()
        if conn.session is not None:
            conn.session.resume_reading(self.now())
        self._srv._arm_timer(conn)

    def restart(self, down_for: float) -> None:
        self._srv._spawn(self._srv.restart(down_for))

    def trace_id(self) -> str:
        return self._srv._trace_id()

    def count_dropped(self, reason: str, n: int) -> None:
        self._srv.metrics.frames_dropped[reason] += n


def _limits(cfg: ServerConfig) -> Limits:
    """The connection bounds a server config sets (at start, and again when settings are applied)."""
    return Limits(
        max_message=cfg.max_frame_size,
        max_http_body=cfg.max_http_body,
        http_idle_timeout=cfg.http_idle_timeout,
        close_timeout=cfg.close_timeout,
        max_send_buffer=cfg.max_send_buffer,
    )


class MockServer:
    """An in-process mock Infoway exchange: `async with MockServer(cfg) as srv:`, then srv.ws_url()."""

    def __init__(self, config: ServerConfig | None = None, *, clock: Clock | None = None) -> None:
        cfg = self.config = config or ServerConfig()
        # A fixed start time makes runs reproducible: the market waits for the first subscription.
        self.clock = clock or Clock(
            cfg.speed,
            cfg.start_ms,
            held=cfg.start_ms is not None and cfg.clock_anchor_ms is None,
            anchor_ms=cfg.clock_anchor_ms,
        )
        catalogue = Catalogue.default()
        self.catalogue = catalogue.only(cfg.symbols) if cfg.symbols else catalogue
        self.market = Market(
            cfg.seed,
            self.catalogue,
            start_ms=self.clock.start_ms,
            trade_rate=cfg.trade_rate,
            max_trades_per_advance=cfg.max_trades_per_advance,
            market_hours=cfg.market_hours,
        )
        self.metrics = Metrics()
        self.quotas = QuotaBook()
        self.hub: Hub[Connection] = Hub()
        self.conns: dict[int, Connection] = {}  # open market-data and news sockets by id
        self._controls: set[Connection] = set()
        self.contract_violations: list[str] = []  # the first 100; metrics count them all
        self.control_token = cfg.control_token or secrets.token_hex(16)
        self.refusals = Refusals()
        self.gate = Gate(cfg, self.quotas, self.refusals, self.control_token, BUSINESSES)
        self.outbox = Outbox(
            self.metrics,
            strict=cfg.strict,
            max_send_buffer=cfg.max_send_buffer,
            shaped={},
            on_violation=self._violation,
            on_slow=self._drop_slow,
            on_write_error=self._write_failed,
            wall_ms=self.clock.wall_ms,
        )
        self.outbox.legacy_trades = cfg.legacy_trade_push
        self.outbox.send_timestamp = cfg.send_timestamp
        self.faults = FaultEngine(
            _FaultPort(self, cfg.seed),
            connections=lambda: list(self.conns.values()),
            refusals=self.refusals,
            write=self.outbox.write,
            on_applied=lambda f: self.metrics.faults_applied.update([f.kind]),
        )
        self.outbox.shaped = self.faults.shaped
        self.rest = RestService(
            self.market,
            self.catalogue,
            self.gate.authenticate,
            cfg.plan_for,
            self.quotas,
            cfg.rate_window,
            self.clock.monotonic,
        )
        self.control = ControlChannel(
            self.faults, self.report, self._connection_rows, html_report=lambda: self.console.html_report()
        )
        self.pump = Pump(
            self.market,
            self.clock,
            self.hub,
            self.outbox,
            self.metrics,
            interval=cfg.pump_interval,
            depth_interval=cfg.depth_interval,
            kline_interval=cfg.kline_interval,
            is_open=self.market.is_open,
            backlogged=self._backlogged if cfg.pump_high_water else (lambda: False),
            news=self._news_item,
            news_interval=cfg.news_interval,
        )
        self._news_symbols = [
            (i.symbol, i.name) for i in self.catalogue.all() if i.business not in ("common",)
        ]
        self.records: collections.deque[ConnectionRecord] = collections.deque(maxlen=cfg.max_report_records)
        self.started = self.clock.monotonic()
        self.port: int = cfg.port
        self._limits = _limits(cfg)
        self._handshaker = ServerProtocol()  # validates upgrades and builds the 101 (websockets' own checks)
        # Connection ids; in a group of worker processes each takes every Nth id, so ids stay unique.
        self._ids = itertools.count(cfg.conn_id_offset, cfg.conn_id_stride)
        self._rng = random.Random(cfg.seed)
        self._listener: asyncio.Server | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._pending: dict[Connection, Accept] = {}
        self._release_scheduled = False
        self.routes: dict[str, Callable[[HttpRequest], HttpResponse]] = {}
        self.feed: Feed | None = None  # pushes from a replayed capture or the firehose instead of the pump
        self.route("/healthz", get_only(self._healthz))
        self.route("/metrics", get_only(self._metrics))
        for path, handler in document_routes(lambda: self.http_url):
            self.route(path, handler)
        # The live console (/console) and the scenario handle it plays and stops scenarios through.
        self.scenarios = ScenarioPlayer(self.faults, self.apply_settings, self._spawn, self.clock.monotonic)
        self.console = Console(
            ConsolePort(
                config=cfg,
                now=self.clock.monotonic,
                started=self.started,
                connections=lambda: self.conns.values(),
                faults=self.faults,
                report=self.report,
                hub=self.hub,
                last_price=self.market.last_price,
                frames_sent=lambda: self.metrics.frames_sent.total(),
                scenarios=self.scenarios,
                info=lambda: {"http": self.http_url, "ws": f"ws://{cfg.host}:{self.port}/ws"},
            ),
            self.control_token,
        )
        for path, handler in self.console.routes():
            self.route(path, handler)
        self._console_task: asyncio.Task[None] | None = None
        self._register_gauges()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> MockServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self._listen()
        if self._pump_task is None and self.feed is None:
            self._pump_task = asyncio.create_task(self.pump.run(), name="infoway-pump")
        if self._console_task is None:
            self._console_task = asyncio.create_task(self.console.run(), name="infoway-console")

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: Connection(self, self._limits, self._handshaker),
            self.config.host,
            self.port,
            reuse_address=True,
            backlog=self.config.backlog,
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        # Ongoing faults end with the server; a stalled connection could not even hear its close frame.
        self.faults.clear()
        if self.feed is not None:
            self.feed.stop()
        for task in (self._pump_task, self._console_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pump_task = self._console_task = None
        await self._close_listener(code=1001, reason="server shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close_listener(self, code: int | None, reason: str = "") -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.close()
        await self.drop_all(code=code, reason=reason)
        for conn in list(self._controls):
            conn.abort()
        await listener.wait_closed()

    async def restart(self, down_for: float = 1.0) -> None:
        """Drop every connection abruptly, keep the port closed for `down_for` s, come back, same market."""
        await self._close_listener(code=None)
        await asyncio.sleep(down_for)  # the down time itself
        await self._listen()

    async def drop_all(self, code: int | None = None, reason: str = "") -> None:
        """Close every connection: with a close frame of `code`, or abruptly (TCP reset) if code is None."""
        conns = list(self.conns.values())
        for conn in conns:
            self.drop(conn, code, reason)
        deadline = asyncio.get_running_loop().time() + self.config.close_timeout + 1.0
        while any(c.transport is not None and not c.transport.is_closing() for c in conns):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)  # polling with a deadline: transports give no awaitable

    def drop(self, conn: Connection, code: int | None = None, reason: str = "") -> None:
        if code is None:
            conn.abort(reset=True)
        else:
            conn.close(code, reason)

    def use_feed(self, feed: Feed) -> None:
        """Serve pushes from `feed` (a replayed capture, the firehose) instead of the seeded market: the
        pump stops, REST reads the feed's state, and the feed hears of every open, subscription and close.
        Connections opened before keep their subscriptions but get nothing from the feed."""
        feed.bind(
            FeedPorts(
                hub=self.hub,
                send=self.outbox.send_framed,
                apply_fault=self.faults.apply_now,
                close_timeout=self.config.close_timeout,
                settle=self.config.start_settle,
                max_send_buffer=self.config.max_send_buffer,
            )
        )
        self.feed = feed
        if self._pump_task is not None:
            self._pump_task.cancel()
            self._pump_task = None
        self.rest.market = feed.market
        self.rest.catalogue = feed.catalogue(self.catalogue)

    async def play(self, scenario: Scenario, scale: float = 1.0) -> None:
        """Play a scenario now: its `server:` settings first, then its faults on their timeline."""
        if scenario.server:
            self.apply_settings(scenario.server)
        await play(self.faults, scenario, scale)

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Change server settings on the running server (a scenario's `server:` block). Settings that
        only take effect at start (port, seed, symbols...) are refused with a clear error, not ignored."""
        schemas.validate_document({"server": settings}, "config.schema.json", source="server settings")
        fixed = sorted(set(settings) - LIVE_SETTINGS)
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot change on a running server: set them in its config "
                "(the infoway_config fixture, or serve --scenario) instead"
            )
        cfg = config_from_dict({"server": settings}, self.config)
        self.outbox.strict = cfg.strict
        self.outbox.bound = cfg.max_send_buffer
        self.outbox.legacy_trades = cfg.legacy_trade_push
        self.outbox.send_timestamp = cfg.send_timestamp
        self.faults.ctx.error_close_code = cfg.error_close_code  # type: ignore[misc]
        self.market.set_trade_rate(cfg.trade_rate)
        self.pump.set_intervals(cfg.pump_interval, cfg.depth_interval, cfg.kline_interval)
        self._limits = _limits(cfg)

    def ws_url(self, business: str = "crypto", key: str | None = "demo") -> str:
        q = f"?business={business}" + (f"&apikey={key}" if key is not None else "")
        return f"ws://{self.config.host}:{self.port}{WS_PATH}{q}"

    url = ws_url

    def news_url(self, key: str | None = "demo") -> str:
        return f"ws://{self.config.host}:{self.port}/news" + (f"?apikey={key}" if key is not None else "")

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def sessions(self) -> dict[int, tuple[Session, Connection]]:
        """Open market-data connections by id: (session, connection)."""
        return {cid: (c.session, c) for cid, c in self.conns.items() if c.kind == "ws"}

    def connection_ids(self) -> list[int]:
        return sorted(self.conns)

    def counters(self) -> dict[str, int]:
        """The server's own bookkeeping; every value returns to 0 when no client is connected."""
        return {
            "sessions": len(self.conns),
            "subscriptions": self.hub.subscriptions(),
            "quota_connections": self.quotas.total_connections(),
            "quota_products": self.quotas.total_products(),
            "timers": len(self._timers),
            "tasks": len(self._tasks),
        }

    # -- the Host protocol: what connections ask of the server ------------------------------------------

    def route(self, path: str, handler: Callable[[HttpRequest], HttpResponse]) -> None:
        """Serve `handler` at an HTTP path on the mock's port (service endpoints, documents, console)."""
        self.routes[path] = handler

    def _healthz(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse(200, orjson.dumps({"status": "ok", "connections": len(self.conns)}))

    def _metrics(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse(200, self.metrics.render().encode(), "text/plain; version=0.0.4")

    def http_request(self, conn: Connection, req: HttpRequest) -> HttpResponse:
        path = req.path
        handler = self.routes.get(path)
        if handler is not None:
            return handler(req)
        if is_rest_path(path):
            resp = self.rest.handle(req.method, path, req.query, req.headers, req.body)
            self.metrics.rest_requests[resp.status] += 1
            headers = [("Allow", resp.allow)] if resp.allow else []
            return HttpResponse(resp.status, resp.body, resp.content_type, headers)
        if path in _UPGRADE_ONLY:
            return HttpResponse(
                426,
                b"Upgrade Required: this is a WebSocket endpoint\n",
                "text/plain",
                [("Upgrade", "websocket")],
            )
        return HttpResponse(404, b'{"code":404,"message":"Not Found"}')

    def upgrade(self, conn: Connection, req: HttpRequest) -> HttpResponse | None:
        up = Upgrade(req.path, req.query, req.headers, req.peer_host)
        verdict = self.gate.decide(up, self.clock.monotonic())
        if not isinstance(verdict, Accept):
            self.metrics.handshakes_refused[verdict.status] += 1
            return HttpResponse(
                verdict.status, verdict.text.encode(), "text/plain; charset=utf-8", list(verdict.headers)
            )
        conn.kind, conn.key, conn.business, conn.slot_held = (
            verdict.kind,
            verdict.key,
            verdict.business,
            verdict.slot_held,
        )
        if verdict.kind not in ("control", "console"):
            conn.conn_id = next(self._ids)
            self._pending[conn] = verdict
        return None

    def ws_opened(self, conn: Connection) -> None:
        if conn.kind in ("control", "console"):
            self._controls.add(conn)
            if conn.kind == "console":
                self.console.join(conn)
            return
        verdict = self._pending.pop(conn)
        now = self.clock.monotonic()
        cfg = self.config
        args = (
            conn.conn_id,
            conn.key,
            conn.business,
            cfg.plan_for(conn.key),
            cfg,
            self.quotas.account(conn.key),
            now,
        )
        session: BaseSession
        if conn.kind == "news":
            session = NewsSession(*args, trace_factory=self._trace_id)
        else:
            session = Session(*args, streams=self._streams_for(conn.business), trace_factory=self._trace_id)
        conn.session = session
        self.conns[conn.conn_id] = conn
        self.console.opened(conn)
        self.metrics.connections_total += 1
        log.info(
            "conn %d open key=%s business=%s peer=%s",
            conn.conn_id,
            mask_key(conn.key),
            conn.business,
            conn.peer,
        )
        if verdict.error is not None:
            code, msg = verdict.error
            session.closed = True
            self.outbox.send(conn, error_frame(code, msg))
            conn.close(cfg.error_close_code, msg)
            return
        self.faults.on_open(conn)
        if self.feed is not None:
            self.feed.opened(conn)
        self._apply(conn, session.open())
        self._arm_timer(conn)

    def ws_message(self, conn: Connection, data: str | bytes) -> None:
        self.metrics.frames_received += 1
        if conn.kind == "control":
            reply = orjson.dumps(self.control.handle(data))
            conn.write_frames([text_frame(reply)])
            return
        if conn.kind == "console":
            self.console.message(conn, data)
            return
        session = conn.session
        if session is not None:
            self._apply(conn, session.receive(data, self.clock.monotonic()))

    def connection_lost(self, conn: Connection) -> None:
        self._pending.pop(conn, None)
        if conn.kind in ("control", "console"):
            self._controls.discard(conn)
            self.console.leave(conn)
            return
        if conn.slot_held:
            conn.slot_held = False
            if conn.kind == "news":
                self.quotas.disconnect_news(conn.key)
            else:
                self.quotas.disconnect(conn.key, conn.conn_id)
        session = conn.session
        if session is None:
            return
        self.faults.on_close(conn)
        if self.feed is not None:
            self.feed.closed(conn)
        timer = self._timers.pop(conn.conn_id, None)
        if timer is not None:
            timer.cancel()
        for channel, symbols in session.hub_channels():
            self.hub.remove(channel, symbols, conn)
        session.release()
        self.conns.pop(conn.conn_id, None)
        close_code = conn.ws.close_code if conn.ws is not None else None
        self.records.append(self._record(session, close_code))
        self.console.closed(conn, close_code)
        log.info(
            "conn %d closed code=%s after %.1fs (%d frames in)",
            conn.conn_id,
            close_code,
            self.clock.monotonic() - session.opened_at,
            session.frames_received,
        )

    # -- sessions --------------------------------------------------------------------------------------

    def _apply(self, conn: Connection, actions: Iterable[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.outbox.send(conn, action.frame)
            elif isinstance(action, Subscribe):
                self.hub.add(action.channel, action.symbols, conn)
                if self.feed is not None:
                    self.feed.subscribed(conn, action.channel, action.symbols)
                if self.clock.held:
                    self._release_clock()
            elif isinstance(action, Unsubscribe):
                self.hub.remove(action.channel, action.symbols, conn)
            elif isinstance(action, Close):
                conn.close(action.code, action.reason)
                self._arm_timer(conn)  # a closed session has no deadline: this only cancels its timer

    def _release_clock(self) -> None:
        """The first subscription starts a held market clock, a short settle time later, so that every
        subscription a client sends at once sees the market from the same start (see Clock)."""
        if not self._release_scheduled:
            self._release_scheduled = True
            asyncio.get_running_loop().call_later(self.config.start_settle, self.clock.release)

    def _arm_timer(self, conn: Connection) -> None:
        """One timer per connection, at the session's deadline; none while the deadline is infinite."""
        timer = self._timers.pop(conn.conn_id, None)
        if timer is not None:
            timer.cancel()
        session = conn.session
        if session is None or conn.conn_id not in self.conns:
            return
        deadline = session.deadline()
        if deadline == float("inf"):
            return
        delay = max(0.0, deadline - self.clock.monotonic())
        self._timers[conn.conn_id] = asyncio.get_running_loop().call_later(delay, self._on_deadline, conn)

    def _on_deadline(self, conn: Connection) -> None:
        self._timers.pop(conn.conn_id, None)
        self.metrics.timer_wakeups += 1
        session = conn.session
        if session is None or conn.conn_id not in self.conns:
            return
        actions = session.tick(self.clock.monotonic())
        if actions:
            self._apply(conn, actions)
        else:
            self._arm_timer(conn)  # a heartbeat moved the deadline on (re-armed lazily, not per heartbeat)

    def _news_item(self, index: int, t_ms: int, lang: str) -> dict[str, Any]:
        return news_item(self.config.seed, index, t_ms // 1000, lang, self._news_symbols)

    def _streams_for(self, business: str) -> Callable[[str], bool]:
        if self.feed is not None:
            return self.feed.streams  # a feed streams what it has, whatever the mock's catalogue lists
        symbols = {i.symbol for i in self.catalogue.for_business(business)}
        return symbols.__contains__

    def _trace_id(self) -> str:
        # Server-originated errors (513) still carry a trace id; seeded so runs are reproducible.
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- outbox callbacks ------------------------------------------------------------------------------

    def _violation(self, frame: dict[str, Any], err: schemas.ContractError) -> None:
        # A frame the contract rejects is a bug in this server: record it, shout, and let tests fail.
        self.metrics.contract_violations += 1
        report = f"server frame breaks the contract: {err} frame={frame!r}"
        if len(self.contract_violations) < 100:
            self.contract_violations.append(report)
        log.error(report)

    def _drop_slow(self, conn: Connection) -> None:
        transport = conn.transport
        if transport is None or transport.is_closing():
            return  # already on its way out: count each connection once
        log.warning("conn %s dropped: send buffer over %d bytes", conn.conn_id, self.config.max_send_buffer)
        self.metrics.slow_consumers_dropped += 1
        conn.abort()

    def _write_failed(self, conn: Connection, exc: BaseException) -> None:
        self.metrics.connection_errors += 1
        log.error("conn %s dropped: writing to it raised %r", conn.conn_id, exc)
        with contextlib.suppress(Exception):
            conn.abort()

    def _backlogged(self) -> bool:
        high = self.config.pump_high_water
        return any(c.buffered() > high for c in self.conns.values())

    # -- report, control rows, gauges ------------------------------------------------------------------

    def _record(self, session: BaseSession, close_code: int | None, closed: bool = True) -> ConnectionRecord:
        return ConnectionRecord(
            conn_id=session.conn_id,
            key=session.key,
            business=session.business or "news",
            opened=session.opened_at - self.started,
            closed=self.clock.monotonic() - self.started if closed else None,
            close_code=close_code,
            frames=session.frames_received,
            requests_by_code=dict(session.requests_by_code),
            errors_by_code=dict(session.errors_sent),
            heartbeats=session.heartbeats,
            max_heartbeat_gap=session.max_heartbeat_gap,
            peak_window_frames=session.peak_window_frames,
            final=session.subscription_pairs(),
            ever=set(session.subscribed_ever),
            last_heartbeat=(session.last_heartbeat - self.started) if session.heartbeats else None,
            requests_without_trace=session.requests_without_trace,
        )

    def report(self) -> dict[str, Any]:
        """The contract report so far: closed connections plus the ones still open."""
        live = [
            self._record(c.session, None, closed=False) for c in self.conns.values() if c.session is not None
        ]
        cfg = self.config

        def rules_for(key: str) -> Rules:
            plan = cfg.plan_for(key) if key in cfg.keys else None
            return Rules(
                heartbeat_interval=cfg.report_heartbeat_interval,
                rate_limit=plan.rate_limit if plan else 60,
                rate_window=cfg.rate_window,
                heartbeat_timeout=cfg.heartbeat_timeout,
            )

        report = build_report([*self.records, *live], rules_for, self.clock.monotonic() - self.started)
        if self.feed is not None:
            report.update(self.feed.report())  # e.g. what a replayed capture lacked
        return report

    def report_html(self) -> str:
        """The contract report as one self-contained HTML page (timelines, verdicts and evidence)."""
        return self.console.html_report()

    def _connection_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "id": c.conn_id,
                "key": mask_key(c.key),
                "business": c.business,
                "kind": c.kind,
                "peer": c.peer,
                "products": len(c.session.products()) if c.session is not None else 0,
            }
            for c in self.conns.values()
        ]

    def _register_gauges(self) -> None:
        g = self.metrics.gauge
        g("connections", "Open WebSocket connections.", lambda: len(self.conns))
        g("subscriptions", "(channel, symbol, connection) subscriptions.", self.hub.subscriptions)
        g("quota_connections", "Connection slots held across keys.", self.quotas.total_connections)
        g("quota_products", "Products held against key budgets.", self.quotas.total_products)

    def _spawn(self, coro: Any) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
