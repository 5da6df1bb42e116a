"""Frames to events. The core (core.py) decodes batches with trades inlined; this module holds the rules
for every other push, shared by the core and by `decode()`, which takes one frame at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from infoway_mock.schemas.codes import (
    ACK_CODES,
    KLINE_TYPES,
    LEGACY_TRADE_PUSH,
    PUSH_DEPTH,
    PUSH_KLINE,
    PUSH_TRADE,
    WELCOME,
    is_error,
)

from .events import BadFrame, Depth, Kline, ServerError, Trade
from .subscriptions import DEPTH, TRADE, kline_channel

PUSH_CODES = frozenset({PUSH_TRADE, PUSH_DEPTH, PUSH_KLINE, LEGACY_TRADE_PUSH})


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


class BadPush(Exception):
    """A push the client cannot use; the message says why."""


def decode_push(code: int, raw: Any) -> tuple[Any, str, int]:
    """(event, channel, market time in ms) for the `data` of a push, or BadPush saying what is wrong.
    Checked: what the client itself reads (symbol, time, kline type, depth sides); the other fields are
    read lazily by the event's views."""
    if type(raw) is not dict:
        raise BadPush("push without a `data` object")
    s = raw.get("s")
    if type(s) is not str or not s:
        raise BadPush("push without a symbol `s`")
    if code == PUSH_KLINE:
        return _kline(raw)
    t = raw.get("t")
    kind = "depth" if code == PUSH_DEPTH else "trade"
    if type(t) is not int:
        raise BadPush(f"{kind} push without an integer `t` (epoch ms)")
    if code != PUSH_DEPTH:
        return Trade(raw), TRADE, t
    a, b = raw.get("a"), raw.get("b")
    if not (type(a) is list and type(b) is list and len(a) == 2 and len(b) == 2):
        raise BadPush("depth push without `a` and `b` as [prices, volumes]")
    return Depth(raw), DEPTH, t


def _kline(raw: dict[str, Any]) -> tuple[Any, str, int]:
    ty = raw.get("ty")
    if type(ty) is not int or ty not in KLINE_TYPES:
        raise BadPush("kline push without a type `ty` in 1..12")
    t = raw.get("t")
    try:
        seconds = int(t) if type(t) is int or type(t) is str else None
    except ValueError:
        seconds = None
    if seconds is None:
        raise BadPush("kline push without a numeric `t` (epoch seconds)")
    return Kline(raw), kline_channel(ty), seconds * 1000


def excerpt(message: bytes | bytearray | str, limit: int = 200) -> str:
    text = message if isinstance(message, str) else bytes(message).decode("utf-8", "replace")
    return text[:limit]


def decode(message: str | bytes) -> Any:
    """One frame: a push event, an Ack, a Welcome, a ServerError, a Text (plain text), or a BadFrame."""
    try:
        obj = orjson.loads(message)
    except orjson.JSONDecodeError:
        text = excerpt(message, len(message))
        if text.lstrip()[:1] in ("{", "["):
            return BadFrame("broken JSON", text[:200])
        return Text(text)
    if type(obj) is not dict:
        return BadFrame("JSON but not an object", excerpt(message))
    code = obj.get("code")
    if code in PUSH_CODES and "traceId" not in obj:
        try:
            return decode_push(code, obj.get("data"))[0]
        except BadPush as e:
            return BadFrame(str(e), excerpt(message))
    if "traceId" in obj or is_error(code):
        number = code if type(code) is int else 0
        return ServerError(number, str(obj.get("msg", "")), str(obj.get("traceId", "")))
    if code in ACK_CODES:
        return Ack(code, str(obj.get("trace", "")))
    if code == WELCOME:
        return Welcome(str(obj.get("msg", "")))
    return BadFrame(f"unknown code {code!r}", excerpt(message))
