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
from urllib.parse import unquote

import orjson

from infoway_mock import schemas

from .catalogue import (
    BUSINESSES,
    BadRequest,
    Catalogue,
    adjustment_factors,
    market_rows,
    stock_detail,
    symbol_info_rows,
    symbol_rows,
    trading_days,
    trading_schedule_rows,
)
from .config import Plan
from .limits import QuotaBook
from .market import Market

REST_BUSINESSES = BUSINESSES
_SUFFIXED = ("stock", "japan", "india", "korea", "taiwan")  # equity codes carry a market suffix
MAX_SYMBOLS = 100
MAX_BARS = 500
MAX_BARS_MULTI = 2  # several symbols in one batch_kline: at most this many bars each (vendor docs)

_ROUTE = re.compile(
    r"^/(?P<b>[a-z]+)/(?:"
    r"batch_trade/(?P<trade>[^/]+)"
    r"|batch_depth/(?P<depth>[^/]+)"
    r"|batch_kline/(?P<kt>[^/]+)/(?P<kn>[^/]+)/(?P<kline>[^/]+)"
    r"|(?P<v2>v2/batch_kline))/?$"
)
# Reference data lives under /common/basic only, and answers its errors as RFC 7807 problems. Each path
# reads the catalogue (or the exchange calendar) and the query; a BadRequest is the 400.
BASIC: dict[str, Callable[[Catalogue, Mapping[str, str]], Any]] = {
    "/common/basic/symbols": lambda cat, q: symbol_rows(cat, q.get("type"), q.get("symbols")),
    "/common/basic/symbols/info": lambda cat, q: symbol_info_rows(cat, q.get("type"), q.get("symbols")),
    "/common/basic/markets": lambda cat, q: market_rows(),
    # The exchange calendar, whatever market_hours streams: reference data about the exchange.
    "/common/basic/markets/trading_days": lambda cat, q: trading_days(
        q.get("market"), q.get("beginDay"), q.get("endDay")
    ),
    "/common/basic/markets/trading_schedule": lambda cat, q: trading_schedule_rows(cat, q.get("type")),
    "/common/basic/symbols/adjustment_factors": lambda cat, q: adjustment_factors(
        cat, q.get("symbol"), q.get("market"), q.get("beginDay"), q.get("endDay")
    ),
    "/common/basic/stock/detail": lambda cat, q: stock_detail(cat, q.get("type"), q.get("symbol")),
}
# The key's own plan (the SDK's `packages.get_info()`, in its quick start).
PACKAGE = "/package/info"
# Documented vendor families the mock does not simulate (fundamentals, rankings, sectors, statements): a
# clear 501 problem naming them, rather than a bare 404 that reads like a typo in the client's base URL.
NOT_MODELLED = ("/common/v2/basic/", "/common/basic/financial/")
NEVER_EXPIRES_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z: a mock key does not expire


def is_rest_path(path: str) -> bool:
    bare = path.rstrip("/")
    return bare in BASIC or bare == PACKAGE or path.startswith(NOT_MODELLED) or _ROUTE.match(path) is not None


def package_info(plan: Plan, rate_window: float) -> dict[str, Any]:
    """`GET /package/info`: the vendor's fields (`packageName`, `expireTime` in ms, `apiNumPerSec`) from the
    key's plan, and under `limits` what the mock enforces for it (the mock's own names)."""
    return {
        "packageName": plan.name,
        "expireTime": NEVER_EXPIRES_MS,
        "apiNumPerSec": max(1, int(plan.rest_rate_limit / rate_window)),
        "limits": {
            "restCallsPerWindow": plan.rest_rate_limit,
            "rateWindowSeconds": rate_window,
            "wsConnections": plan.max_connections,
            "wsProducts": plan.max_products,
            "wsProductsPerConnection": plan.max_products_per_connection,
            "wsRequestsPerWindow": plan.rate_limit,
            "news": plan.news,
        },
    }


@dataclass(frozen=True, slots=True)
class RestResponse:
    status: int
    body: bytes
    allow: str | None = None  # the Allow header of a 405
    content_type: str = "application/json"


