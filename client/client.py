"""The asyncio shell of the reference client: connect, read, write, sleep.

Every protocol decision (what to send and when, what a frame means, how long to wait before the next
attempt) is the core's (core.py); this module runs one connection at a time, feeds the core what
happened and when, and hands events to the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

from .config import ClientConfig
from .connection import Connection, LostBeforeHandshake, open_connection
from .core import ClientCore
from .errors import InfowayError
from .events import Resubscribed, ServerError
from .masking import MaskKeys, mask_text
from .policy import PROTOCOL, REFUSED, TIMEOUT, UNREACHABLE, Outcome
from .queue import EventQueue
from .rest import batch_kline, rest_base
from .subscriptions import DEPTH, TRADE, kline_channel

log = logging.getLogger("infoway.client")
# A child of websockets.client, so whoever configures websockets' logging configures this one too. It
# logs the request line (the key is in its query) at debug level: masked, as everywhere else.
ws_log = logging.getLogger("websockets.client.infoway")
ws_log.addFilter(MaskKeys())

Callback = Callable[[Any], Awaitable[None] | None]


def _codes(codes: str | Iterable[str]) -> list[str]:
    items = codes.split(",") if isinstance(codes, str) else list(codes)
    return [c.strip() for c in items if c and c.strip()]


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _build_url(url: str | None, api_key: str | None, business: str, host: str, secure: bool) -> str:
    if url is None:
        if not api_key:
            raise ValueError("give a URL or an api_key")
        return f"{'wss' if secure else 'ws'}://{host}/ws?business={business}&apikey={api_key}"
    if api_key:
        u = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(u.query).items()}
        query["apikey"] = api_key
        url = u._replace(query=urlencode(query)).geturl()
    return url


class _Waker:
    """One sleeper woken early by whoever has news (a subscribe, a lost connection, close())."""

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None
        self._pending = False

    def wake(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)
        else:
            self._pending = True

    async def sleep(self, timeout: float | None) -> None:
        if self._pending:
            self._pending = False
            return
        loop = asyncio.get_running_loop()
        fut = self._fut = loop.create_future()
        timer = None if timeout is None else loop.call_later(max(0.0, timeout), self.wake)
        try:
            await fut
        finally:
            self._fut = None
            self._pending = False
            if timer is not None:
                timer.cancel()


class InfowayClient:
    """A client that keeps an Infoway stream alive.

        async with InfowayClient("wss://data.infoway.io/ws?business=crypto&apikey=KEY") as client:
            await client.subscribe_trades("BTCUSDT,ETHUSDT")
            async for event in client:
                ...

    or `InfowayClient(api_key=KEY, business="crypto")`. Pass `on_event=callback` to get events by callback
    instead of iteration: a plain function is called as frames are read; a coroutine function is awaited
    in order from a task of its own. `async for` raises the error that stopped the client (AuthError,
    GaveUp); `await client.wait_closed()` does the same for callback users.
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
        self.url = _build_url(url, api_key, business, host, secure)
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.url).query).items()}
        self.business = query.get("business", business)
        self.api_key = query.get("apikey") or query.get("apiKey") or api_key or ""
        self.display_url = mask_text(self.url, self.api_key)
        try:
            self._uri = parse_uri(self.url)
        except InvalidURI as e:
            raise ValueError(f"not a WebSocket URL (ws:// or wss://): {self.display_url}: {e.msg}") from None
        self.core = ClientCore(self.config, url=self.display_url)
        cfg = self.config
        self.queue = EventQueue(cfg.queue_size, cfg.queue_policy)
        self.on_event = on_event
        self._async_callback = on_event is not None and (
            inspect.iscoroutinefunction(on_event) or inspect.iscoroutinefunction(type(on_event).__call__)
        )
        self._inline = on_event is not None and not self._async_callback
        self.connected = asyncio.Event()
        self.callback_errors = 0
        self._conn: Connection | None = None
        self._open_now = self._open_max = 0
        self._waker = _Waker()  # the session loop: a subscribe, a lost connection, a fatal error, close()
        self._sleeper = _Waker()  # the wait between attempts: only close() cuts it short
        self._runner: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._fatal: BaseException | None = None
        self._bg: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"InfowayClient({self.display_url!r})"

    # The core's state, where the previous API had it.
    @property
    def book(self) -> Any:
        return self.core.book

    @property
    def pacer(self) -> Any:
        return self.core.pacer

    @property
    def counts(self) -> dict[str, int]:
        return self.core.counts

    @property
    def gaps(self) -> list[Any]:
        return self.core.gaps

    @property
    def reconnects(self) -> int:
        return self.core.reconnects

    # -- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> InfowayClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="infoway-client")
            if self._async_callback:
                self._dispatcher = asyncio.create_task(self._dispatch(), name="infoway-client-events")

    async def close(self) -> None:
        self._closing = True
        self._waker.wake()
        self._sleeper.wake()
        conn = self._conn
        if conn is not None:
            # Read again if back-pressure had paused reading: the server's answer to our close frame
            # must get through, or the socket lingers (and the server keeps writing into it) for the
            # whole close timeout. What arrives meanwhile is not delivered: close() ends delivery.
            conn.resume()
            await conn.close()
        for task in (self._runner, self._dispatcher, *self._bg):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.queue.close(self._fatal)

    async def wait_closed(self) -> None:
        """Until the client stops: returns after close(), raises the error that stopped it otherwise."""
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._runner)
        if self._fatal is not None:
            raise self._fatal

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.queue.events()

    async def __anext__(self) -> Any:
        return await self.queue.get()

    def stats(self) -> dict[str, Any]:
        core = self.core
        last = core.last_frame_at
        return {
            "messages": dict(core.counts),
            "bad_frames": core.counts["bad"],
            "callback_errors": self.callback_errors,
            "reconnects": core.reconnects,
            "connect_attempts": core.attempts,
            "connections_open": self._open_now,
            "connections_open_max": self._open_max,
            "last_message_age_s": None if last is None else time.monotonic() - last,
            "queue_depth": len(self.queue),
            "dropped": self.queue.dropped,
            "pacer_budget_per_window": core.pacer.budget,
        }

    # -- subscriptions ---------------------------------------------------------------------------------

    async def subscribe_trades(self, codes: str | Iterable[str]) -> None:
        self._change(self.core.subscribe, TRADE, _codes(codes))

    async def subscribe_depth(self, codes: str | Iterable[str]) -> None:
        self._change(self.core.subscribe, DEPTH, _codes(codes))

    async def subscribe_klines(self, codes: str | Iterable[str], types: Iterable[int] = (1,)) -> None:
        types = [int(ty) for ty in types]
        for ty in types:
            if not 1 <= ty <= 12:
                raise ValueError(f"kline type {ty} is not within 1..12")
        for ty in types:
            self._change(self.core.subscribe, kline_channel(ty), _codes(codes))

    async def unsubscribe_trades(self, codes: str | Iterable[str] | None = None) -> None:
        self._change(self.core.unsubscribe, TRADE, None if codes is None else _codes(codes))

    async def unsubscribe_depth(self, codes: str | Iterable[str] | None = None) -> None:
        self._change(self.core.unsubscribe, DEPTH, None if codes is None else _codes(codes))

    async def unsubscribe_klines(
        self, codes: str | Iterable[str] | None = None, types: Iterable[int] = (1,)
    ) -> None:
        for ty in types:
            self._change(
                self.core.unsubscribe, kline_channel(int(ty)), None if codes is None else _codes(codes)
            )

    def _change(self, op: Callable[[str, Any], None], channel: str, symbols: Any) -> None:
        op(channel, symbols)
        self._waker.wake()  # the session loop sends what the core now holds

    # -- the reconnect loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                outcome = await self._session()
                if self._closing:
                    break
                if self._fatal is not None:
                    raise self._fatal
                delay = self.core.closed(outcome, _wall_ms())
                self._flush_notices()
                if delay is None:
                    raise self.core.fatal or InfowayError(outcome.reason)
                await self._sleeper.sleep(delay)
        except InfowayError as e:
            self._fatal = e
        except Exception as e:  # a bug: it must stop the stream loudly, never end it quietly
            log.error("the client stopped on an internal error", exc_info=True)
            self._fatal = e
        finally:
            self.queue.close(self._fatal)

    async def _session(self) -> Outcome:
        """One attempt: connect, then drive the session until it ends; how it ended."""
        core = self.core
        core.connecting(time.monotonic())
        try:
            conn = await open_connection(self._uri, self._new_connection, self.config.open_timeout)
        except Exception as e:
            return self._attempt_failed(e)
        self._conn = conn
        core.opened(time.monotonic(), _wall_ms())
        self.connected.set()
        self._flush_notices()
        conn.release()  # frames that came with the handshake answer, now that the core is open
        reason = None
        try:
            reason = await self._drive(conn)
        finally:
            self._conn = None
            self.connected.clear()
            conn.abort()  # the session is over whichever way it ended; never leak the socket
        return conn.outcome(time.monotonic(), reason)

    def _new_connection(self) -> Connection:
        cfg = self.config
        return Connection(
            self._uri,
            self._on_messages,
            self._on_start,
            self._on_end,
            max_size=cfg.max_message_size,
            max_fragments=cfg.max_fragments,
            logger=ws_log,
        )

    def _attempt_failed(self, e: Exception) -> Outcome:
        now = time.monotonic()
        if isinstance(e, InvalidStatus):
            status = e.response.status_code
            body = e.response.body.decode("utf-8", "replace").strip() if e.response.body else ""
            reason = mask_text(f"handshake refused: HTTP {status} {body}".strip(), self.api_key)
            return Outcome(REFUSED, reason, now, status)
        if isinstance(e, TimeoutError):
            return Outcome(TIMEOUT, f"no handshake within {self.config.open_timeout}s", now)
        kind = PROTOCOL if isinstance(e, InvalidHandshake | ssl.SSLError) else UNREACHABLE
        if kind == UNREACHABLE and not isinstance(e, OSError | LostBeforeHandshake):
            raise e  # not a network condition: a bug, reported by _run
        return Outcome(kind, mask_text(f"connect failed: {type(e).__name__}: {e}", self.api_key), now)

    async def _drive(self, conn: Connection) -> str | None:
        """Write what the core lets out, sleep until its next deadline or news, run its timers."""
        core = self.core
        while not conn.ended.done() and not self._closing and self._fatal is None:
            now = time.monotonic()
            reason = core.check(now)
            if reason is not None:
                log.warning("%s; reconnecting", reason)
                conn.abort()
                return reason
            frames = core.frames_to_send(now)
            if frames:
                conn.send_text(frames)
            self._flush_notices()
            deadline = core.deadline()
            await self._waker.sleep(None if deadline is None else deadline - time.monotonic())
        return None

    def _on_start(self) -> None:
        self._open_now += 1
        self._open_max = max(self._open_max, self._open_now)

    def _on_end(self) -> None:
        self._open_now -= 1
        self._waker.wake()

    # -- events ------------------------------------------------------------------------------------------

    def _on_messages(self, messages: list[Any], binary: bool) -> None:
        """From the transport's read callback: decode one read's frames and hand them over at once."""
        conn = self._conn
        if self._closing:
            return
        try:
            now = time.monotonic()
            events = (
                self.core.receive_binary(messages[0], now) if binary else self.core.receive(messages, now)
            )
            self._flush_notices()
            if not events:
                return
            if self._inline:
                self._call_each(events)
            elif not self.queue.put_many(events) and conn is not None:
                conn.pause()  # back-pressure: the consumer is behind, stop reading the socket
                self.queue.when_room(conn.resume)
        except Exception as e:  # a bug in the core: stop loudly, never end the stream quietly
            self._fatal = e
            if conn is not None:
                conn.abort()
            self._waker.wake()

    def _call_each(self, events: list[Any]) -> None:
        callback = self.on_event
        for ev in events:
            try:
                result = callback(ev)  # type: ignore[misc]
                if result is not None and inspect.isawaitable(result):
                    self._background(result)
            except Exception:
                self._callback_failed(ev)

    def _callback_failed(self, ev: Any) -> None:
        # The user's handler failing on one event must not end the feed: it is logged and counted.
        self.callback_errors += 1
        log.exception("on_event failed on %r (%d failures so far)", ev, self.callback_errors)

    async def _dispatch(self) -> None:
        """Awaits a coroutine on_event for every event, in order (back-pressure through the queue)."""
        with contextlib.suppress(InfowayError):
            async for ev in self.queue.events():
                try:
                    await self.on_event(ev)  # type: ignore[misc]
                except Exception:
                    self._callback_failed(ev)

    def _flush_notices(self) -> None:
        for ev in self.core.take_notices():
            self._deliver_notice(ev)
            if type(ev) is Resubscribed and self.config.backfill_klines:
                self._background(self._backfill(self.core.backfill_requests(ev.gaps)))

    def _background(self, aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _backfill(self, requests: list[tuple[int, str, int, int | None]]) -> None:
        """Closed candles the drop made us miss, merged so no candle is delivered twice."""
        base = self.config.rest_url or rest_base(self.url)
        for ty, symbol, count, seen in requests:
            try:
                rows = await batch_kline(base, self.business, self.api_key, ty, count, symbol)
            except Exception as e:  # a failed backfill is reported, never fatal
                msg = mask_text(f"kline backfill failed for {symbol}: {e}", self.api_key)
                self._deliver_notice(ServerError(0, msg))
                continue
            events = self.core.merge_backfill(ty, symbol, rows, seen)
            if self._inline:
                self._call_each(events)
            else:
                for ev in events:
                    await self.queue.put(ev)

    def _deliver_notice(self, ev: Any) -> None:
        log.info("%s", ev)
        if self._inline:
            self._call_each([ev])
        else:
            self.queue.put_control(ev)
