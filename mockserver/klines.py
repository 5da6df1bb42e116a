"""Candles for the 12 kline types, aggregated from trades with exact integer arithmetic.

Only the 1-minute candle is touched per trade; each higher type is folded from closed minutes, so the
per-trade cost stays flat however many types exist. Every period boundary of every type is a minute
boundary, which is what makes that folding exact.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

MINUTE_MS = 60_000
# Fixed-length periods in minutes; types 8..12 are calendar periods (UTC).
_FIXED_MINUTES = {1: 1, 2: 5, 3: 15, 4: 30, 5: 60, 6: 120, 7: 240, 8: 1440, 9: 10080}
KLINE_TYPES = tuple(range(1, 13))
_WEEK_OFFSET_MS = 3 * 86_400_000  # 1970-01-01 was a Thursday; weeks start on Monday 00:00 UTC


def period_start(ty: int, t_ms: int) -> int:
    if ty <= 8:
        size = _FIXED_MINUTES[ty] * MINUTE_MS
        return t_ms - t_ms % size
    if ty == 9:
        size = 7 * 86_400_000
        return t_ms - (t_ms + _WEEK_OFFSET_MS) % size
    d = datetime.fromtimestamp(t_ms / 1000, UTC)
    month = d.month if ty == 10 else (d.month - 1) // 3 * 3 + 1 if ty == 11 else 1
    return int(datetime(d.year, month, 1, tzinfo=UTC).timestamp() * 1000)


def period_end(ty: int, start_ms: int) -> int:
    """The first instant after the period that opens at start_ms."""
    if ty <= 9:
        return start_ms + _FIXED_MINUTES[ty] * MINUTE_MS
    d = datetime.fromtimestamp(start_ms / 1000, UTC)
    months = {10: 1, 11: 3, 12: 12}[ty]
    m = d.month - 1 + months
    return int(datetime(d.year + m // 12, m % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def previous_start(ty: int, start_ms: int) -> int:
    return period_start(ty, start_ms - 1)


class Candle:
    """OHLC in price units (10**-price_decimals), v in volume units, vw in price*volume units."""

    __slots__ = ("c", "end", "h", "l", "n", "o", "start", "v", "vw")

    def __init__(
        self, start: int, end: int, o: int, h: int, low: int, c: int, v: int, vw: int, n: int
    ) -> None:
        self.start, self.end = start, end
        self.o, self.h, self.l, self.c = o, h, low, c
        self.v, self.vw, self.n = v, vw, n

    @classmethod
    def from_trade(cls, start: int, end: int, p: int, v: int) -> Candle:
        return cls(start, end, p, p, p, p, v, p * v, 1)

    def add(self, p: int, v: int) -> None:
        if p > self.h:
            self.h = p
        elif p < self.l:
            self.l = p
        self.c = p
        self.v += v
        self.vw += p * v
        self.n += 1

    def merged(self, other: Candle) -> Candle:
        """This candle extended by a later one (same period)."""
        return Candle(
            self.start,
            self.end,
            self.o,
            max(self.h, other.h),
            min(self.l, other.l),
            other.c,
            self.v + other.v,
            self.vw + other.vw,
            self.n + other.n,
        )

    def copy(self) -> Candle:
        return Candle(self.start, self.end, self.o, self.h, self.l, self.c, self.v, self.vw, self.n)

    def __repr__(self) -> str:
        return f"Candle({self.start}, o={self.o} h={self.h} l={self.l} c={self.c} v={self.v} n={self.n})"


class KlineBook:
    """Candles of all types for one symbol: the running minute, running higher types, closed history."""

    __slots__ = ("closed", "max_closed", "minute", "running")

    def __init__(self, max_closed: int = 1000) -> None:
        self.max_closed = max_closed
        self.minute: Candle | None = None
        self.running: dict[int, Candle] = {}  # types 2..12: folded from closed minutes
        self.closed: dict[int, deque[Candle]] = {ty: deque(maxlen=max_closed) for ty in KLINE_TYPES}

    def add_trade(self, t_ms: int, p: int, v: int) -> None:
        m = self.minute
        if m is not None and t_ms < m.end:
            m.add(p, v)
            return
        if m is not None:
            self._close_minute(m)
        start = t_ms - t_ms % MINUTE_MS
        self.minute = Candle.from_trade(start, start + MINUTE_MS, p, v)

    def _close_minute(self, m: Candle) -> None:
        self.closed[1].append(m)
        for ty in KLINE_TYPES[1:]:
            run = self.running.get(ty)
            if run is not None and m.start < run.end:
                self.running[ty] = run.merged(m)
                continue
            if run is not None:
                self.closed[ty].append(run)
            start = period_start(ty, m.start)
            c = m.copy()
            c.start, c.end = start, period_end(ty, start)
            self.running[ty] = c
        self.minute = None

    def roll(self, now_ms: int) -> None:
        """Close whatever has ended by now_ms, so queries never show a finished candle as running."""
        m = self.minute
        if m is not None and now_ms >= m.end:
            self._close_minute(m)
        for ty, run in list(self.running.items()):
            if now_ms >= run.end:
                self.closed[ty].append(run)
                del self.running[ty]

    def current(self, ty: int, now_ms: int) -> Candle | None:
        """The candle in progress for type ty at now_ms (after roll), or None if it has no trade yet."""
        m = self.minute
        if ty == 1:
            return m
        run = self.running.get(ty)
        if run is None:
            if m is None:
                return None
            c = m.copy()
            c.start = period_start(ty, m.start)
            c.end = period_end(ty, c.start)
            return c
        return run.merged(m) if m is not None and m.start < run.end else run

    def last_closed(self, ty: int) -> Candle | None:
        d = self.closed[ty]
        return d[-1] if d else None
