"""The market pump: the only thing that advances the market, and the source of every push.

Pushes follow market time, not the event loop's: depth and kline snapshots fall on a fixed grid of market
times (every depth_interval / kline_interval of wall time, scaled by the clock's speed), and each grid
point sees exactly the trades up to it. So the stream is a function of (seed, start, speed, subscriptions)
and two runs with the same `--start` give the same frames, whatever the loop's timing.

A step that raises is logged and counted and the next one goes on: the pump cannot die.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from infoway_mock.schemas.codes import PUSH_DEPTH, PUSH_KLINE, PUSH_NEWS

from .clock import Clock
from .hub import Hub
from .market import Market
from .metrics import Metrics
from .outbox import Outbox

log = logging.getLogger("infoway.mock")

MAX_GRID_STEPS = 100  # grid points one step catches up on; past that the pump skips ahead (counted)


class Pump:
    def __init__(
        self,
        market: Market,
        clock: Clock,
        hub: Hub[Any],
        outbox: Outbox,
        metrics: Metrics,
        *,
        interval: float,
        depth_interval: float,
        kline_interval: float,
        is_open: Callable[[str, int], bool] = lambda symbol, t: True,
        backlogged: Callable[[], bool] = lambda: False,
        news: Callable[[int, int, str], dict[str, Any]] | None = None,
        news_interval: float = 5.0,
    ) -> None:
        self.market = market
        self.clock = clock
        self.hub = hub
        self.outbox = outbox
        self.metrics = metrics
        self.is_open = is_open
        self.backlogged = backlogged  # benchmarks only: hold while clients are behind (pump_high_water)
        self.news = news  # (index, market ms, lang) -> a news item; None = no news wire
        self.set_intervals(interval, depth_interval, kline_interval, news_interval)
        self.start = start = market.now_ms
        self.next_depth = start + self.depth_step
        self.next_kline = start + self.kline_step
        self.next_news = start + self.news_step

    def set_intervals(
        self,
        interval: float,
        depth_interval: float,
        kline_interval: float,
        news_interval: float | None = None,
    ) -> None:
        """Seconds of wall time; snapshots and news fall on a grid of market time scaled to them."""
        self.interval = interval
        speed = self.clock.speed
        self.depth_step = max(1, round(depth_interval * 1000 * speed))
        self.kline_step = max(1, round(kline_interval * 1000 * speed))
        if news_interval is not None:
            self.news_step = max(1, round(news_interval * 1000 * speed))

    async def run(self) -> None:
        # Steps on a fixed grid of ticks, not a fixed pause after each step: while steps fit in the
        # interval, every connection gets its frames on the same cadence, one write per tick. A step that
        # overruns skips the ticks it missed (counted: infoway_pump_ticks_missed_total) instead of running
        # the next ones back to back, which would only cut the same frames into more, smaller writes; so
        # an overloaded process writes less often, in bigger batches, and each frame costs it less CPU
        # (and arrives later). Compare processes' cost per frame only at the same cadence.
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while True:
            if not self.backlogged():
                try:
                    self.step(self.clock.market_ms())
                except Exception:
                    self.metrics.pump_errors += 1
                    log.exception("market pump step failed; the pump goes on")
            tick += self.interval
            now = loop.time()
            if tick <= now:
                missed = math.ceil((now - tick) / self.interval + 1e-9)
                self.metrics.pump_ticks_missed += missed
                tick += missed * self.interval
            await asyncio.sleep(tick - now)  # the pump's own cadence, not a wait for an event

    def step(self, target_ms: int) -> None:
        """Advance the market to target_ms, pushing everything due, in market-time order."""
        if target_ms <= self.market.now_ms:
            return
        self._skip_ahead(target_ms)
        outbox = self.outbox
        outbox.begin()
        try:
            while True:
                t = min(self.next_depth, self.next_kline, self.next_news)
                if t > target_ms:
                    break
                self._trades(t)
                if t == self.next_depth:
                    self._depth(t)
                    self.next_depth += self.depth_step
                if t == self.next_kline:
                    self._klines(t)
                    self.next_kline += self.kline_step
                if t == self.next_news:
                    self._news(t)
                    self.next_news += self.news_step
            self._trades(target_ms)
        finally:
            outbox.end()

    def _skip_ahead(self, target_ms: int) -> None:
        """After a long pause (a stopped process, a blocked loop) catch up on at most MAX_GRID_STEPS
        snapshots per kind instead of flooding every client with stale ones."""
        for name, step in (
            ("next_depth", self.depth_step),
            ("next_kline", self.kline_step),
            ("next_news", self.news_step),
        ):
            due = getattr(self, name)
            behind = (target_ms - due) // step
            if behind > MAX_GRID_STEPS:
                skipped = behind - MAX_GRID_STEPS
                setattr(self, name, due + skipped * step)
                subs = {"next_depth": self.hub.depth, "next_kline": self.hub.klines}.get(name, self.hub.news)
                self.metrics.pushes_skipped += skipped * len(subs)

    def _trades(self, t: int) -> None:
        trades = self.market.advance(t)
        if trades:
            self.outbox.push_trades(trades, self.hub.trades, self.hub.trades_ty)

    def _depth(self, t: int) -> None:
        market, push, is_open = self.market, self.outbox.push, self.is_open
        for symbol, subs in list(self.hub.depth.items()):
            if is_open(symbol, t):
                push(subs, PUSH_DEPTH, market.depth(symbol, t), len(subs))

    def _news(self, t: int) -> None:
        if self.news is None or not self.hub.news:
            return
        index = (t - self.start) // self.news_step
        for lang, subs in list(self.hub.news.items()):
            self.outbox.push(subs, PUSH_NEWS, self.news(index, t, lang), len(subs))

    def _klines(self, t: int) -> None:
        market, push, is_open = self.market, self.outbox.push, self.is_open
        for (symbol, ty), subs in list(self.hub.klines.items()):
            if is_open(symbol, t):
                push(subs, PUSH_KLINE, market.kline(symbol, ty, t), len(subs))
