"""What the user wants subscribed, apart from what a connection has confirmed.

The desired set survives reconnects; each connection replays it in batched requests, and acks are
matched by trace so an ack from an older connection can never confirm a newer request.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from infoway_mock.schemas.codes import (
    SUB_DEPTH,
    SUB_KLINE,
    SUB_TRADE,
    UNSUB_DEPTH,
    UNSUB_KLINE,
    UNSUB_TRADE,
)

# A channel: "trade", "depth", or "kline:<type>".
TRADE, DEPTH = "trade", "depth"


def kline_channel(ty: int) -> str:
    return f"kline:{ty}"


@dataclass
class Pending:
    trace: str
    frame: dict[str, Any]
    sent_at: float
    connection: int
    attempts: int = 1
    needs_ack: bool = True


@dataclass
class SubscriptionBook:
    max_codes: int = 200  # symbols per request when replaying
    trades: set[str] = field(default_factory=set)
    depth: set[str] = field(default_factory=set)
    klines: dict[int, set[str]] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def trace(self, prefix: str = "c") -> str:
        return f"{prefix}-{next(self._ids)}"

    # -- desired state -----------------------------------------------------------------------------------

    def add(self, channel: str, symbols: Iterable[str]) -> set[str]:
        held = self._held(channel, create=True)
        new = set(symbols) - held
        held |= new
        return new

    def remove(self, channel: str, symbols: Iterable[str] | None) -> set[str]:
        held = self._held(channel, create=False)
        gone = set(held) if symbols is None else held & set(symbols)
        held -= gone
        if channel.startswith("kline:") and not held:
            self.klines.pop(int(channel.split(":")[1]), None)
        return gone

    def has_any(self) -> bool:
        return bool(self.trades or self.depth or self.klines)

    def pairs(self) -> set[tuple[str, str]]:
        out = {(TRADE, s) for s in self.trades} | {(DEPTH, s) for s in self.depth}
        for ty, syms in self.klines.items():
            out |= {(kline_channel(ty), s) for s in syms}
        return out

    def _held(self, channel: str, create: bool) -> set[str]:
        if channel == TRADE:
            return self.trades
        if channel == DEPTH:
            return self.depth
        ty = int(channel.split(":")[1])
        if create:
            return self.klines.setdefault(ty, set())
        return self.klines.get(ty, set())

    # -- frames --------------------------------------------------------------------------------------------

    def _batches(self, symbols: Iterable[str]) -> list[str]:
        ordered = sorted(symbols)
        return [",".join(ordered[i : i + self.max_codes]) for i in range(0, len(ordered), self.max_codes)]

    def subscribe_frames(self, channel: str, symbols: Iterable[str]) -> list[dict[str, Any]]:
        if channel == TRADE:
            return [{"code": SUB_TRADE, "data": {"codes": c}} for c in self._batches(symbols)]
        if channel == DEPTH:
            return [{"code": SUB_DEPTH, "data": {"codes": c}} for c in self._batches(symbols)]
        ty = int(channel.split(":")[1])
        return [
            {"code": SUB_KLINE, "data": {"arr": [{"type": ty, "codes": c}]}} for c in self._batches(symbols)
        ]

    def unsubscribe_frames(self, channel: str, symbols: Iterable[str] | None) -> list[dict[str, Any]]:
        if channel in (TRADE, DEPTH):
            code = UNSUB_TRADE if channel == TRADE else UNSUB_DEPTH
            if symbols is None:
                return [{"code": code}]
            return [{"code": code, "data": {"codes": c}} for c in self._batches(symbols)]
        ty = channel.split(":")[1]
        if symbols is None:
            return [{"code": UNSUB_KLINE, "data": {"klineTypes": ty}}]
        return [{"code": UNSUB_KLINE, "data": {"codes": c, "klineTypes": ty}} for c in self._batches(symbols)]

    def replay_frames(self) -> list[dict[str, Any]]:
        """Everything desired, batched: one request per channel per max_codes symbols; kline types with
        the same symbols share one 10006 request (its `arr` takes several entries)."""
        frames = self.subscribe_frames(TRADE, self.trades) if self.trades else []
        if self.depth:
            frames += self.subscribe_frames(DEPTH, self.depth)
        by_symbols: dict[str, list[int]] = {}
        for ty, syms in sorted(self.klines.items()):
            for codes in self._batches(syms):
                by_symbols.setdefault(codes, []).append(ty)
        arr_batch: list[dict[str, Any]] = []
        for codes, types in by_symbols.items():
            arr_batch += [{"type": ty, "codes": codes} for ty in types]
        for i in range(0, len(arr_batch), 12):  # the server takes at most 12 entries per request
            frames.append({"code": SUB_KLINE, "data": {"arr": arr_batch[i : i + 12]}})
        return frames

    # -- acks --------------------------------------------------------------------------------------------

    def sent(
        self,
        trace: str,
        frame: dict[str, Any],
        now: float,
        connection: int,
        needs_ack: bool,
        attempts: int = 1,
    ) -> None:
        self.pending[trace] = Pending(trace, frame, now, connection, attempts, needs_ack)

    def ack(self, trace: str, connection: int) -> Pending | None:
        """The pending request this ack confirms; None for stale or unknown traces."""
        p = self.pending.get(trace)
        if p is None or p.connection != connection:
            return None
        return self.pending.pop(trace)

    def overdue(self, now: float, timeout: float) -> list[Pending]:
        return [p for p in self.pending.values() if p.needs_ack and now - p.sent_at >= timeout]

    def forget_connection(self, connection: int) -> None:
        """A connection ended: its requests will be replayed from the desired set, not retried."""
        self.pending = {t: p for t, p in self.pending.items() if p.connection != connection}

    def oldest_unacked(self, connection: int) -> float | None:
        """When the oldest request of this connection still owed an ack was sent (None: none owed)."""
        times = [p.sent_at for p in self.pending.values() if p.connection == connection and p.needs_ack]
        return min(times, default=None)

    def awaiting(self, connection: int) -> int:
        return sum(1 for p in self.pending.values() if p.connection == connection and p.needs_ack)
