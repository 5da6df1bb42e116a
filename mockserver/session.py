"""One connection's protocol state machine, sans I/O.

Text or bytes go in with the current time; frames to send and actions (close, subscription changes) come
out. No sockets, no clocks, no asyncio: the server shell does the I/O, so this is tested and fuzzed directly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from infoway_mock import schemas
from infoway_mock.schemas.codes import (
    DAILY_LIMIT,
    DEPTH_LIMIT,
    HEARTBEAT,
    HEARTBEAT_ACK,
    HEARTBEAT_TIMEOUT,
    KLINE_LIMIT,
    NOT_JSON,
    PARAM_ERROR,
    PARAM_LOST,
    PRODUCTS_PER_CONNECTION,
    PRODUCTS_PER_KEY,
    RATE_LIMIT,
    REQUESTS,
    SUB_DEPTH,
    SUB_KLINE,
    SUB_TRADE,
    UNSUB_ACK,
    UNSUB_DEPTH,
    UNSUB_KLINE,
    UNSUB_TRADE,
)

from .config import Plan, ServerConfig
from .limits import KeyAccount, SlidingWindow

KLINE_TYPES = range(1, 13)

WELCOME = {"code": 200, "msg": "ws connect success"}
STOCK_BANNER = "You have permission to subscribe to all market data"

# A channel is (kind, kline type); trade and depth use type 0.
Channel = tuple[str, int]
TRADE: Channel = ("trade", 0)
DEPTH: Channel = ("depth", 0)
# Trades whose pushes carry `ty`: a hub-only channel, a subset of TRADE (never counted as a product).
TRADE_TY: Channel = ("trade_ty", 0)
EQUITY_BUSINESSES = frozenset({"stock", "japan", "india", "korea", "taiwan"})  # crypto never sends ty


def kline_channel(ty: int) -> Channel:
    return ("kline", ty)


@dataclass(frozen=True, slots=True)
class Send:
    """Send a frame: a dict is serialised as JSON, a str goes out as a raw text frame."""

    frame: dict[str, Any] | str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: Channel
    symbols: frozenset[str]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: Channel
    symbols: frozenset[str]


Action = Send | Close | Subscribe | Unsubscribe


def error_frame(code: int, msg: str, trace: str = "") -> dict[str, Any]:
    # Error frames carry traceId (not trace) and no data, as on the live service.
    return {"traceId": trace, "code": code, "msg": msg}


class RequestError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class BaseSession:
    """What every Infoway socket shares: the welcome, the per-connection rate window, JSON and the schema
    gate, heartbeats and their timeout, error frames. Subclasses add their requests (`_handlers`)."""

    socket = "ws"  # which code table the schema gate uses (schemas.codes: ws or news)

    def __init__(
        self,
        conn_id: int,
        key: str,
        business: str,
        plan: Plan,
        config: ServerConfig,
        account: KeyAccount,
        now: float,
        *,
        trace_factory: Callable[[], str] = lambda: "",
    ) -> None:
        self.conn_id = conn_id
        self.key = key
        self.business = business
        self.plan = plan
        self.config = config
        self.account = account
        self._trace_factory = trace_factory
        self.opened_at = now
        self.last_heartbeat = now
        self.closed = False
        # While the shell cannot read this connection (a stall fault), the client cannot be heard, so it
        # cannot be timed out either: deadline() is infinite until resume_reading().
        self.reading_paused = False
        self.rate = SlidingWindow(plan.rate_limit, config.rate_window)
        self.frames_received = 0
        self.requests_by_code: dict[int, int] = {}
        self.errors_sent: dict[int, int] = {}
        # Behaviour the contract report judges: heartbeat gaps, peak request rate, what was subscribed.
        self.heartbeats = 0
        self.max_heartbeat_gap = 0.0
        self.peak_window_frames = 0
        self._recent: deque[float] = deque(maxlen=10_000)  # bounded even when the rate limit is off
        self.subscribed_ever: set[tuple[Channel, str]] = set()
        self.requests_without_trace = 0  # the docs say trace is required; the report warns
        self._handlers: dict[int, Callable[[Any, str], list[Action]]] = {}

    def open(self) -> list[Action]:
        return [Send(dict(WELCOME))]

    def products(self) -> set[str]:
        return set()

    def channels(self) -> Iterator[tuple[Channel, set[str]]]:
        return iter(())

    def subscription_pairs(self) -> set[tuple[Channel, str]]:
        return {(ch, sym) for ch, syms in self.channels() for sym in syms}

    def release(self) -> None:
        """The connection is gone: give back whatever it held against the key's budgets."""

    # -- lifecycle -------------------------------------------------------------------------------------

    def deadline(self) -> float:
        """When tick() has something to do: the heartbeat timeout, unless a heartbeat arrives first.

        Infinite once closed or while reading is paused: a timer armed at deadline() must never find
        itself due with nothing to do (that re-arms at zero delay and spins a core)."""
        if self.closed or self.reading_paused:
            return math.inf
        return self.last_heartbeat + self.config.heartbeat_timeout

    def tick(self, now: float) -> list[Action]:
        if now < self.deadline():
            return []
        return self._fail(HEARTBEAT_TIMEOUT, "Websocket heartbeat timeout", self._trace_factory())

    def pause_reading(self, now: float) -> None:
        """The shell stopped reading this connection (stall / stop_reading faults)."""
        self.reading_paused = True

    def resume_reading(self, now: float) -> None:
        """Reading resumes: the client could not be heard meanwhile, so its heartbeat clock restarts."""
        if self.reading_paused:
            self.reading_paused = False
            self.last_heartbeat = now

    # -- input -----------------------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Action]:
        if self.closed:
            return []
        self.frames_received += 1
        recent = self._recent
        recent.append(now)
        cutoff = now - self.config.rate_window
        while recent[0] <= cutoff:
            recent.popleft()
        if len(recent) > self.peak_window_frames:
            self.peak_window_frames = len(recent)
        if self.config.idle_reset_on_any_frame:
            self.last_heartbeat = now
        # Every frame counts against the per-minute budget, valid or not, as on the live service.
        if not self.rate.hit(now):
            limit = self.plan.rate_limit
            per = "minute" if self.config.rate_window == 60 else f"{self.config.rate_window:g} seconds"
            return self._fail(RATE_LIMIT, f"Request frequency exceed the limit：{limit} times per {per}", "")
        if isinstance(data, bytes):
            return [self._error(NOT_JSON, "Param error：binary frames are not accepted, send JSON text")]
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [self._error(NOT_JSON, "Param error：The param is not JSON")]
        trace = obj.get("trace") if isinstance(obj, dict) else None
        if not isinstance(trace, str):
            self.requests_without_trace += 1
        trace = trace if isinstance(trace, str) and len(trace) <= self.config.max_trace_length else ""
        try:
            return self._request(obj, trace, now)
        except RequestError as e:
            return [self._error(e.code, e.msg, trace)]

    def _request(self, obj: Any, trace: str, now: float) -> list[Action]:
        try:
            schemas.validate_client_frame(obj, fast=True, socket=self.socket)
        except schemas.ContractError as e:
            raise _request_error(e) from None
        code: int = obj["code"]
        self.requests_by_code[code] = self.requests_by_code.get(code, 0) + 1
        if self.plan.daily_request_limit:
            day = int(now // 86400)
            if self.account.day != day:
                self.account.day, self.account.requests_today = day, 0
            self.account.requests_today += 1
            if self.account.requests_today > self.plan.daily_request_limit:
                raise RequestError(
                    DAILY_LIMIT, f"Daily request limit reached：{self.plan.daily_request_limit}"
                )
        if code == HEARTBEAT:
            return self._heartbeat(obj, trace, now)
        handler = self._handlers.get(code)
        if handler is None:
            # The schema gate knows the same codes; should it ever let another through, it is refused
            # here rather than falling into some other request's branch.
            raise RequestError(PARAM_ERROR, "Param error：The code is out of range")
        return handler(obj.get("data") or {}, trace)

    def _heartbeat(self, obj: dict[str, Any], trace: str, now: float) -> list[Action]:
        self.heartbeats += 1
        self.max_heartbeat_gap = max(self.max_heartbeat_gap, now - self.last_heartbeat)
        self.last_heartbeat = now
        data = obj.get("data")
        # `ack` at the top level is what the docs show; inside `data` is how some clients send it.
        if obj.get("ack") == 1 or (isinstance(data, dict) and data.get("ack") == 1):
            return [Send({"code": HEARTBEAT_ACK, "trace": trace, "msg": "ok"})]
        return []

    # -- output helpers --------------------------------------------------------------------------------

    def _error(self, code: int, msg: str, trace: str = "") -> Send:
        self.errors_sent[code] = self.errors_sent.get(code, 0) + 1
        return Send(error_frame(code, msg, trace))

    def _fail(self, code: int, msg: str, trace: str) -> list[Action]:
        """An error that ends the connection: the frame, then a close."""
        self.closed = True
        return [self._error(code, msg, trace), Close(self.config.error_close_code, msg[:120])]


class Session(BaseSession):
    """Protocol state of one market-data WebSocket connection (/ws)."""

    def __init__(
        self,
        conn_id: int,
        key: str,
        business: str,
        plan: Plan,
        config: ServerConfig,
        account: KeyAccount,
        now: float,
        *,
        streams: Callable[[str], bool] = lambda symbol: True,
        trace_factory: Callable[[], str] = lambda: "",
    ) -> None:
        super().__init__(conn_id, key, business, plan, config, account, now, trace_factory=trace_factory)
        # Symbols of another business (or unknown) are acked and held, but never streamed: as seen live.
        self._streams = streams
        self.trades: set[str] = set()
        self.depth: set[str] = set()
        self.klines: dict[int, set[str]] = {}
        # Trade symbols whose pushes carry `ty` (a subscribe with includeTy on an equity business).
        self.with_ty: set[str] = set()
        self._ty_streamed: frozenset[str] = frozenset()  # what the hub holds for this connection
        self._handlers = {
            SUB_TRADE: self._sub_trade,
            SUB_DEPTH: self._sub_depth,
            SUB_KLINE: self._sub_kline,
            UNSUB_TRADE: self._unsub_trade,
            UNSUB_DEPTH: self._unsub_depth,
            UNSUB_KLINE: self._unsub_kline,
        }

    def open(self) -> list[Action]:
        out: list[Action] = []
        if self.business == "stock" and self.config.stock_banner:
            out.append(Send(STOCK_BANNER))
        out.append(Send(dict(WELCOME)))
        return out

    def products(self) -> set[str]:
        out = self.trades | self.depth
        for symbols in self.klines.values():
            out |= symbols
        return out

    def channels(self) -> Iterator[tuple[Channel, set[str]]]:
        yield TRADE, self.trades
        yield DEPTH, self.depth
        for ty, symbols in self.klines.items():
            yield kline_channel(ty), symbols

    def hub_channels(self) -> Iterator[tuple[Channel, set[str]]]:
        """What the hub holds for this connection, for cleanup: the channels plus the `ty` subset."""
        yield from self.channels()
        yield TRADE_TY, set(self._ty_streamed)

    def release(self) -> None:
        """Give this connection's products back to the key's budget (the connection is gone)."""
        self.account.products.pop(self.conn_id, None)

    def _sub_trade(self, data: dict[str, Any], trace: str) -> list[Action]:
        symbols = self._codes(data["codes"])
        out = self._subscribe({TRADE: symbols}, SUB_TRADE, trace)
        if self.business in EQUITY_BUSINESSES:
            # includeTy is per subscribe: the symbols it names now do (or do not) get `ty`.
            if data.get("includeTy") is True:
                self.with_ty |= symbols
            else:
                self.with_ty -= symbols
        return self._sync_ty(out)

    def _sync_ty(self, out: list[Action]) -> list[Action]:
        """Keep the `ty` subset within the trade subscriptions; the hub changes go before the ack."""
        self.with_ty &= self.trades
        want = frozenset(s for s in self.with_ty if self._streams(s))
        have = self._ty_streamed
        ty_actions: list[Action] = []
        if want - have:
            ty_actions.append(Subscribe(TRADE_TY, want - have))
        if have - want:
            ty_actions.append(Unsubscribe(TRADE_TY, have - want))
        self._ty_streamed = want
        if not ty_actions:
            return out
        ack = out[-1] if out and isinstance(out[-1], Send) else None
        return [*out[:-1], *ty_actions, ack] if ack is not None else [*out, *ty_actions]

    def _sub_depth(self, data: dict[str, Any], trace: str) -> list[Action]:
        return self._subscribe({DEPTH: self._codes(data["codes"])}, SUB_DEPTH, trace)

    def _sub_kline(self, data: dict[str, Any], trace: str) -> list[Action]:
        wanted: dict[Channel, set[str]] = {}
        for entry in data["arr"]:
            wanted.setdefault(kline_channel(entry["type"]), set()).update(self._codes(entry["codes"]))
        return self._subscribe(wanted, SUB_KLINE, trace)

    def _unsub_trade(self, data: dict[str, Any], trace: str) -> list[Action]:
        codes = data.get("codes")
        out = self._unsubscribe(
            {TRADE: set(self.trades) if codes is None else self._codes(codes)}, UNSUB_TRADE, trace
        )
        return self._sync_ty(out)

    def _unsub_depth(self, data: dict[str, Any], trace: str) -> list[Action]:
        codes = data.get("codes")
        return self._unsubscribe(
            {DEPTH: set(self.depth) if codes is None else self._codes(codes)}, UNSUB_DEPTH, trace
        )

    def _unsub_kline(self, data: dict[str, Any], trace: str) -> list[Action]:
        """No codes = every symbol; klineTypes narrows to those intervals."""
        types = data.get("klineTypes")
        tys = set(self.klines) if types is None else {int(t) for t in str(types).split(",") if t.strip()}
        codes = data.get("codes")
        drop: dict[Channel, set[str]] = {}
        for ty in tys:
            held = self.klines.get(ty, set())
            drop[kline_channel(ty)] = set(held) if codes is None else self._codes(codes)
        return self._unsubscribe(drop, UNSUB_KLINE, trace)

    def _codes(self, codes: str) -> set[str]:
        items = [c.strip() for c in codes.split(",")]
        if len(items) > self.config.max_codes_per_request:
            raise RequestError(
                PARAM_ERROR,
                f"Param error：too many codes in one request (limit {self.config.max_codes_per_request})",
            )
        return {c for c in items if c}

    def _held(self, channel: Channel) -> set[str]:
        if channel == TRADE:
            return self.trades
        if channel == DEPTH:
            return self.depth
        return self.klines.setdefault(channel[1], set())

    def _subscribe(self, wanted: dict[Channel, set[str]], code: int, trace: str) -> list[Action]:
        replace = self.config.subscribe_mode == "replace"
        new_sets = {ch: (set(syms) if replace else self._held(ch) | syms) for ch, syms in wanted.items()}
        # Check every bound on the state the request would produce, before changing anything.
        after: set[str] = set()
        for ch, held in self.channels():
            after |= new_sets.get(ch, held)
        for syms in new_sets.values():
            after |= syms
        plan = self.plan
        if len(after) > plan.max_products_per_connection:
            raise RequestError(
                PRODUCTS_PER_CONNECTION,
                f"Single WS subscribe exceeds the limit {plan.max_products_per_connection}",
            )
        others = self.account.products_total(excluding=self.conn_id)
        if plan.max_products and others + len(after) > plan.max_products:
            raise RequestError(
                PRODUCTS_PER_KEY, f"Subscribe products exceed the limit of the key：{plan.max_products}"
            )
        if plan.max_depth_products and DEPTH in new_sets and len(new_sets[DEPTH]) > plan.max_depth_products:
            raise RequestError(DEPTH_LIMIT, f"Depth subscribe exceeds the limit {plan.max_depth_products}")
        if plan.max_kline_subscriptions:
            pairs = sum(len(new_sets.get(ch, held)) for ch, held in self.channels() if ch[0] == "kline")
            pairs += sum(
                len(s) for ch, s in new_sets.items() if ch[0] == "kline" and ch[1] not in self.klines
            )
            if pairs > plan.max_kline_subscriptions:
                raise RequestError(
                    KLINE_LIMIT, f"Kline subscribe exceeds the limit {plan.max_kline_subscriptions}"
                )

        out: list[Action] = []
        for ch, syms in new_sets.items():
            held = self._held(ch)
            added = frozenset(s for s in syms - held if self._streams(s))
            removed = frozenset(s for s in held - syms if self._streams(s))
            held.clear()
            held.update(syms)
            self.subscribed_ever.update((ch, sym) for sym in syms)
            if removed:
                out.append(Unsubscribe(ch, removed))
            if added:
                out.append(Subscribe(ch, added))
        self._prune()
        self.account.products[self.conn_id] = len(after)
        out.append(Send({"code": REQUESTS[code].ack, "trace": trace, "msg": "ok"}))
        return out

    def _unsubscribe(self, drop: dict[Channel, set[str]], code: int, trace: str) -> list[Action]:
        out: list[Action] = []
        for ch, syms in drop.items():
            held = self._held(ch)
            gone = held & syms
            held -= gone
            streamed = frozenset(s for s in gone if self._streams(s))
            if streamed:
                out.append(Unsubscribe(ch, streamed))
        self._prune()
        self.account.products[self.conn_id] = len(self.products())
        if code in self.config.ack_unsubscribe:
            out.append(Send({"code": UNSUB_ACK, "trace": trace, "msg": "ok"}))
        return out

    def _prune(self) -> None:
        for ty in [ty for ty, s in self.klines.items() if not s]:
            del self.klines[ty]


def _request_error(err: schemas.ContractError) -> RequestError:
    v = err.violations[0]
    if v.rule == "unknown-code":
        return RequestError(PARAM_ERROR, "Param error：The code is out of range")
    if v.rule == "required":
        member = v.path.rsplit(".", 1)[-1].split("[", 1)[0] or "code"
        return RequestError(PARAM_LOST, f"Param lost：{member}")
    return RequestError(PARAM_ERROR, f"Param error：{v.path} {v.message}"[:300])
