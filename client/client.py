"""The asyncio shell of the reference client: connect, pace, heartbeat, watch, reconnect, resubscribe.

Protocol decisions live in the pure modules (subscriptions, pacer, backoff, decode); this module only
does I/O and timing around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import websockets
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidStatus

from .backoff import Backoff
from .config import ClientConfig
from .decode import Ack, Text, Welcome, from_obj, text
from .errors import AuthError, GaveUp
from .events import Connected, Depth, Disconnected, Gap, Kline, Resubscribed, ServerError, Trade
from .pacer import Pacer
from .queue import EMPTY, EventQueue
from .rest import batch_kline, rest_base
from .subscriptions import DEPTH, TRADE, SubscriptionBook, kline_channel

log = logging.getLogger("infoway.client")

Callback = Callable[[Any], Awaitable[None] | None]
_PUSH_TYPES = (Trade, Depth, Kline)
_KLINE_PERIOD_S = {1: 60, 2: 300, 3: 900, 4: 1800, 5: 3600, 6: 7200, 7: 14400, 8: 86400, 9: 604800}

_new = object.__new__
_NOT_JSON = object()  # a frame orjson refused: the stock banner, or garbage


def _codes(codes: str | Iterable[str]) -> list[str]:
    items = codes.split(",") if isinstance(codes, str) else list(codes)
    return [c.strip() for c in items if c and c.strip()]


@dataclass
class _Outcome:
    reason: str
    code: int | None = None  # close code, server error code, or HTTP status
    status: int | None = None  # HTTP status when the handshake was refused
    lasted: float = 0.0


class InfowayClient:
    """A client that keeps an Infoway stream alive.

        async with InfowayClient("wss://data.infoway.io/ws?business=crypto&apikey=KEY") as client:
            await client.subscribe_trades("BTCUSDT,ETHUSDT")
            async for event in client:
                ...

    or `InfowayClient(api_key=KEY, business="crypto")`. Pass `on_event=callback` to get events by callback
    instead of iteration.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        business: str = "crypto",
        host: str = "data.infoway.io",
        secure: bool = True,
        config: ClientConfig | None = None,
        on_event: Callback | None = None,
        **settings: Any,
    ) -> None:
        self.config = config or ClientConfig()
        for name, value in settings.items():
            if not hasattr(self.config, name):
                raise TypeError(f"unknown setting {name!r}")
            setattr(self.config, name, value)
        if url is None:
            if not api_key:
                raise ValueError("give a URL or an api_key")
            url = f"{'wss' if secure else 'ws'}://{host}/ws?business={business}&apikey={api_key}"
        elif api_key:
            u = urlsplit(url)
            query = {k: v[-1] for k, v in parse_qs(u.query).items()}
            query["apikey"] = api_key
            url = u._replace(query=urlencode(query)).geturl()
        self.url = url
        query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        self.business = query.get("business", business)
        self.api_key = query.get("apikey") or query.get("apiKey") or api_key or ""
        cfg = self.config
        self.book = SubscriptionBook(max_codes=cfg.max_codes)
        self.pacer = Pacer(cfg.rate_limit, cfg.rate_window, cfg.headroom)
        self.backoff = Backoff(cfg.backoff_base, cfg.backoff_cap, cfg.healthy_after, cfg.long_backoff)
        self.queue = EventQueue(cfg.queue_size, cfg.queue_policy)
        self.on_event = on_event
        self.gaps: list[Gap] = []  # every gap reported so far, first_after filled in as pushes return
        self.counts: dict[str, int] = {
            "trade": 0,
            "depth": 0,
            "kline": 0,
            "error": 0,
            "control": 0,
            "other": 0,
        }
        self.reconnects = 0
        self.last_message_at: float | None = None
        self.connected = asyncio.Event()
        self._ws: Any = None
        self._gen = 0
        self._outbox: deque[dict[str, Any]] = deque()
        self._outbox_ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._fatal: BaseException | None = None
        self._wake = asyncio.Event()
        # channel -> symbol -> market time of the last push (nested so the hot path builds no tuple)
        self._last_push: dict[str, dict[str, int]] = {}
        self._open_gaps: dict[tuple[str, str], int] = {}  # pair -> index in self.gaps
        self._kline_seen: dict[tuple[int, str], int] = {}  # (type, symbol) -> newest candle open time (s)
        self._offline_since: int | None = None
        self._last_error: int | None = None
        self._bg: set[asyncio.Future[Any]] = set()
        # When we sent something the server answers (a heartbeat with ack, a subscribe) and have heard
        # nothing since. Silence only proves a dead peer when it follows such a frame: a quiet server
        # with nothing to answer, or our own pacer holding frames back, is not a dead one.
        self._reply_due: tuple[float, int] | None = None  # (sent at, frames_in at that moment)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> InfowayClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="infoway-client")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
            # A reader blocked on a full queue never sees the server's close frame: without this the
            # socket lingers until garbage collection and the server keeps pushing into it.
            if ws.transport is not None:
                ws.transport.abort()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self.queue.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.queue.events()

    async def __anext__(self) -> Any:
        ev = self.queue.get_nowait()
        if ev is not EMPTY:
            return ev
        try:
            return await self.queue.get()
        except StopAsyncIteration:
            if self._fatal is not None:
                raise self._fatal from None
            raise

    @property
    def frames_in(self) -> int:
        """Every frame received so far; the watchdog samples it instead of reading a clock per frame."""
        return sum(self.counts.values())

    @property
    def stats(self) -> dict[str, Any]:
        age = None if self.last_message_at is None else time.monotonic() - self.last_message_at
        return {
            "messages": dict(self.counts),
            "reconnects": self.reconnects,
            "last_message_age_s": age,
            "queue_depth": len(self.queue),
            "dropped": self.queue.dropped,
            "pacer_budget_per_window": self.pacer.budget,
        }

    # -- subscriptions ---------------------------------------------------------------------------------

    async def subscribe_trades(self, codes: str | Iterable[str]) -> None:
        self._subscribe(TRADE, _codes(codes))

    async def subscribe_depth(self, codes: str | Iterable[str]) -> None:
        self._subscribe(DEPTH, _codes(codes))

    async def subscribe_klines(self, codes: str | Iterable[str], types: Iterable[int] = (1,)) -> None:
        for ty in types:
            if not 1 <= int(ty) <= 12:
                raise ValueError(f"kline type {ty} is not within 1..12")
            self._subscribe(kline_channel(int(ty)), _codes(codes))

    async def unsubscribe_trades(self, codes: str | Iterable[str] | None = None) -> None:
        self._unsubscribe(TRADE, None if codes is None else _codes(codes))

    async def unsubscribe_depth(self, codes: str | Iterable[str] | None = None) -> None:
        self._unsubscribe(DEPTH, None if codes is None else _codes(codes))

    async def unsubscribe_klines(
        self, codes: str | Iterable[str] | None = None, types: Iterable[int] = (1,)
    ) -> None:
        for ty in types:
            self._unsubscribe(kline_channel(int(ty)), None if codes is None else _codes(codes))

    def _subscribe(self, channel: str, symbols: list[str]) -> None:
        new = self.book.add(channel, symbols)
        # Offline, the desired set is replayed on connect; online, only the new symbols go out now.
        if new and self._ws is not None:
            self._outbox.extend(self.book.subscribe_frames(channel, new))
            self._outbox_ready.set()

    def _unsubscribe(self, channel: str, symbols: list[str] | None) -> None:
        gone = self.book.remove(channel, symbols)
        for s in gone:
            self._last_push.get(channel, {}).pop(s, None)
        if gone and self._ws is not None:
            self._outbox.extend(self.book.unsubscribe_frames(channel, None if symbols is None else gone))
            self._outbox_ready.set()

    # -- the reconnect loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                outcome = await self._session()
                if self._closing:
                    break
                delay = self._next_delay(outcome)
                self._emit(Disconnected(outcome.reason, outcome.code, delay))
                limit = self.config.max_attempts
                if limit is not None and self.backoff.failures >= limit:
                    raise GaveUp(f"gave up after {self.backoff.failures} failed attempts: {outcome.reason}")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        except (AuthError, GaveUp) as e:
            self._fatal = e
            self._emit(Disconnected(str(e), getattr(e, "status", None), None))
        finally:
            self.queue.close(self._fatal)

    def _next_delay(self, o: _Outcome) -> float:
        b = self.backoff
        b.session_ended(o.lasted)
        if o.lasted >= self.config.healthy_after:
            self.pacer.recover()
        if o.status == 427 or o.code == 512:
            return b.long()
        if o.status == 429 or o.code == 501:
            self.pacer.slow_down()
            return b.next_delay()
        if o.code == 513 and o.lasted >= self.config.healthy_after:
            # Our heartbeats did not arrive in time; the link itself is fine: come straight back.
            return 0.0
        return b.next_delay()

    async def _session(self) -> _Outcome:
        cfg = self.config
        try:
            ws = await websockets.connect(
                self.url,
                open_timeout=cfg.open_timeout,
                compression=None,
                ping_interval=None,  # liveness is the heartbeat plus our own watchdog
                close_timeout=2,
                max_size=2**22,
            )
        except InvalidStatus as e:
            status = e.response.status_code
            body = e.response.body.decode("utf-8", "replace").strip() if e.response.body else ""
            if status == 401:
                raise AuthError(status, body) from None
            return _Outcome(f"handshake refused: HTTP {status} {body}".strip(), status, status)
        except (OSError, TimeoutError, InvalidHandshake) as e:
            return _Outcome(f"connect failed: {type(e).__name__}: {e}")

        self._gen += 1
        gen = self._gen
        self._ws = ws
        self._last_error = None
        self._reply_due = None
        self.pacer.reset()
        started = time.monotonic()
        self.last_message_at = started
        if self._offline_since is not None:
            self.reconnects += 1
        self._emit(Connected(self.url, self.backoff.failures))
        self.connected.set()
        self._outbox.clear()
        self._outbox.extend(self.book.replay_frames())
        replaying = bool(self._outbox)
        self._outbox_ready.set()
        tasks = [
            asyncio.create_task(self._writer(ws, gen)),
            asyncio.create_task(self._heartbeat()),
        ]
        watchdog = asyncio.create_task(self._watchdog(ws, gen))
        outcome = _Outcome("closed")
        try:
            outcome = await self._reader(ws, gen, replaying)
        finally:
            for t in (*tasks, watchdog):
                t.cancel()
            await asyncio.gather(*tasks, watchdog, return_exceptions=True)
            if watchdog.done() and not watchdog.cancelled() and isinstance(watchdog.result(), str):
                outcome = _Outcome(watchdog.result(), self._last_error)
            self._ws = None
            if ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()  # the session is over whichever way it ended; never leak the socket
            self.connected.clear()
            self.book.forget_connection(gen)
            self._offline_since = int(time.time() * 1000)
        outcome.lasted = time.monotonic() - started
        return outcome

    async def _reader(self, ws: Any, gen: int, replaying: bool) -> _Outcome:
        queue = self.queue
        queue_put = queue.put
        offer = queue.offer
        buffered, maxsize = queue._data, queue.maxsize
        callback = self.on_event
        counts = self.counts
        last_push = self._last_push
        last_trade = last_push.setdefault(TRADE, {})
        last_depth = last_push.setdefault(DEPTH, {})
        open_gaps = self._open_gaps
        recv = ws.recv
        # ws.recv is a thin coroutine around its message assembler's get(); awaiting get() directly
        # saves a coroutine per frame (async for: 0.70 -> 0.75-0.77 of a bare websockets loop). recv's
        # own handling (closed stream, bad messages) is kept below; other versions fall back to recv.
        assembler = getattr(ws, "recv_messages", None)
        get = getattr(assembler, "get", None) or recv
        loads = orjson.loads
        try:
            while True:
                # Bytes, not str: orjson parses them as they are, so websockets need not decode UTF-8.
                try:
                    message = await get(False)
                except EOFError:
                    message = await recv(False)  # the stream ended: raises ConnectionClosed, as recv does
                except ConnectionClosed:
                    raise
                except Exception as e:  # e.g. too many fragments; ws.recv would fail the connection too
                    return _Outcome(f"unreadable message from the server: {e!r}", 1009)
                try:
                    obj = loads(message)
                except orjson.JSONDecodeError:
                    obj = _NOT_JSON
                # Trades dominate the stream: their test is inlined (the same shape test as
                # decode.from_obj, which takes everything else) and their path kept short.
                if (
                    type(obj) is dict
                    and obj.get("code") == 10002
                    and type(raw := obj.get("data")) is dict
                    and "s" in raw
                    and "traceId" not in obj
                ):
                    ev = _new(Trade)  # Trade(raw) without a Python-level __init__ call
                    ev.raw = raw
                    t = Trade
                else:
                    ev = from_obj(obj) if obj is not _NOT_JSON else text(message)
                    t = type(ev)
                if t is Trade:
                    raw = ev.raw
                    counts["trade"] += 1
                    last_trade[raw["s"]] = raw["t"]
                    if open_gaps:
                        self._close_gap((TRADE, raw["s"]), raw["t"])
                    if callback is None:
                        # EventQueue.offer inlined for the one case every policy treats alike: room left.
                        if len(buffered) < maxsize:
                            buffered.append(ev)
                            if queue._getter is not None:
                                queue._wake_getter()
                        elif not offer(ev):
                            await queue_put(ev)
                    else:
                        result = callback(ev)
                        if result is not None and inspect.isawaitable(result):
                            await result
                elif t is Depth or t is Kline:
                    raw = ev.raw
                    if t is Depth:
                        counts["depth"] += 1
                        channel, mt = DEPTH, raw["t"]
                        last_depth[raw["s"]] = mt
                    else:
                        counts["kline"] += 1
                        channel, mt = kline_channel(raw["ty"]), int(raw["t"]) * 1000
                        last_push.setdefault(channel, {})[raw["s"]] = mt
                        key = (raw["ty"], raw["s"])
                        self._kline_seen[key] = max(self._kline_seen.get(key, 0), mt // 1000)
                    if open_gaps:
                        self._close_gap((channel, raw["s"]), mt)
                    if callback is None:
                        if not offer(ev):
                            await queue_put(ev)
                    else:
                        result = callback(ev)
                        if result is not None and inspect.isawaitable(result):
                            await result
                elif t is Ack:
                    counts["control"] += 1
                    if self.book.ack(ev.trace, gen) is not None and replaying and not self.book.awaiting(gen):
                        replaying = False
                        self._resubscribed()
                elif t is ServerError:
                    counts["error"] += 1
                    self._last_error = ev.code
                    self._emit(ev)
                elif t is Welcome or t is Text:
                    counts["control"] += 1
                else:
                    counts["other"] += 1
        except ConnectionClosedOK:
            pass  # the end of the stream, as `async for` would see it
        except ConnectionClosed as e:
            if e.rcvd is not None:
                return _Outcome(
                    f"closed {e.rcvd.code} {e.rcvd.reason}".strip(), self._last_error or e.rcvd.code
                )
            return _Outcome("connection lost without a close frame", self._last_error)
        closed = ws.close_code
        return _Outcome(f"closed {closed} {ws.close_reason or ''}".strip(), self._last_error or closed)

    async def _call(self, ev: Any) -> None:
        result = self.on_event(ev)  # type: ignore[misc]
        if inspect.isawaitable(result):
            await result

    def _emit(self, ev: Any) -> None:
        log.info("%s", ev)
        if self.on_event is not None:
            result = self.on_event(ev)
            if inspect.isawaitable(result):
                self._background(result)
        else:
            self.queue.put_control(ev)

    async def _writer(self, ws: Any, gen: int) -> None:
        """Sends queued requests, never faster than the pacer allows."""
        outbox = self._outbox
        while True:
            while not outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            wait = self.pacer.delay(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)  # the pacer's own schedule, not a wait for an event
                continue
            frame = outbox.popleft()
            trace = self.book.trace("hb" if frame["code"] == 10010 else "req")
            frame = {"code": frame["code"], "trace": trace, **{k: v for k, v in frame.items() if k != "code"}}
            now = time.monotonic()
            needs_ack = frame["code"] in (10000, 10003, 10006)
            if frame["code"] != 10010:
                self.book.sent(trace, frame, now, gen, needs_ack)
            if self._reply_due is None and (needs_ack or frame.get("ack") == 1):
                self._reply_due = (now, self.frames_in)
            await ws.send(orjson.dumps(frame).decode())
            # Stamped once the frame is handed to the socket: a send held up by back-pressure reaches
            # the server later than it left the queue, and the pacer must count it from then.
            self.pacer.record(time.monotonic())

    async def _heartbeat(self) -> None:
        cfg = self.config
        while True:
            frame: dict[str, Any] = {"code": 10010}
            if cfg.heartbeat_ack:
                frame["ack"] = 1
            # Heartbeats jump the queue: a resubscription backlog must never starve them.
            self._outbox.appendleft(frame)
            self._outbox_ready.set()
            await asyncio.sleep(cfg.heartbeat_interval)  # the heartbeat cadence itself

    async def _watchdog(self, ws: Any, gen: int) -> str | None:
        cfg = self.config
        dead_after = cfg.dead_after()
        idle_after = cfg.data_idle_timeout
        tick = min(dead_after, idle_after or dead_after, cfg.ack_timeout) / 4
        last_push_seen = time.monotonic()
        pushes = -1
        frames = self.frames_in
        while True:
            await asyncio.sleep(tick)  # the watchdog's sampling period
            now = time.monotonic()
            if self.frames_in != frames:
                frames = self.frames_in
                self.last_message_at = now  # to the watchdog's resolution, which is all it needs
            due = self._reply_due
            if due is not None and frames != due[1]:
                due = self._reply_due = None  # something arrived after that frame went out
            silent = now - (self.last_message_at or now)
            if (due is not None and now - due[0] >= dead_after) or (
                not cfg.heartbeat_ack and silent >= dead_after
            ):
                reason = f"dead peer: no frame for {silent:.1f}s"
                break
            total = self.counts["trade"] + self.counts["depth"] + self.counts["kline"]
            if total != pushes:
                pushes, last_push_seen = total, now
            elif idle_after and self.book.pairs() and now - last_push_seen >= idle_after:
                reason = f"data idle: no push for {now - last_push_seen:.1f}s"
                break
            for p in self.book.overdue(now, cfg.ack_timeout):
                self.book.pending.pop(p.trace, None)
                if p.attempts < cfg.max_request_attempts:
                    frame = {k: v for k, v in p.frame.items() if k != "trace"}
                    self._outbox.append(frame)
                    self._outbox_ready.set()
                else:
                    self._emit(ServerError(0, f"no ack for {p.frame} after {p.attempts} attempts", p.trace))
        log.warning("%s; reconnecting", reason)
        # Abort rather than close: a stalled peer would never answer the close handshake.
        if ws.transport is not None:
            ws.transport.abort()
        return reason

    def _background(self, aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- gaps ------------------------------------------------------------------------------------------

    def _resubscribed(self) -> None:
        if self._offline_since is None:
            return
        now = int(time.time() * 1000)
        gaps = []
        for pair in sorted(self.book.pairs()):
            last = self._last_push.get(pair[0], {}).get(pair[1])
            gap = Gap(pair[0], pair[1], self._offline_since, now, last)
            self._open_gaps[pair] = len(self.gaps)
            self.gaps.append(gap)
            gaps.append(gap)
        self._emit(Resubscribed(gaps))
        if self.config.backfill_klines:
            self._background(self._backfill(gaps))

    def _close_gap(self, pair: tuple[str, str], market_t: int) -> None:
        i = self._open_gaps.pop(pair, None)
        if i is not None:
            self.gaps[i] = replace(self.gaps[i], first_after=market_t)

    async def _backfill(self, gaps: list[Gap]) -> None:
        """Closed candles the drop made us miss, merged so no candle is delivered twice."""
        base = self.config.rest_url or rest_base(self.url)
        for gap in gaps:
            if not gap.channel.startswith("kline:"):
                continue
            ty = int(gap.channel.split(":")[1])
            period = _KLINE_PERIOD_S.get(ty, 86400 * 31)
            seen = self._kline_seen.get((ty, gap.symbol))
            missed = (gap.offline_to - gap.offline_from) // 1000 // period + 2
            try:
                rows = await batch_kline(base, self.business, self.api_key, ty, missed, gap.symbol)
            except Exception as e:  # a failed backfill is reported, never fatal
                self._emit(ServerError(0, f"kline backfill failed for {gap.symbol}: {e}"))
                continue
            for row in reversed(rows):  # oldest first
                t = int(row["t"])
                if seen is not None and t < seen:
                    continue
                raw = {"s": gap.symbol, "ty": ty, **row}
                self._kline_seen[(ty, gap.symbol)] = max(self._kline_seen.get((ty, gap.symbol), 0), t)
                ev = Kline(raw, backfill=True)
                if self.on_event is None:
                    await self.queue.put(ev)
                else:
                    await self._call(ev)
