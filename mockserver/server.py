"""The asyncio shell: websockets I/O, the market pump, fan-out, timers. Protocol logic lives in session.py."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import hmac
import itertools
import logging
import random
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from infoway_mock import schemas

from . import rest
from .catalogue import Catalogue
from .clock import Clock
from .config import ServerConfig, mask_key
from .control import ControlChannel, is_loopback
from .fanout import SHORT_HEADERS, Batch, text_frame
from .faults import FaultEngine
from .hub import Hub
from .limits import QuotaBook
from .market import Market
from .metrics import Metrics
from .report import ConnectionRecord, Rules, build_report
from .session import Close, Send, Session, Subscribe, Unsubscribe, error_frame

log = logging.getLogger("infoway.mock")


class _MaskKeys(logging.Filter):
    """websockets logs request lines and headers at debug level: API keys there are masked too."""

    _KEY = re.compile(r"(?i)(apikey\s*[=:]\s*)([^&\s]+)")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "apikey" in message.lower():
            record.msg = self._KEY.sub(lambda m: m.group(1) + mask_key(m.group(2)), message)
            record.args = ()
        return True


# A child of websockets.server, so whoever configures websockets' logging configures this one too.
ws_log = logging.getLogger("websockets.server.infoway")
ws_log.addFilter(_MaskKeys())

BUSINESSES = ("common", "stock", "crypto", "japan", "india")
PUSH_TRADE, PUSH_DEPTH, PUSH_KLINE, LEGACY_TRADE = 10002, 10005, 10008, 10000


@dataclass
class ConnInfo:
    conn_id: int
    key: str
    business: str
    peer: str
    slot_held: bool = False


class InfowayConnection(ServerConnection):
    """A ServerConnection that returns its quota slot however it ends, even mid-handshake."""

    infoway: ConnInfo | None = None
    on_lost: Any = None
    control: bool = False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost(self)


class ContractViolation(AssertionError):
    """The server tried to send a frame that breaks the contract: a server bug (strict mode)."""


class MockServer:
    """An in-process mock Infoway exchange. `async with MockServer(cfg) as srv:` then connect to srv.url()."""

    def __init__(self, config: ServerConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or ServerConfig()
        self.clock = clock or Clock(self.config.speed, self.config.start_ms)
        catalogue = Catalogue.default()
        self.catalogue = catalogue.only(self.config.symbols) if self.config.symbols else catalogue
        self.market = Market(
            self.config.seed,
            self.catalogue,
            start_ms=self.clock.start_ms,
            trade_rate=self.config.trade_rate,
            max_trades_per_advance=self.config.max_trades_per_advance,
        )
        self.metrics = Metrics()
        self.quotas = QuotaBook()
        self.hub: Hub[InfowayConnection] = Hub()
        self.sessions: dict[int, tuple[Session, InfowayConnection]] = {}
        self.contract_violations: list[str] = []  # the first 100; metrics count them all
        self._checkers: dict[int, Any] = {}
        self._batch: Batch | None = None  # set while a pump runs: pushes are written once it ends
        self._ids = itertools.count(1)
        self._rng = random.Random(self.config.seed)
        self._server: Server | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.faults = FaultEngine(self, seed=self.config.seed)
        self.records: collections.deque[ConnectionRecord] = collections.deque(
            maxlen=self.config.max_report_records
        )
        self.started = self.clock.monotonic()
        self.control_token = self.config.control_token or secrets.token_urlsafe(16)
        self.port: int = self.config.port
        self._register_gauges()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> MockServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self._listen()
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(), name="infoway-pump")

    async def _listen(self) -> None:
        cfg = self.config
        self._server = await serve(
            self._handle,
            cfg.host,
            self.port,
            process_request=self._process_request,
            create_connection=InfowayConnection,
            max_size=cfg.max_frame_size,
            ping_interval=None,  # idleness is the protocol's heartbeat timeout, not WebSocket pings
            compression=None,
            write_limit=cfg.max_send_buffer,
            server_header="infoway-mock",
            logger=ws_log,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        # Ongoing faults end with the server; a stalled connection could not even hear its close frame.
        self.faults.clear()
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        await self._close_listener(code=1001, reason="server shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close_listener(self, code: int | None, reason: str = "") -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close(close_connections=False)
        await self.drop_all(code=code, reason=reason)
        await server.wait_closed()

    async def restart(self, down_for: float = 1.0) -> None:
        """Drop every connection abruptly, keep the port closed for `down_for` s, come back, same market."""
        await self._close_listener(code=None)
        await asyncio.sleep(down_for)
        await self._listen()

    async def drop_all(self, code: int | None = None, reason: str = "") -> None:
        """Close every connection: with a close frame of `code`, or abruptly (TCP reset) if code is None."""
        conns = [conn for _, conn in self.sessions.values()]
        for conn in conns:
            self.drop(conn, code, reason)
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)

    def drop(self, conn: InfowayConnection, code: int | None = None, reason: str = "") -> None:
        if code is None:
            if conn.transport is not None:
                conn.transport.abort()
        else:
            self._spawn(conn.close(code, reason))

    @property
    def url(self) -> Any:
        return self.ws_url

    def ws_url(self, business: str = "crypto", key: str | None = "demo") -> str:
        q = f"?business={business}" + (f"&apikey={key}" if key is not None else "")
        return f"ws://{self.config.host}:{self.port}/ws{q}"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def connection_ids(self) -> list[int]:
        return sorted(self.sessions)

    def counters(self) -> dict[str, int]:
        """The server's own bookkeeping; every value returns to 0 when no client is connected."""
        return {
            "sessions": len(self.sessions),
            "subscriptions": self.hub.subscriptions(),
            "quota_connections": self.quotas.total_connections(),
            "quota_products": self.quotas.total_products(),
            "timers": len(self._timers),
            "tasks": len(self._tasks),
        }

    # -- handshake and REST ----------------------------------------------------------------------------

    def _process_request(self, conn: InfowayConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if path in ("/healthz", "/metrics"):
            return self._service_endpoint(conn, request, path)
        if path == "/control":
            return self._control_handshake(conn, request, query)
        if path != "/ws":
            if rest.is_rest_path(path):
                return self._rest(request, path, query)
            return self._refuse(conn, 404, "Not Found\n")
        presented = query.get("apikey") or query.get("apiKey") or request.headers.get("apiKey")
        refused = self.faults.refusal(presented)
        if refused is not None:
            return self._refuse(conn, refused, f"{refused} refused by fault injection\n")
        key = self._authenticate(presented)
        if key is None:
            resp = self._refuse(conn, 401, "Unauthorized: missing or invalid API key\n")
            resp.headers["WWW-Authenticate"] = 'apikey realm="key"'
            return resp
        business = query.get("business", "")
        plan = self.config.plan_for(key)
        held = business in BUSINESSES and key not in self.config.banned_keys
        if held and not self.quotas.try_connect(key, plan.max_connections):
            return self._refuse(
                conn, 427, f"Too many WebSocket connections: the plan allows {plan.max_connections}\n"
            )
        info = ConnInfo(next(self._ids), key, business, _peer(conn), slot_held=held)
        conn.infoway = info
        if held:
            conn.on_lost = self._release_slot
        return None

    def _authenticate(self, presented: str | None) -> str | None:
        if not presented:
            return None
        found = None
        # Compare against every key in constant time so timing reveals neither the key nor its position.
        for key in self.config.keys:
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = key
        return found

    def _refuse(self, conn: ServerConnection, status: int, text: str) -> Response:
        self.metrics.handshakes_refused[status] += 1
        # Built by hand: the gateway's 427/499/524 are not in http.HTTPStatus, so conn.respond() rejects them.
        body = text.encode()
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]
        )
        return Response(status, _REASONS.get(status, "Refused"), headers, body)

    def _release_slot(self, conn: InfowayConnection) -> None:
        info = conn.infoway
        if info is not None and info.slot_held:
            info.slot_held = False
            self.quotas.disconnect(info.key, info.conn_id)

    def _rest(self, request: Request, path: str, query: dict[str, str]) -> Response:
        status, body = rest.handle(self, path, query, request.headers)
        self.metrics.rest_requests[status] += 1
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return Response(status, rest.REASONS.get(status, "OK"), headers, body)

    def _control_handshake(
        self, conn: InfowayConnection, request: Request, query: dict[str, str]
    ) -> Response | None:
        # The control channel can break every client: loopback peers only, and only with the token.
        if not is_loopback(conn):
            return self._refuse(conn, 403, "Forbidden: the control endpoint is for loopback clients only\n")
        auth = request.headers.get("Authorization", "")
        presented = auth.removeprefix("Bearer ").strip() or query.get("token", "")
        if not hmac.compare_digest(presented.encode(), self.control_token.encode()):
            return self._refuse(conn, 401, "Unauthorized: control token required\n")
        conn.control = True
        return None

    def _service_endpoint(self, conn: ServerConnection, request: Request, path: str) -> Response:
        if path == "/healthz":
            body = orjson.dumps({"status": "ok", "connections": len(self.sessions)})
            return Response(200, "OK", Headers([("Content-Type", "application/json")]), body)
        if path == "/metrics":
            text = self.metrics.render().encode()
            return Response(200, "OK", Headers([("Content-Type", "text/plain; version=0.0.4")]), text)
        return self._refuse(conn, 404, "Not Found\n")

    # -- connections -----------------------------------------------------------------------------------

    async def _handle(self, conn: InfowayConnection) -> None:
        if conn.control:
            await ControlChannel(self).serve(conn)
            return
        info = conn.infoway
        assert info is not None
        cfg = self.config
        if info.business not in BUSINESSES:
            self._send(conn, error_frame(514, f"WebSocket URL wrong：unknown business {info.business!r}"))
            await conn.close(cfg.error_close_code, "WebSocket URL wrong")
            return
        if info.key in cfg.banned_keys:
            self._send(conn, error_frame(511, "API key is blacklisted"))
            await conn.close(cfg.error_close_code, "API key is blacklisted")
            return
        now = self.clock.monotonic()
        session = Session(
            info.conn_id,
            info.key,
            info.business,
            cfg.plan_for(info.key),
            cfg,
            self.quotas.account(info.key),
            now,
            streams=self._streams_for(info.business),
            trace_factory=self._trace_id,
        )
        self.sessions[info.conn_id] = (session, conn)
        self.faults.on_open(conn)
        self.metrics.connections_total += 1
        log.info(
            "conn %d open key=%s business=%s peer=%s",
            info.conn_id,
            mask_key(info.key),
            info.business,
            info.peer,
        )
        reason = "closed"
        try:
            self._apply(session, conn, session.open())
            self._arm_timer(session, conn)
            async for message in conn:
                self.metrics.frames_received += 1
                self._apply(session, conn, session.receive(message, self.clock.monotonic()))
        except ConnectionClosed as e:
            reason = f"dropped ({e.rcvd.code if e.rcvd else 'no close frame'})"
        finally:
            self._forget(session, conn)
            code = conn.close_code
            log.info(
                "conn %d %s code=%s after %.1fs (%d frames in)",
                info.conn_id,
                reason,
                code,
                self.clock.monotonic() - session.opened_at,
                session.frames_received,
            )

    def _forget(self, session: Session, conn: InfowayConnection) -> None:
        self.faults.on_close(conn)
        timer = self._timers.pop(session.conn_id, None)
        if timer is not None:
            timer.cancel()
        for channel, symbols in session.channels():
            self.hub.remove(channel, symbols, conn)
        session.release()
        self.sessions.pop(session.conn_id, None)
        self.records.append(self._record(session, conn.close_code))

    def _record(self, session: Session, close_code: int | None, closed: bool = True) -> ConnectionRecord:
        return ConnectionRecord(
            conn_id=session.conn_id,
            key=session.key,
            business=session.business,
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
        )

    def report(self) -> dict[str, Any]:
        """The contract report so far: closed connections plus the ones still open."""
        live = [self._record(s, None, closed=False) for s, _ in self.sessions.values()]
        cfg = self.config

        def rules_for(key: str) -> Rules:
            plan = cfg.plan_for(key) if key in cfg.keys else None
            return Rules(
                heartbeat_interval=cfg.report_heartbeat_interval,
                rate_limit=plan.rate_limit if plan else 60,
                rate_window=cfg.rate_window,
            )

        return build_report([*self.records, *live], rules_for, self.clock.monotonic() - self.started)

    def _arm_timer(self, session: Session, conn: InfowayConnection) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, session.deadline() - self.clock.monotonic())
        self._timers[session.conn_id] = loop.call_later(delay, self._on_deadline, session, conn)

    def _on_deadline(self, session: Session, conn: InfowayConnection) -> None:
        self._timers.pop(session.conn_id, None)
        if session.conn_id not in self.sessions:
            return
        # While a fault keeps us from reading, the client's heartbeats can't arrive: don't time it out.
        actions = [] if self.faults.deaf(conn) else session.tick(self.clock.monotonic())
        if actions:
            self._apply(session, conn, actions)
        else:
            # A heartbeat moved the deadline: re-arm rather than resetting a timer on every heartbeat.
            self._arm_timer(session, conn)

    def _apply(self, session: Session, conn: InfowayConnection, actions: Iterable[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(conn, action.frame)
            elif isinstance(action, Subscribe):
                self.hub.add(action.channel, action.symbols, conn)
            elif isinstance(action, Unsubscribe):
                self.hub.remove(action.channel, action.symbols, conn)
            elif isinstance(action, Close):
                self._spawn(conn.close(action.code, action.reason))

    def _send(self, conn: InfowayConnection, frame: dict[str, Any] | str) -> None:
        if isinstance(frame, str):
            data = frame.encode()
        else:
            self._check(frame)
            code = frame.get("code", 0)
            self.metrics.frames_sent[code] += 1
            if "traceId" in frame:
                self.metrics.errors_sent[code] += 1
            data = orjson.dumps(frame)
        if self.faults.shaped:
            self.faults.push(conn, data)
        else:
            broadcast([conn], data, text=True)

    def _check(self, frame: dict[str, Any]) -> None:
        if not self.config.strict:
            return
        try:
            schemas.validate_server_frame(frame, fast=True)
        except schemas.ContractError as e:
            self._violation(frame, e)

    def _violation(self, frame: dict[str, Any], err: schemas.ContractError) -> None:
        # A frame the contract rejects is a bug in this server: record it, shout, and let tests fail.
        self.metrics.contract_violations += 1
        report = f"server frame breaks the contract: {err} frame={frame!r}"
        if len(self.contract_violations) < 100:
            self.contract_violations.append(report)
        log.error(report)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _streams_for(self, business: str) -> Any:
        symbols = {i.symbol for i in self.catalogue.for_business(business)}
        return symbols.__contains__

    def _trace_id(self) -> str:
        # Server-originated errors (513) still carry a trace id; seeded so runs are reproducible.
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- market pump -----------------------------------------------------------------------------------

    async def _pump(self) -> None:
        cfg = self.config
        clock = self.clock
        next_depth = next_kline = clock.monotonic()
        while True:
            now = clock.monotonic()
            market_now = clock.market_ms(now)
            self._drop_slow_consumers()
            if cfg.pump_high_water and self._backlogged(cfg.pump_high_water):
                await asyncio.sleep(cfg.pump_interval)
                continue
            self._batch = batch = Batch(cfg.max_send_buffer, self._drop_slow)
            trades = self.market.advance(market_now)
            if trades:
                self._push_trades(trades, batch)
            if now >= next_depth:
                next_depth = max(next_depth + cfg.depth_interval, now)
                for symbol, subs in list(self.hub.depth.items()):
                    self._push(subs, PUSH_DEPTH, self.market.depth(symbol, market_now))
            if now >= next_kline:
                next_kline = max(next_kline + cfg.kline_interval, now)
                for (symbol, ty), subs in list(self.hub.klines.items()):
                    self._push(subs, PUSH_KLINE, self.market.kline(symbol, ty, market_now))
            self._batch = None
            batch.flush()
            await asyncio.sleep(cfg.pump_interval)

    def _push_trades(self, trades: list[Any], batch: Batch) -> None:
        """The hottest loop of the server: one frame per trade, encoded and checked once, then fanned
        out. Anything unusual (legacy pushes, send timestamps, faults in play) takes the general path."""
        hub_trades = self.hub.trades
        cfg = self.config
        if cfg.legacy_trade_push or cfg.send_timestamp or self.faults.shaped:
            for trade in trades:
                subs = hub_trades.get(trade["s"])
                if subs:
                    if cfg.legacy_trade_push:
                        self._push(subs, LEGACY_TRADE, {k: trade[k] for k in ("s", "p", "v", "t")})
                    else:
                        self._push(subs, PUSH_TRADE, trade)
            return
        check = self._checker(PUSH_TRADE) if cfg.strict else None
        dumps, headers = orjson.dumps, SHORT_HEADERS
        sent = 0
        # Consecutive trades of one symbol go to the same subscribers: they are handed over as one run.
        run_subs: Any = None
        run: list[bytes] = []
        for trade in trades:
            subs = hub_trades.get(trade["s"])
            if not subs:
                continue
            frame = {"code": PUSH_TRADE, "data": trade}
            if check is not None:
                try:
                    check(frame)
                except schemas.ContractError as e:
                    self._violation(frame, e)
            data = dumps(frame)
            wire = headers[len(data)] + data if len(data) < 126 else text_frame(data)
            if subs is not run_subs:
                if run:
                    batch.add_many(run_subs, run)
                run_subs, run = subs, []
            run.append(wire)
            sent += len(subs)
        if run:
            batch.add_many(run_subs, run)
        self.metrics.frames_sent[PUSH_TRADE] += sent

    def _checker(self, code: int) -> Any:
        checker = self._checkers.get(code)
        if checker is None:
            checker = self._checkers[code] = schemas.server_frame_checker(code)
        return checker

    def _push(self, subs: set[InfowayConnection], code: int, data: dict[str, Any]) -> None:
        frame: dict[str, Any] = {"code": code, "data": data}
        if self.config.send_timestamp:
            frame["st"] = self.clock.wall_ms()
        if self.config.strict:
            try:
                self._checker(code)(frame)
            except schemas.ContractError as e:
                self._violation(frame, e)
        self.metrics.frames_sent[code] += len(subs)
        data = orjson.dumps(frame)
        batch = self._batch
        shaped = self.faults.shaped
        if shaped and not shaped.keys().isdisjoint(subs):
            # Only connections under an ongoing fault take the slow path; the rest share one frame.
            plain = [c for c in subs if c not in shaped]
            if batch is not None:
                batch.add(plain, text_frame(data))
            else:
                broadcast(plain, data, text=True)
            for conn in subs & shaped.keys():
                self.faults.push(conn, data)
        elif batch is not None:
            batch.add(subs, text_frame(data))
        else:
            broadcast(subs, data, text=True)

    def _backlogged(self, high_water: int) -> bool:
        for _, conn in self.sessions.values():
            transport = conn.transport
            if transport is not None and transport.get_write_buffer_size() > high_water:
                return True
        return False

    def _drop_slow_consumers(self) -> None:
        bound = self.config.max_send_buffer
        for _, conn in list(self.sessions.values()):
            transport = conn.transport
            if transport is not None and transport.get_write_buffer_size() > bound:
                self._drop_slow(conn)

    def _drop_slow(self, conn: InfowayConnection) -> None:
        transport = conn.transport
        if transport is None or transport.is_closing():
            return  # already on its way out: count each connection once
        info = conn.infoway
        log.warning(
            "conn %s dropped: send buffer over %d bytes",
            info.conn_id if info else "?",
            self.config.max_send_buffer,
        )
        self.metrics.slow_consumers_dropped += 1
        transport.abort()

    def _register_gauges(self) -> None:
        g = self.metrics.gauge
        g("connections", "Open WebSocket connections.", lambda: len(self.sessions))
        g("subscriptions", "(channel, symbol, connection) subscriptions.", self.hub.subscriptions)
        g("quota_connections", "Connection slots held across keys.", self.quotas.total_connections)
        g("quota_products", "Products held against key budgets.", self.quotas.total_products)


_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    427: "Too Many Connections",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    524: "A Timeout Occurred",
}


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "?"