def problem(status: int, title: str, detail: str, instance: str) -> RestResponse:
    """An RFC 7807 problem, as /common/basic/* answers its errors."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance}
    return RestResponse(status, orjson.dumps(body), content_type="application/problem+json")


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
        if path.startswith(NOT_MODELLED):
            detail = (
                "infoway-mock simulates market and reference data; fundamentals, rankings, sectors and "
                f"financial statements ({', '.join(p + '*' for p in NOT_MODELLED)}) are not modelled."
            )
            return problem(501, "Not Implemented", detail, path)
        bare = path.rstrip("/")
        basic = BASIC.get(bare)
        own_plan = bare == PACKAGE
        m = _ROUTE.match(path)
        if basic is None and not own_plan and (m is None or m["b"] not in REST_BUSINESSES):
            return RestResponse(404, orjson.dumps({"code": 404, "message": "Not Found"}))
        allowed = "POST" if m is not None and m["v2"] else "GET, HEAD"
        if method not in allowed.split(", "):
            return RestResponse(405, orjson.dumps({"code": 405, "message": f"Use {allowed}"}), allow=allowed)
        key = self.authenticate(headers.get("apikey") or query.get("apikey") or query.get("apiKey"))
        if key is None:
            return RestResponse(401, orjson.dumps({"code": 401, "message": "Token invalid"}))
        plan = self.plan_for(key)
        if not self.quotas.rest_hit(key, plan.rest_rate_limit, self.rate_window, self.monotonic()):
            msg = f"Request frequency exceed the limit：{plan.rest_rate_limit} times per minute"
            return RestResponse(429, _envelope(429, msg, None))
        if own_plan:
            return RestResponse(200, _envelope(200, "success", package_info(plan, self.rate_window)))
        if basic is not None:
            try:
                data = basic(self.catalogue, query)
            except BadRequest as e:
                return problem(400, "Bad Request", e.detail, path)
            return RestResponse(200, _envelope(200, "success", data))
        assert m is not None
        try:
            data = self._route(m, query, body)
        except _BusinessError as e:
            return RestResponse(200, _envelope(e.ret, e.msg, None))
        return RestResponse(200, _envelope(200, "success", data))

    # -- routes ------------------------------------------------------------------------------------------

    def _route(self, m: re.Match[str], query: Mapping[str, str], body: bytes) -> Any:
        business = m["b"]
        # Segments are matched encoded (an encoded "/" stays inside its segment), then decoded, as servers
        # decode path variables: Swagger UI and generated clients send `BTCUSDT%2CETHUSDT` for a list.
        if m["trade"]:
            return self._trades(business, unquote(m["trade"]))
        if m["depth"]:
            return self._depth(business, unquote(m["depth"]))
        if m["kline"]:
            return self._klines(business, unquote(m["kt"]), unquote(m["kn"]), unquote(m["kline"]))
        return self._klines_v2(business, body)

    def _trades(self, business: str, raw: str) -> list[dict[str, Any]]:
        market = self.market
        rows = []
        for code in self._codes(business, raw):
            last = market.last_trade(code)
            if last is not None:
                rows.append(dict(last))
        return rows

    def _depth(self, business: str, raw: str) -> list[dict[str, Any]]:
        market = self.market
        now = market.now_ms
        # A closed market has no book: the live API then answers a: null, b: null (TSLA.US out of hours).
        return [
            market.depth(code, now)
            if market.is_open(code, now)
            else {"s": code, "t": now, "a": None, "b": None}
            for code in self._codes(business, raw)
        ]

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
        try:
            schemas.validate_document(req, "rest/batch-kline-request.json")
        except schemas.ContractError as e:
            v = e.violations[0]
            if v.rule == "required":
                raise _BusinessError(507, f"Param lost：{v.path.rsplit('.', 1)[-1]}") from None
            raise _BusinessError(506, f"Param error：{v.path} {v.message}"[:300]) from None
        ktype, knum, codes = req["klineType"], req["klineNum"], req["codes"]
        ts = req.get("timestamp")
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
