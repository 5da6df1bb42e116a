"""The simulated market: deterministic for a seed, driven by explicit market time (epoch ms).

Each symbol has its own random stream seeded from (seed, symbol), so its trades are a pure function of
(seed, symbol, start_ms, trade_rate, market_hours): they do not depend on which other symbols exist, on how
often `advance` is called, or on who is subscribed. No wall clock and no I/O in here.

Microstructure: a latent fair price follows a log-normal random walk (one step per trade, scaled to the
instrument's annual volatility). The order book stands around the fair price; every trade hits the book
that stood before it (a buy lifts the ask, a sell hits the bid, now and then a print inside a wide
spread), and then the book moves to the new fair price. So a client holding the last depth push sees each
trade at or inside its touch, and sees the book move with the trades, at the instrument's volatility.

Trading sessions (trading_hours.py): with market_hours "real" a closed symbol does not trade; its walk
pauses and resumes at the next opening. Every symbol has a last trade from the start (an opening trade at
the start, or at the close of the last session when the market starts closed), so a snapshot is never empty.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from .catalogue import Catalogue, Instrument
from .klines import KLINE_TYPES, Candle, KlineBook, period_end, period_start, previous_start
from .trading_hours import ALWAYS, Schedule, check_mode

_YEAR_S = 365.0 * 86400.0

_TAU = 2.0 * math.pi
_INF = math.inf
# Share of trades that print strictly inside a spread wider than one tick (hidden / midpoint liquidity).
_INSIDE_SHARE = 0.1
# Quoted spread in ticks after each trade: one tick most of the time, as on liquid books.
_SPREAD_1, _SPREAD_2 = 0.6, 0.9  # P(1 tick), P(<= 2 ticks); else 3 ticks


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process (Python's hash() of str is salted per process)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def fmt(n: int, decimals: int) -> str:
    """An integer count of 10**-decimals units as a decimal string."""
    if decimals == 0:
        return str(n)
    sign = "-" if n < 0 else ""
    return sign + _FORMATS[decimals] % divmod(abs(n), 10**decimals)


# "%d.%0Nd" beats an f-string with a nested width on the per-trade path.
_FORMATS = {d: f"%d.%0{d}d" for d in range(1, 19)}


# A trade is the `data` dict of its 10002 push (s, p, v, vw, t, td), built once by the market and
# shared read-only by every consumer: a class with a constructor cost more than the rest of a trade.
Trade = dict[str, Any]


class _Symbol:
    __slots__ = (
        "ask",
        "bid",
        "book",
        "inst",
        "last",
        "log_price",
        "mean_gap_ms",
        "next_t",
        "open_until",
        "p_i",
        "rng",
        "schedule",
        "sigma_ms",
        "vd",
    )

    def __init__(
        self, inst: Instrument, seed: int, start_ms: int, rate: float, max_closed: int, schedule: Schedule
    ) -> None:
        self.inst = inst
        self.rng = random.Random(stable_seed(seed, inst.symbol))
        self.mean_gap_ms = 1000.0 / (rate * inst.weight) if rate > 0 else math.inf
        # Log-price volatility per sqrt(ms) of market time.
        self.sigma_ms = inst.volatility / math.sqrt(_YEAR_S * 1000.0)
        self.log_price = math.log(inst.price)
        self.p_i = _on_grid(inst.price, inst)
        # The opening book: the opening price on the bid, the spread drawn as after every trade.
        self.bid = self.p_i
        self.ask = self.p_i + inst.tick * _spread(self.rng.random())
        self.schedule = schedule
        self.open_until = -math.inf  # unknown: the first trade time is checked against the sessions
        self.book = KlineBook(max_closed)
        self.vd = 10**inst.volume_decimals
        self.next_t = start_ms + self.rng.expovariate(1.0) * self.mean_gap_ms
        self.last: Trade = self._opening_trade(start_ms)

    def _opening_trade(self, start_ms: int) -> Trade:
        """The last trade before the stream starts: at the start, or at the last close if closed then.

        Not pushed and not in the candles: the synthetic history already closes at this price."""
        inst = self.inst
        t = start_ms
        if not self.schedule.is_open(start_ms):
            close = self.schedule.last_close(start_ms)
            t = int(close) - 1 if close is not None else start_ms
        pd, vd = inst.price_decimals, inst.volume_decimals
        v_i = max(1, int(inst.typical_volume * self.vd))
        return {
            "s": inst.symbol,
            "p": fmt(self.p_i, pd),
            "v": fmt(v_i, vd),
            "vw": fmt(self.p_i * v_i, pd + vd),
            "t": t,
            "td": 0,
        }

    def to_session(self, t: float) -> float:
        """The first trade time at or after t inside a session: t itself when open, else one fresh gap
        after the next opening. Sets open_until. Draws from the symbol's stream only when t crosses a
        session boundary, so the stream stays a pure function of market time."""
        schedule, rng, gap = self.schedule, self.rng, self.mean_gap_ms
        while True:
            is_open, change = schedule.state_at(int(t))
            if is_open:
                self.open_until = change
                return t
            if change == _INF:
                self.open_until = _INF
                return _INF
            t = change - math.log(1.0 - rng.random()) * gap


def _spread(u: float) -> int:
    return 1 if u < _SPREAD_1 else 2 if u < _SPREAD_2 else 3


def _on_grid(price: float, inst: Instrument) -> int:
    units = price * 10**inst.price_decimals
    return max(inst.tick, round(units / inst.tick) * inst.tick)


class Market:
    def __init__(
        self,
        seed: int,
        catalogue: Catalogue,
        *,
        start_ms: int,
        trade_rate: float = 2.0,
        depth_levels: int = 5,
        max_trades_per_advance: int = 10_000,
        max_closed_candles: int = 1000,
        history_bars: int = 500,
        market_hours: str = "always",
    ) -> None:
        self.seed = seed
        self.catalogue = catalogue
        self.start_ms = start_ms
        self.trade_rate = trade_rate
        self.depth_levels = depth_levels
        self.max_trades_per_advance = max_trades_per_advance
        self.history_bars = history_bars
        self.market_hours = check_mode(market_hours)
        self.now_ms = start_ms
        self._symbols = {
            i.symbol: _Symbol(i, seed, start_ms, trade_rate, max_closed_candles, self._schedule_of(i))
            for i in catalogue.all()
        }
        self._history: dict[tuple[str, int], list[Candle]] = {}
        # symbol -> (from ms, until ms, open): is_open answers from here until the state can change.
        self._open_cache: dict[str, tuple[int, float, bool]] = {}

    def _schedule_of(self, inst: Instrument) -> Schedule:
        return inst.schedule if self.market_hours == "real" else ALWAYS

    # -- sessions --------------------------------------------------------------------------------------

    def schedule(self, symbol: str) -> Schedule:
        """The sessions a symbol streams in (ALWAYS with market_hours "always"). KeyError if unknown."""
        return self._symbols[symbol].schedule

    def is_open(self, symbol: str, market_ms: int) -> bool:
        """Whether the symbol's market is in session at market_ms (False for an unknown symbol). A closed
        symbol generates no trades; the server skips its depth and kline pushes too."""
        cached = self._open_cache.get(symbol)
        if cached is not None and cached[0] <= market_ms < cached[1]:
            return cached[2]
        st = self._symbols.get(symbol)
        if st is None:
            return False
        is_open, change = st.schedule.state_at(market_ms)
        self._open_cache[symbol] = (market_ms, change, is_open)
        return is_open

    def set_trade_rate(self, trade_rate: float) -> None:
        """A new trade rate from now on (a scenario's settings): each symbol's mean gap follows it."""
        self.trade_rate = trade_rate
        for st in self._symbols.values():
            st.mean_gap_ms = 1000.0 / (trade_rate * st.inst.weight) if trade_rate > 0 else math.inf

    # -- trades ----------------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> list[Trade]:
        """Every trade with t <= now_ms not yet generated, across all symbols, in time order.

        A symbol that falls more than max_trades_per_advance behind (a paused process, a huge speed-up)
        skips the rest of the gap rather than generating an unbounded burst.
        """
        if now_ms < self.now_ms:
            return []
        self.now_ms = now_ms
        out: list[Trade] = []
        # A trade is stamped int(t): every trade stamped <= now_ms is due, so a book read at now_ms
        # already shows the effect of a trade stamped now_ms.
        end = now_ms + 1
        for st in self._symbols.values():
            if st.next_t < end:
                self._generate(st, end, out)
        if len(self._symbols) > 1:
            out.sort(key=_trade_time)
        return out

    def _generate(self, st: _Symbol, end: int, out: list[Trade]) -> None:  # noqa: PLR0915 (hot loop, inlined on purpose)
        """Trades of one symbol at times t < end (stamped int(t) <= end - 1)."""
        inst = st.inst
        rng = st.rng
        # Box-Muller inlined: one pair of normals per trade (price step, volume) from two uniforms,
        # half the cost of two gauss() calls; the exponential gap is inlined too. Still seeded.
        uniform, exp, log, sqrt, cos, sin = rng.random, math.exp, math.log, math.sqrt, math.cos, math.sin
        tick, pd, vd = inst.tick, inst.price_decimals, inst.volume_decimals
        # Fair price in ticks: exp(log_price) * scale.
        scale = 10**pd / tick
        # Formatting inlined: three decimal strings per trade are most of the cost of a trade.
        pf, vf, wf = (_FORMATS.get(d) for d in (pd, vd, pd + vd))
        ps, vs, ws = 10**pd, 10**vd, 10 ** (pd + vd)
        symbol = inst.symbol
        gap = st.mean_gap_ms
        sigma = st.sigma_ms * math.sqrt(gap)
        mu_v = math.log(inst.typical_volume * st.vd)
        book = st.book
        log_price, p_i, t = st.log_price, st.p_i, st.next_t
        bid, ask, open_until = st.bid, st.ask, st.open_until
        p_s = pf % divmod(p_i, ps) if pf else str(p_i)
        n = 0
        limit = self.max_trades_per_advance
        while t < end:
            if t >= open_until:  # a session boundary: rare, so its check costs one comparison per trade
                t = st.to_session(t)
                open_until = st.open_until
                continue
            if n >= limit:
                t = end - log(1.0 - uniform()) * gap
                break
            radius = sqrt(-2.0 * log(1.0 - uniform()))
            angle = _TAU * uniform()
            z = radius * cos(angle)
            log_price += sigma * z
            # The trade hits the book that stood before it: buyers lift the ask and push the fair price
            # up, sellers hit the bid; a spread wider than a tick sometimes fills inside.
            if z > 0.0:
                td, p = 1, ask
            else:
                td, p = 2, bid
            if ask - bid > tick:
                u = uniform()
                if u < _INSIDE_SHARE:
                    p = bid + tick * (1 + int(u / _INSIDE_SHARE * ((ask - bid) // tick - 1)))
            # Then the book moves to the new fair price: a spread of 1-3 ticks around it.
            u = uniform()
            s = 1 if u < _SPREAD_1 else 2 if u < _SPREAD_2 else 3
            b = int(exp(log_price) * scale - 0.5 * s)
            bid = (b if b > 0 else 1) * tick
            ask = bid + s * tick
            if p != p_i:
                p_i = p
                p_s = pf % divmod(p_i, ps) if pf else str(p_i)
            v_i = max(1, int(exp(mu_v + 0.9 * radius * sin(angle))))
            ti = int(t)
            w_i = p_i * v_i
            trade = {
                "s": symbol,
                "p": p_s,
                "v": vf % divmod(v_i, vs) if vf else str(v_i),
                "vw": wf % divmod(w_i, ws) if wf else str(w_i),
                "t": ti,
                "td": td,
            }
            book.add_trade(ti, p_i, v_i)
            out.append(trade)
            n += 1
            t -= log(1.0 - uniform()) * gap
        st.log_price, st.p_i, st.next_t = log_price, p_i, t
        st.bid, st.ask = bid, ask
        if n:
            st.last = out[-1]

    def last_trade(self, symbol: str) -> Trade | None:
        """The symbol's latest trade (an opening trade before the first one); None only if unknown."""
        st = self._symbols.get(symbol)
        return st.last if st else None

    def last_price(self, symbol: str) -> str | None:
        st = self._symbols.get(symbol)
        return None if st is None else fmt(st.p_i, st.inst.price_decimals)

    # -- depth -----------------------------------------------------------------------------------------

    def depth(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """The book after the last trade: its touch is the market's state (the next trade prints there);
        deeper levels and volumes are reproducible for (seed, symbol, now_ms // 100)."""
        st = self._symbols[symbol]
        inst = st.inst
        rng = random.Random(stable_seed(self.seed, symbol, now_ms // 100))
        tick, pd = inst.tick, inst.price_decimals
        vd = inst.volume_decimals
        mu_v = math.log(inst.typical_volume * st.vd * 3)
        asks_p, bids_p = [st.ask], [st.bid]
        for _ in range(self.depth_levels - 1):
            asks_p.append(asks_p[-1] + tick * rng.randint(1, 3))
            nxt = bids_p[-1] - tick * rng.randint(1, 3)
            bids_p.append(max(nxt, tick) if nxt > 0 else tick)
        bids_p = _strictly_descending(bids_p, tick)
        levels = len(bids_p)
        return {
            "s": symbol,
            "t": now_ms,
            "a": [
                [fmt(p, pd) for p in asks_p[:levels]],
                [fmt(max(1, int(rng.lognormvariate(mu_v, 1.0))), vd) for _ in range(levels)],
            ],
            "b": [
                [fmt(p, pd) for p in bids_p],
                [fmt(max(1, int(rng.lognormvariate(mu_v, 1.0))), vd) for _ in range(levels)],
            ],
        }

    # -- klines ----------------------------------------------------------------------------------------

    def kline(self, symbol: str, ty: int, now_ms: int) -> dict[str, Any]:
        """The 10008 push `data` for the candle in progress at now_ms (flat at the last close if no trade)."""
        st = self._symbols[symbol]
        st.book.roll(now_ms)
        cur = st.book.current(ty, now_ms)
        prev = self._previous_close(st, ty, now_ms if cur is None else cur.start)
        if cur is None:
            start = period_start(ty, now_ms)
            last = st.p_i
            cur = Candle(start, period_end(ty, start), last, last, last, last, 0, 0, 0)
        inst = st.inst
        pd = inst.price_decimals
        ref = prev if prev is not None else cur.o
        change = cur.c - ref
        return {
            "s": symbol,
            "ty": ty,
            "t": str(cur.start // 1000),
            "o": fmt(cur.o, pd),
            "h": fmt(cur.h, pd),
            "l": fmt(cur.l, pd),
            "c": fmt(cur.c, pd),
            "v": fmt(cur.v, inst.volume_decimals),
            "vw": fmt(cur.vw, pd + inst.volume_decimals),
            "pca": fmt(change, pd),
            "pfr": _percent(change, ref),
        }

    def closed_klines(self, symbol: str, ty: int, n: int, now_ms: int) -> list[dict[str, Any]]:
        """Up to n closed candles, newest first, as REST rows: aggregated since start, synthetic before."""
        st = self._symbols[symbol]
        st.book.roll(now_ms)
        live = list(st.book.closed[ty])
        candles = live[::-1][:n]
        if len(candles) < n:
            before = live[0].start if live else period_start(ty, self.start_ms)
            hist = [c for c in self._synthetic(st, ty) if c.start < before]
            candles += hist[::-1][: n - len(candles)]
        inst = st.inst
        pd, vd = inst.price_decimals, inst.volume_decimals
        rows = []
        for i, c in enumerate(candles):
            prev = candles[i + 1].c if i + 1 < len(candles) else c.o
            change = c.c - prev
            rows.append(
                {
                    "t": str(c.start // 1000),
                    "o": fmt(c.o, pd),
                    "h": fmt(c.h, pd),
                    "l": fmt(c.l, pd),
                    "c": fmt(c.c, pd),
                    "v": fmt(c.v, vd),
                    "vw": fmt(c.vw, pd + vd),
                    "pc": _percent(change, prev),
                    "pca": fmt(change, pd),
                }
            )
        return rows

    def _previous_close(self, st: _Symbol, ty: int, start: int) -> int | None:
        prev = st.book.last_closed(ty)
        if prev is not None and prev.start < start:
            return prev.c
        hist = self._synthetic(st, ty)
        return hist[-1].c if hist else None

    def _synthetic(self, st: _Symbol, ty: int) -> list[Candle]:
        """History before start: candles only (no trades), seeded, ending at the initial price.

        Built backwards from the first period so the series joins the live one without a jump."""
        key = (st.inst.symbol, ty)
        hist = self._history.get(key)
        if hist is not None:
            return hist
        inst = st.inst
        rng = random.Random(stable_seed(self.seed, inst.symbol, "history", ty))
        tick, pscale = inst.tick, 10**inst.price_decimals
        first = period_start(ty, self.start_ms)
        close = math.log(inst.price)
        candles: list[Candle] = []
        end = first
        for _ in range(self.history_bars):
            start = previous_start(ty, end)
            seconds = (end - start) / 1000.0
            sigma = inst.volatility * math.sqrt(seconds / _YEAR_S)
            open_ = close - sigma * rng.gauss()
            hi = max(open_, close) + abs(rng.gauss(0.0, sigma * 0.5))
            lo = min(open_, close) - abs(rng.gauss(0.0, sigma * 0.5))

            def grid(x: float) -> int:
                return max(tick, round(math.exp(x) * pscale / tick) * tick)

            o, c, h, low = grid(open_), grid(close), grid(hi), grid(lo)
            h, low = max(h, o, c), min(low, o, c)
            trades = max(1, int(seconds * self.trade_rate * inst.weight))
            v = max(1, int(inst.typical_volume * st.vd * trades * rng.lognormvariate(0.0, 0.3)))
            candles.append(Candle(start, end, o, h, low, c, v, v * ((o + c) // 2), trades))
            close = open_
            end = start
        candles.reverse()
        self._history[key] = candles
        return candles


def _trade_time(t: Trade) -> int:
    return t["t"]


def _strictly_descending(prices: list[int], tick: int) -> list[int]:
    """Bids near zero could collide at the minimum tick: keep only strictly descending levels."""
    out = [prices[0]]
    for p in prices[1:]:
        if p < out[-1]:
            out.append(p)
    return out


def _percent(change: int, ref: int) -> str:
    if ref == 0:
        return "0.00%"
    return f"{change * 100 / ref:.2f}%"


__all__ = ["KLINE_TYPES", "Market", "Trade", "fmt", "stable_seed"]
