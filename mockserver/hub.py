"""Who is subscribed to what: the fan-out index from (channel, symbol) to connections."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from .session import Channel

C = TypeVar("C")


class Hub(Generic[C]):
    """Trade, depth and kline subscribers kept in separate maps so the hot trade lookup is one dict get."""

    def __init__(self) -> None:
        self.trades: dict[str, set[C]] = {}
        self.trades_ty: dict[str, set[C]] = {}  # subset of trades whose pushes carry `ty` (includeTy)
        self.depth: dict[str, set[C]] = {}
        self.klines: dict[tuple[str, int], set[C]] = {}
        self.news: dict[str, set[C]] = {}  # /news subscribers by language

    def _map_key(self, channel: Channel, symbol: str) -> tuple[dict, object]:
        kind, ty = channel
        if kind == "trade":
            return self.trades, symbol
        if kind == "depth":
            return self.depth, symbol
        if kind == "trade_ty":
            return self.trades_ty, symbol
        if kind == "news":
            return self.news, symbol
        return self.klines, (symbol, ty)

    def add(self, channel: Channel, symbols: Iterable[str], conn: C) -> None:
        for symbol in symbols:
            m, k = self._map_key(channel, symbol)
            m.setdefault(k, set()).add(conn)

    def remove(self, channel: Channel, symbols: Iterable[str], conn: C) -> None:
        for symbol in symbols:
            m, k = self._map_key(channel, symbol)
            subs = m.get(k)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del m[k]

    def subscriptions(self) -> int:
        """(channel, symbol, connection) triples: returns to 0 when every connection has gone."""
        return sum(len(s) for m in (self.trades, self.depth, self.klines, self.news) for s in m.values())

    def connections(self) -> Iterator[C]:
        seen: set[int] = set()
        for m in (self.trades, self.depth, self.klines):
            for subs in m.values():
                for c in subs:
                    if id(c) not in seen:
                        seen.add(id(c))
                        yield c
