"""REST snapshot endpoints, served from the same market state as the WebSocket pushes."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from websockets.datastructures import Headers

    from .server import MockServer

REST_BUSINESSES = ("stock", "crypto", "common", "japan", "india")
MAX_SYMBOLS = 100
MAX_BARS = 500
MAX_BARS_MULTI = 2  # several symbols in one batch_kline: at most this many bars each (vendor docs)
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}

_ROUTE = re.compile(
    r"^/(?P<b>[a-z]+)/(?:"
    r"batch_trade/(?P<trade>[^/]+)"
    r"|batch_depth/(?P<depth>[^/]+)"
    r"|batch_kline/(?P<kt>[^/]+)/(?P<kn>[^/]+)/(?P<kline>[^/]+)"
    r"|basic/(?P<symbols>symbols))/?$"
)


def is_rest_path(path: str) -> bool:
    return _ROUTE.match(path) is not None


def _envelope(ret: int, msg: str, data: Any) -> bytes:
    return orjson.dumps({"ret": ret, "msg": msg, "traceId": str(uuid.uuid4()), "data": data})


def handle(server: MockServer, path: str, query: dict[str, str], headers: Headers) -> tuple[int, bytes]:
    """Answer one REST GET: (HTTP status, JSON body). Business errors are HTTP 200 with `ret` set."""
    m = _ROUTE.match(path)
    if m is None or m["b"] not in REST_BUSINESSES:
        return 404, orjson.dumps({"code": 404, "message": "Not Found"})
    key = server._authenticate(headers.get("apiKey") or query.get("apikey"))
    if key is None:
        return 401, orjson.dumps({"code": 401, "message": "Token invalid"})
    plan = server.config.plan_for(key)
    now = server.clock.monotonic()
    if not server.quotas.rest_hit(key, plan.rest_rate_limit, server.config.rate_window, now):
        msg = f"Request frequency exceed the limit：{plan.rest_rate_limit} times per minute"
        return 429, _envelope(429, msg, None)
    try:
        data = _route(server, m, query)
    except _BusinessError as e:
        return 200, _envelope(500, str(e), None)
    return 200, _envelope(200, "success", data)


class _BusinessError(Exception):
    pass


def _codes(server: MockServer, business: str, raw: str) -> list[str]:
    codes = [c.strip() for c in raw.split(",") if c.strip()]
    if not codes:
        raise _BusinessError("Param lost：codes")
    if len(codes) > MAX_SYMBOLS:
        raise _BusinessError(f"Param error：at most {MAX_SYMBOLS} symbols per request")
    for code in codes:
        inst = server.catalogue.get(code)
        if inst is None or inst.business != business:
            if business in ("stock", "japan", "india") and "." not in code:
                raise _BusinessError(f"Param error：symbol {code} has no market suffix (e.g. AAPL.US)")
            raise _BusinessError(f"Param error：unknown symbol {code} for business {business}")
    return codes


def _route(server: MockServer, m: re.Match[str], query: dict[str, str]) -> list[dict[str, Any]]:
    market = server.market
    business = m["b"]
    market_now = server.clock.market_ms()
    market.advance(market_now)
    if m["trade"]:
        rows = []
        for code in _codes(server, business, m["trade"]):
            last = market.last_trade(code)
            if last is not None:
                rows.append(dict(last))
        return rows
    if m["depth"]:
        return [market.depth(code, market_now) for code in _codes(server, business, m["depth"])]
    if m["kline"]:
        try:
            ktype, knum = int(m["kt"]), int(m["kn"])
        except ValueError:
            raise _BusinessError("Param error：klineType and klineNum must be integers") from None
        if not 1 <= ktype <= 12:
            raise _BusinessError("Param error：klineType must be 1..12")
        if not 1 <= knum <= MAX_BARS:
            raise _BusinessError(f"Param error：klineNum must be 1..{MAX_BARS}")
        codes = _codes(server, business, m["kline"])
        if len(codes) > 1:
            knum = min(knum, MAX_BARS_MULTI)
        return [
            {"s": code, "respList": market.closed_klines(code, ktype, knum, market_now)} for code in codes
        ]
    return _symbols(server, business, query.get("type"))


_TYPE_FILTERS = {
    "STOCK_US": ("stock", ".US"),
    "STOCK_HK": ("stock", ".HK"),
    "STOCK_CN": ("stock", (".SH", ".SZ")),
    "CRYPTO": ("crypto", ""),
}


def _symbols(server: MockServer, business: str, type_: str | None) -> list[dict[str, Any]]:
    out = []
    for inst in server.catalogue.all():
        if type_ is None:
            wanted = inst.business == business
        elif type_ in _TYPE_FILTERS:
            b, suffix = _TYPE_FILTERS[type_]
            wanted = inst.business == b and inst.symbol.endswith(suffix)
        else:
            wanted = inst.kind == type_
        if not wanted:
            continue
        out.append({"symbol": inst.symbol, "name": inst.name, "type": inst.kind, "business": inst.business})
    return out
