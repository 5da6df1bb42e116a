"""Typed events. Pushes keep their raw dict; Decimal and datetime views are computed on first use, so
decoding stays cheap for consumers that only look at a few fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any


def _ms(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


def _decimal(key: str, doc: str) -> cached_property[Decimal]:
    """A Decimal view of one string field of `raw`, parsed on first use."""

    def view(self: Push) -> Decimal:
        return Decimal(self.raw[key])

    view.__doc__ = doc
    return cached_property(view)


def _levels(side: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    prices, volumes = side
    return [(Decimal(p), Decimal(v)) for p, v in zip(prices, volumes, strict=False)]


class Push:
    """A market-data push; `raw` is the frame's `data` dict exactly as received."""

    __slots__ = ("__dict__", "raw")
    kind = "push"

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def symbol(self) -> str:
        return self.raw["s"]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, **self.raw}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.raw == self.raw  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), repr(self.raw)))


class _Timed(Push):
    """A push stamped with market time in epoch ms (trades and depth)."""

    __slots__ = ()

    @property
    def time_ms(self) -> int:
        return self.raw["t"]

    @cached_property
    def time(self) -> datetime:
        return _ms(self.raw["t"])


class Trade(_Timed):
    kind = "trade"
    price = _decimal("p", "Trade price.")
    volume = _decimal("v", "Traded volume.")
    turnover = _decimal("vw", "Price times volume, as the server rounded it.")

    @property
    def direction(self) -> int:
        """0 unknown, 1 buy, 2 sell (the legacy 10000 push has none: 0)."""
        return self.raw.get("td", 0)


class Depth(_Timed):
    kind = "depth"

    @cached_property
    def asks(self) -> list[tuple[Decimal, Decimal]]:
        """(price, volume) levels, best (lowest) first."""
        return _levels(self.raw["a"])

    @cached_property
    def bids(self) -> list[tuple[Decimal, Decimal]]:
        """(price, volume) levels, best (highest) first."""
        return _levels(self.raw["b"])


class Kline(Push):
    """A candle: in progress when pushed (10008); closed when it came from a REST backfill."""

    kind = "kline"
    __slots__ = ("backfill",)

    def __init__(self, raw: dict[str, Any], backfill: bool = False) -> None:
        super().__init__(raw)
        self.backfill = backfill

    @property
    def type(self) -> int:
        return self.raw["ty"]

    @property
    def open_time_s(self) -> int:
        return int(self.raw["t"])

    @cached_property
    def open_time(self) -> datetime:
        return datetime.fromtimestamp(int(self.raw["t"]), UTC)

    open = _decimal("o", "Opening price.")
    high = _decimal("h", "Highest price.")
    low = _decimal("l", "Lowest price.")
    close = _decimal("c", "Closing (latest, while in progress) price.")
    volume = _decimal("v", "Volume traded in the candle.")

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.backfill:
            out["backfill"] = True
        return out


# -- lifecycle: connection events skip the queue's line and are never dropped -----------------------------


@dataclass(frozen=True)
class Lifecycle:
    kind = "lifecycle"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(self).__name__}
        for k, v in self.__dict__.items():
            out[k] = [g.to_json() for g in v] if k == "gaps" else v
        return out


@dataclass(frozen=True)
class Connected(Lifecycle):
    url: str  # with the API key masked
    attempt: int  # failed attempts before this one since the last healthy session


@dataclass(frozen=True)
class Disconnected(Lifecycle):
    reason: str  # e.g. "closed 1008 Websocket heartbeat timeout", "reset", "dead peer (no frame 10s)"
    code: int | None = None  # close code, or the server error code that caused it (513, 501, ...)
    retry_in: float | None = None  # seconds until the next attempt, None when the client stops


@dataclass(frozen=True)
class Gap:
    """What one subscription missed while offline. Times are epoch ms; market times from the pushes."""

    channel: str  # "trade", "depth", "kline:1", ...
    symbol: str
    offline_from: int
    offline_to: int
    last_before: int | None  # market time of the last push before the drop
    first_after: int | None = None  # market time of the first push after (filled in later, see client.gaps)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Resubscribed(Lifecycle):
    gaps: list[Gap] = field(default_factory=list)


@dataclass(frozen=True)
class ServerError(Lifecycle):
    code: int
    msg: str
    trace: str = ""


@dataclass(frozen=True)
class BadFrame(Lifecycle):
    """A frame the client could not use (a push without `t`, a kline `t` that is not a number, broken
    JSON, an unknown code): reported, counted in `stats()`, and skipped; the stream goes on. It travels
    in the data queue, in order with the pushes around it, so a flood of them is bounded like pushes."""

    reason: str
    frame: str  # the frame's start, as received


Event = Trade | Depth | Kline | Connected | Disconnected | Resubscribed | ServerError | BadFrame
