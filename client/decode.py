"""Frames to events: one dict lookup on the code, no validation on the hot path (schemas can be asked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .events import Depth, Kline, ServerError, Trade


@dataclass(frozen=True, slots=True)
class Ack:
    code: int
    trace: str


@dataclass(frozen=True, slots=True)
class Welcome:
    msg: str


@dataclass(frozen=True, slots=True)
class Text:
    """A non-JSON text frame (the stock banner): tolerated, never an error."""

    text: str


_PUSHES = {10002: Trade, 10005: Depth, 10008: Kline, 10000: Trade}  # 10000: the tutorial's legacy push
_loads = orjson.loads
ACK_CODES = frozenset({10001, 10004, 10007, 11010, 10011})


def decode(message: str | bytes) -> Any:
    """A push event, an Ack, a Welcome, a ServerError, a Text, or None for frames we don't know."""
    try:
        obj = _loads(message)
    except orjson.JSONDecodeError:
        return text(message)
    return from_obj(obj)


def text(message: str | bytes) -> Text:
    return Text(message if isinstance(message, str) else message.decode("utf-8", "replace"))


def from_obj(obj: Any) -> Any:
    """The event for an already parsed frame (the client's reader parses once and fast-paths trades)."""
    # The push path is the hot one: plain lookups inside one try (free in 3.11 when nothing raises);
    # every odd shape falls through to the careful path below.
    try:
        data = obj["data"]
        if type(data) is dict and "s" in data and "traceId" not in obj:
            return _PUSHES[obj["code"]](data)
    except (KeyError, TypeError, IndexError):
        pass
    return _other(obj)


def _other(obj: Any) -> Any:
    if type(obj) is not dict:
        return None
    code = obj.get("code")
    if "traceId" in obj or (type(code) is int and 500 <= code <= 516):
        number = code if type(code) is int else 0
        return ServerError(number, str(obj.get("msg", "")), str(obj.get("traceId", "")))
    if type(code) is int and code in ACK_CODES:
        return Ack(code, str(obj.get("trace", "")))
    if code == 200:
        return Welcome(str(obj.get("msg", "")))
    return None
