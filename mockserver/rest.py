"""REST snapshot endpoints, served from the same market state as the WebSocket pushes.

REST only reads: the market is advanced by the pump alone, so a REST call can never take trades away from
the stream (it used to, by advancing the market itself and dropping what came out). Answers reflect the
market as of the pump's last step (at most one pump interval old).

The service sees narrow ports, not the server: the market, the catalogue, key authentication, the per-key
REST quota, and the clock.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .catalogue import Catalogue
from .config import Plan
from .limits import QuotaBook
from .market import Market

REST_BUSINESSES = ("stock", "crypto", "common", "japan", "india", "korea", "taiwan")
_SUFFIXED = ("stock", "japan", "india", "korea", "taiwan")  # equity codes carry a market suffix
MAX_SYMBOLS = 100
MAX_BARS = 500
MAX_BARS_MULTI = 2  # several symbols in one batch_kline: at most this many bars each (vendor docs)

_ROUTE = re.compile(
    r"^/(?P<b>[a-z]+)/(?:"
    r"batch_trade/(?P<trade>[^/]+)"
    r"|batch_depth/(?P<depth>[^/]+)"
    r"|batch_kline/(?P<kt>[^/]+)/(?P<kn>[^/]+)/(?P<kline>[^/]+)"
    r"|(?P<v2>v2/batch_kline)"
    r"|basic/(?P<symbols>symbols))/?$"
)


def is_rest_path(path: str) -> bool:
    return _ROUTE.match(path) is not None


@dataclass(frozen=True, slots=True)
class RestResponse:
    status: int
    body: bytes
    allow: str | None = None  # the Allow header of a 405


class _BusinessError(Exception):
    """A business error: HTTP 200 with `ret` set, as the vendor answers them."""

    def __init__(self, ret: int, msg: str) -> None:
        super().__init__(msg)
        self.ret = ret
        self.msg = msg


def _envelope(ret: int, msg: str, data: Any) -> bytes:
    return orjson.dumps({"ret": ret, "msg": msg, "traceId": str(uuid.uuid4()), "data": data})


class RestService:
    def __init__(
        self,
        market: Market,
        catalogue: Catalogue,
        authenticate: Callable[[str | None], str | None],
        plan_for: Callable[[str], Plan],
        quotas: QuotaBook,
        rate_window: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.market = market
        self.catalogue = catalogue
        self.authenticate = authenticate
        self.plan_for = plan_for
        self.quotas = quotas
        self.rate_window = rate_window
        self.monotonic = monotonic

    def handle(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> RestResponse:
        """One REST request. Business errors are HTTP 200 with `ret` set; a bad key is HTTP 401."""
        m = _ROUTE.match(path)
        if m is None or m["b"] not in REST_BUSINESSES:
            return RestResponse(404, orjson.dumps({"code": 404, "message": "Not Found"}))
        allowed = "POST" if m["v2"] else "GET, HEAD"
        if method not in allowed.split(", "):
            return RestResponse(405, orjson.dumps({"code": 405, "message": f"Use {allowed}"}), allow=allowed)
        key = self.authenticate(headers.get("apikey") or query.get("apikey") or query.get("apiKey"))
        if key is None:
            return RestResponse(401, orjson.dumps({"code": 401, "message": "Token invalid"}))
        plan = self.plan_for(key)
        if not self.quotas.rest_hit(key, plan.rest_rate_limit, self.rate_window, self.monotonic()):
            msg = f"Request frequency exceed the limit：{plan.rest_rate_limit} times per minute"
            return RestResponse(429, _envelope(429, msg, None))
        try:
            data = self._route(m, query, body)
        except _BusinessError as e:
            return RestResponse(200, _envelope(e.ret, e.msg, None))
        return RestResponse(200, _envelope(200, "success", data))

    # -- routes ------------------------------------------------------------------------------------------

    def _route(self, m: re.Match[str], query: Mapping[str, str], body: bytes) -> Any:
        business = m["b"]
        if m["trade"]:
            return self._trades(business, m["trade"])
        if m["depth"]:
            return self._depth(business, m["depth"])
        if m["kline"]:
            return self._klines(business, m["kt"], m["kn"], m["kline"])
        if m["v2"]:
            return self._klines_v2(business, body)
        return self._symbols(business, query.get("type"))

    def _trades(self, business: str, raw: str) -> list[dict[str, Any]]:
        market = self.market
        rows = []
        for code in self._codes(business, raw):
            last = market.last_trade(code)
            if last is not None:
                rows.append(dict(last))
        return rows

    def _depth(self, business: str, raw: str) -> list[dict[str, Any]]:
        now = self.market.now_ms
        return [self.market.depth(code, now) for code in self._codes(business, raw)]

    def _klines(self, business: str, kt: str, kn: str, raw: str) -> list[dict[str, Any]]:
        try:
            ktype, knum = int(kt), int(kn)
        except ValueError:
            raise _BusinessError(506, "Param error：klineType and klineNum must be integers") from None
        return self._kline_rows(business, ktype, knum, raw)

    def _klines_v2(self, business: str, body: bytes) -> list[dict[str, Any]]:
        """POST /{business}/v2/batch_kline: the SDK's only kline call."""
        try:
            req = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            raise _BusinessError(506, "Param error：the body is not JSON") from None
        if not isinstance(req, dict):
            raise _BusinessError(507, "Param lost：klineType, klineNum, codes")
        for name in ("klineType", "klineNum", "codes"):
            if name not in req:
                raise _BusinessError(507, f"Param lost：{name}")
        ktype, knum, codes = req["klineType"], req["klineNum"], req["codes"]
        if type(ktype) is not int or type(knum) is not int or not isinstance(codes, str):
            raise _BusinessError(506, "Param error：klineType and klineNum are integers, codes a string")
        ts = req.get("timestamp")
        if ts is not None and (type(ts) is not int or ts < 0):
            raise _BusinessError(506, "Param error：timestamp is a Unix time in seconds")
        end_ms = None if ts is None else ts * 1000
        return self._kline_rows(business, ktype, knum, codes, end_ms)

    def _kline_rows(
        self, business: str, ktype: int, knum: int, raw: str, end_ms: int | None = None
    ) -> list[dict[str, Any]]:
        if not 1 <= ktype <= 12:
            raise _BusinessError(506, "Param error：klineType must be 1..12")
        if not 1 <= knum <= MAX_BARS:
            raise _BusinessError(503, f"Kline quantity exceeds the limit：{MAX_BARS}")
        codes = self._codes(business, raw)
        if len(codes) > 1:
            knum = min(knum, MAX_BARS_MULTI)
        now = self.market.now_ms
        at = now if end_ms is None else min(now, end_ms)
        return [{"s": code, "respList": self.market.closed_klines(code, ktype, knum, at)} for code in codes]

    def _codes(self, business: str, raw: str) -> list[str]:
        """The known symbols of a batch in request order; unknown ones are left out, as the vendor does,
        and only a batch with no known symbol at all is an error (508)."""
        codes = list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
        if not codes:
            raise _BusinessError(507, "Param lost：codes")
        if len(codes) > MAX_SYMBOLS:
            raise _BusinessError(505, f"Products quantity exceeds the limit：{MAX_SYMBOLS}")
        known = []
        for code in codes:
            inst = self.catalogue.get(code)
            if inst is not None and inst.business == business:
                known.append(code)
        if not known:
            bare = [c for c in codes if "." not in c]
            if business in _SUFFIXED and bare:
                # What PROTOCOL.md records live: a stock code without its market suffix is a ret 500.
                raise _BusinessError(
                    500, f"Param error：symbol {bare[0]} has no market suffix (e.g. AAPL.US)"
                )
            raise _BusinessError(508, "All product not exists")
        return known

    def _symbols(self, business: str, type_: str | None) -> list[dict[str, Any]]:
        out = []
        for inst in self.catalogue.all():
            wanted = inst.business == business if type_ is None else inst.kind == type_
            if wanted:
                out.append(
                    {"symbol": inst.symbol, "name": inst.name, "type": inst.kind, "business": inst.business}
                )
        return out
