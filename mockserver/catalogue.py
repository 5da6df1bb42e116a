"""The symbol catalogue: what each business streams, at realistic price levels, ticks and decimals, and
the reference data the `/common/basic/*` endpoints serve from it (pure functions returning JSON rows).

Symbols as the vendor spells them (PROTOCOL.md, "Added 2026-12-02", and the SDK `infoway-sdk` 0.4.1):
suffixed equities (.US .HK .SH .SZ .JP .KS .IN .TW; "India is .IN, not Yahoo .NS"), US indices with a
leading dot (.DJI.US), bare forex/metal/energy/index-CFD codes, exchange-suffixed futures (IF2401.CFE from
the tutorial), USDT pairs for crypto. Every documented example symbol is present.

Each instrument has a symbol `type` from the SDK's SymbolType. Index quotes of the stock business
(.DJI.US, .IXIC.US) are STOCK_US: they follow US hours; INDICES is the 24/5 index CFDs of `common`.

The live symbol list returns rows `{symbol, name_cn, name_hk, name_en, index}`. `index` is not documented;
the mock sends the row's 1-based position in the full list of its type (stable whatever `symbols=` filter
is applied), an integer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from .trading_hours import ALWAYS, SCHEDULE_FOR_TYPE, SCHEDULES, Schedule, check_mode, schedule_named

#: Every WebSocket / REST `business` the mock serves (the SDK's Business enum).
BUSINESSES = ("common", "stock", "crypto", "japan", "india", "korea", "taiwan")

#: The SDK's SymbolType, and which business streams each type.
TYPE_BUSINESS: dict[str, str] = {
    "STOCK_US": "stock",
    "STOCK_CN": "stock",
    "STOCK_HK": "stock",
    "STOCK_JP": "japan",
    "STOCK_KS": "korea",
    "STOCK_IN": "india",
    "STOCK_TW": "taiwan",
    "CRYPTO": "crypto",
    "FOREX": "common",
    "FUTURES": "common",
    "ENERGY": "common",
    "METAL": "common",
    "INDICES": "common",
}
SYMBOL_TYPES = tuple(TYPE_BUSINESS)
#: Types `/common/basic/markets/trading_schedule` accepts (the SDK's ScheduleType; equities are a 400).
SCHEDULE_TYPES = ("ENERGY", "FOREX", "FUTURES", "METAL", "INDICES")

#: Equity markets (the SDK's Market enum): names, currency, the type and business they stream on.
MARKETS: dict[str, dict[str, str]] = {
    "US": {
        "name_en": "US stocks",
        "name_cn": "美股",
        "name_hk": "美股",
        "currency": "USD",
        "type": "STOCK_US",
    },
    "HK": {
        "name_en": "Hong Kong stocks",
        "name_cn": "港股",
        "name_hk": "港股",
        "currency": "HKD",
        "type": "STOCK_HK",
    },
    "CN": {
        "name_en": "China A-shares",
        "name_cn": "A股",
        "name_hk": "A股",
        "currency": "CNY",
        "type": "STOCK_CN",
    },
    "JP": {
        "name_en": "Japan stocks",
        "name_cn": "日股",
        "name_hk": "日股",
        "currency": "JPY",
        "type": "STOCK_JP",
    },
    "KS": {
        "name_en": "Korea stocks",
        "name_cn": "韩股",
        "name_hk": "韓股",
        "currency": "KRW",
        "type": "STOCK_KS",
    },
    "IN": {
        "name_en": "India stocks",
        "name_cn": "印度股",
        "name_hk": "印度股",
        "currency": "INR",
        "type": "STOCK_IN",
    },
    "TW": {
        "name_en": "Taiwan stocks",
        "name_cn": "台股",
        "name_hk": "台股",
        "currency": "TWD",
        "type": "STOCK_TW",
    },
}
_MARKET_OF_TYPE = {m["type"]: code for code, m in MARKETS.items()}
_CURRENCY = {"HK50": "HKD", "CN50": "USD", "IF2401.CFE": "CNY"}

MAX_FILTER_SYMBOLS = 500  # symbols in one `symbols=` filter; more is a 400
MAX_CALENDAR_DAYS = 366  # days in one trading_days range; more is a 400


class BadRequest(ValueError):
    """A reference-data request the vendor answers with HTTP 400 (an RFC 7807 body on /common/basic/*)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    business: str
    name: str  # English
    kind: str  # the symbol type: one of SYMBOL_TYPES
    price: float  # initial price level
    price_decimals: int
    tick: int  # price tick in units of 10**-price_decimals
    volume_decimals: int
    typical_volume: float  # median trade size
    volatility: float  # annualised
    weight: float = 1.0  # relative trade rate
    name_cn: str = ""  # simplified Chinese
    name_hk: str = ""  # traditional Chinese
    session: str | None = None  # trading schedule (trading_hours.SCHEDULES); None = the type's

    @property
    def market(self) -> str | None:
        """The equity market code (US, HK, CN, JP, KS, IN, TW), None for crypto and `common` products."""
        return _MARKET_OF_TYPE.get(self.kind)

    @property
    def schedule(self) -> Schedule:
        return schedule_named(self.session or SCHEDULE_FOR_TYPE[self.kind])

    @property
    def currency(self) -> str:
        if self.symbol in _CURRENCY:
            return _CURRENCY[self.symbol]
        if self.market:
            return MARKETS[self.market]["currency"]
        if self.kind == "CRYPTO":
            return "USDT"
        if self.kind in ("FOREX", "METAL") and len(self.symbol) == 6:
            return self.symbol[3:]
        return "USD"


def _i(
    symbol: str,
    business: str,
    name: str,
    kind: str,
    price: float,
    pd: int,
    tick: int,
    vd: int,
    vol: float,
    sigma: float,
    weight: float = 1.0,
    session: str | None = None,
) -> Instrument:
    cn, hk = _NAMES[symbol]
    return Instrument(symbol, business, name, kind, price, pd, tick, vd, vol, sigma, weight, cn, hk, session)


# Chinese names (simplified, traditional) as Chinese-language quote services show them.
_NAMES: dict[str, tuple[str, str]] = {
    "EURUSD": ("欧元/美元", "歐元/美元"),
    "GBPUSD": ("英镑/美元", "英鎊/美元"),
    "USDJPY": ("美元/日元", "美元/日圓"),
    "AUDUSD": ("澳元/美元", "澳元/美元"),
    "AUDCAD": ("澳元/加元", "澳元/加元"),
    "USDCNH": ("美元/离岸人民币", "美元/離岸人民幣"),
    "USDCNY": ("美元/人民币", "美元/人民幣"),
    "XAUUSD": ("现货黄金", "現貨黃金"),
    "XAGUSD": ("现货白银", "現貨白銀"),
    "XPTUSD": ("现货铂金", "現貨鉑金"),
    "XPDUSD": ("现货钯金", "現貨鈀金"),
    "XAUAUD": ("黄金/澳元", "黃金/澳元"),
    "XAUCNH": ("黄金/离岸人民币", "黃金/離岸人民幣"),
    "XCUUSD": ("现货铜", "現貨銅"),
    "XNIUSD": ("现货镍", "現貨鎳"),
    "USOIL": ("WTI原油", "WTI原油"),
    "UKOIL": ("布伦特原油", "布蘭特原油"),
    "NGAS": ("天然气", "天然氣"),
    "HK50": ("恒生指数", "恆生指數"),
    "CN50": ("富时中国A50指数", "富時中國A50指數"),
    "US30": ("道琼斯指数", "道瓊斯指數"),
    "US500": ("标普500指数", "標普500指數"),
    "IF2401.CFE": ("沪深300股指期货", "滬深300股指期貨"),
    "GC2612.CMX": ("COMEX黄金期货", "COMEX黃金期貨"),
    "CL2612.NYM": ("NYMEX原油期货", "NYMEX原油期貨"),
    ".DJI.US": ("道琼斯工业平均指数", "道瓊斯工業平均指數"),
    ".IXIC.US": ("纳斯达克综合指数", "納斯達克綜合指數"),
    "AAPL.US": ("苹果", "蘋果"),
    "TSLA.US": ("特斯拉", "特斯拉"),
    "MSFT.US": ("微软", "微軟"),
    "NVDA.US": ("英伟达", "輝達"),
    "AMZN.US": ("亚马逊", "亞馬遜"),
    "00700.HK": ("腾讯控股", "騰訊控股"),
    "09988.HK": ("阿里巴巴-W", "阿里巴巴-W"),
    "03690.HK": ("美团-W", "美團-W"),
    "00285.HK": ("比亚迪电子", "比亞迪電子"),
    "600519.SH": ("贵州茅台", "貴州茅台"),
    "601318.SH": ("中国平安", "中國平安"),
    "002594.SZ": ("比亚迪", "比亞迪"),
    "300750.SZ": ("宁德时代", "寧德時代"),
    "BTCUSDT": ("比特币", "比特幣"),
    "ETHUSDT": ("以太坊", "以太坊"),
    "SOLUSDT": ("Solana", "Solana"),
    "BNBUSDT": ("币安币", "幣安幣"),
    "XRPUSDT": ("瑞波币", "瑞波幣"),
    "DOGEUSDT": ("狗狗币", "狗狗幣"),
    "ADAUSDT": ("艾达币", "艾達幣"),
    "7203.JP": ("丰田汽车", "豐田汽車"),
    "6758.JP": ("索尼集团", "索尼集團"),
    "RELIANCE.IN": ("信实工业", "信實工業"),
    "TCS.IN": ("塔塔咨询服务", "塔塔諮詢服務"),
    "005930.KS": ("三星电子", "三星電子"),
    "000660.KS": ("SK海力士", "SK海力士"),
    "2330.TW": ("台积电", "台積電"),
    "2317.TW": ("鸿海", "鴻海"),
}

_DEFAULT: tuple[Instrument, ...] = (
    # common: forex, metals, energy, index CFDs, futures
    _i("EURUSD", "common", "Euro / US Dollar", "FOREX", 1.0842, 5, 1, 2, 1.0, 0.07, 3),
    _i("GBPUSD", "common", "British Pound / US Dollar", "FOREX", 1.2715, 5, 1, 2, 1.0, 0.08, 2),
    _i("USDJPY", "common", "US Dollar / Japanese Yen", "FOREX", 151.42, 3, 1, 2, 1.0, 0.09, 2),
    _i("AUDUSD", "common", "Australian Dollar / US Dollar", "FOREX", 0.6583, 5, 1, 2, 1.0, 0.09),
    _i("AUDCAD", "common", "Australian Dollar / Canadian Dollar", "FOREX", 0.91253, 5, 1, 2, 1.0, 0.07),
    _i("USDCNH", "common", "US Dollar / Offshore Yuan", "FOREX", 7.2461, 4, 1, 2, 1.0, 0.04),
    _i("USDCNY", "common", "US Dollar / Chinese Yuan", "FOREX", 7.2412, 4, 1, 2, 1.0, 0.03),
    _i("XAUUSD", "common", "Gold spot", "METAL", 2631.45, 2, 1, 2, 0.5, 0.15, 3),
    _i("XAGUSD", "common", "Silver spot", "METAL", 31.152, 3, 1, 1, 5.0, 0.25),
    _i("XPTUSD", "common", "Platinum spot", "METAL", 945.3, 2, 1, 2, 1.0, 0.25),
    _i("XPDUSD", "common", "Palladium spot", "METAL", 985.5, 2, 1, 2, 1.0, 0.35),
    _i("XAUAUD", "common", "Gold / Australian Dollar", "METAL", 3997.2, 2, 1, 2, 0.5, 0.15),
    _i("XAUCNH", "common", "Gold / Offshore Yuan", "METAL", 19067.5, 2, 1, 2, 0.5, 0.15),
    _i("XCUUSD", "common", "Copper spot (per lb)", "METAL", 4.1525, 4, 5, 1, 10.0, 0.22),
    _i("XNIUSD", "common", "Nickel spot (per tonne)", "METAL", 16125.0, 1, 5, 2, 1.0, 0.3),
    _i("USOIL", "common", "WTI crude oil", "ENERGY", 70.86, 2, 1, 1, 2.0, 0.35, 2),
    _i("UKOIL", "common", "Brent crude oil", "ENERGY", 74.31, 2, 1, 1, 2.0, 0.33),
    _i("NGAS", "common", "Natural gas", "ENERGY", 2.853, 3, 1, 1, 5.0, 0.6),
    _i("HK50", "common", "Hang Seng 50 index CFD", "INDICES", 19685.0, 1, 10, 0, 2.0, 0.25),
    _i("CN50", "common", "FTSE China A50 index CFD", "INDICES", 13250.0, 1, 25, 0, 2.0, 0.22),
    _i("US30", "common", "Dow Jones 30 index CFD", "INDICES", 43870.5, 1, 5, 0, 1.0, 0.15),
    _i("US500", "common", "S&P 500 index CFD", "INDICES", 5948.7, 1, 1, 0, 1.0, 0.16),
    _i("IF2401.CFE", "common", "CSI 300 futures", "FUTURES", 3542.4, 1, 2, 0, 3.0, 0.22, session="CN"),
    _i("GC2612.CMX", "common", "COMEX gold futures", "FUTURES", 2648.3, 1, 1, 0, 2.0, 0.15),
    _i("CL2612.NYM", "common", "NYMEX WTI crude futures", "FUTURES", 70.52, 2, 1, 0, 3.0, 0.35),
    # stock: US (indices with a leading dot), HK, CN
    _i(".DJI.US", "stock", "Dow Jones Industrial Average", "STOCK_US", 43870.35, 2, 1, 0, 1000.0, 0.15),
    _i(".IXIC.US", "stock", "Nasdaq Composite", "STOCK_US", 19218.17, 2, 1, 0, 1000.0, 0.2),
    _i("AAPL.US", "stock", "Apple Inc.", "STOCK_US", 229.87, 2, 1, 0, 100.0, 0.25, 3),
    _i("TSLA.US", "stock", "Tesla Inc.", "STOCK_US", 352.56, 2, 1, 0, 100.0, 0.6, 3),
    _i("MSFT.US", "stock", "Microsoft Corp.", "STOCK_US", 415.49, 2, 1, 0, 50.0, 0.22, 2),
    _i("NVDA.US", "stock", "NVIDIA Corp.", "STOCK_US", 141.95, 2, 1, 0, 200.0, 0.5, 3),
    _i("AMZN.US", "stock", "Amazon.com Inc.", "STOCK_US", 201.45, 2, 1, 0, 100.0, 0.3),
    _i("00700.HK", "stock", "Tencent Holdings", "STOCK_HK", 402.6, 1, 2, 0, 500.0, 0.3, 2),
    _i("09988.HK", "stock", "Alibaba Group", "STOCK_HK", 83.45, 2, 5, 0, 1000.0, 0.35),
    _i("03690.HK", "stock", "Meituan", "STOCK_HK", 163.9, 1, 1, 0, 500.0, 0.45),
    _i("00285.HK", "stock", "BYD Electronic", "STOCK_HK", 38.5, 2, 5, 0, 500.0, 0.45),
    _i("600519.SH", "stock", "Kweichow Moutai", "STOCK_CN", 1532.0, 2, 1, 0, 100.0, 0.25),
    _i("601318.SH", "stock", "Ping An Insurance", "STOCK_CN", 52.36, 2, 1, 0, 1000.0, 0.25),
    _i("002594.SZ", "stock", "BYD Co.", "STOCK_CN", 287.15, 2, 1, 0, 100.0, 0.35),
    _i("300750.SZ", "stock", "CATL", "STOCK_CN", 262.3, 2, 1, 0, 100.0, 0.35),
    # crypto
    _i("BTCUSDT", "crypto", "Bitcoin / Tether", "CRYPTO", 63039.0, 2, 1, 5, 0.02, 0.6, 4),
    _i("ETHUSDT", "crypto", "Ether / Tether", "CRYPTO", 3018.42, 2, 1, 4, 0.5, 0.7, 3),
    _i("SOLUSDT", "crypto", "Solana / Tether", "CRYPTO", 142.37, 2, 1, 2, 5.0, 0.9, 2),
    _i("BNBUSDT", "crypto", "BNB / Tether", "CRYPTO", 584.2, 1, 1, 3, 1.0, 0.6),
    _i("XRPUSDT", "crypto", "XRP / Tether", "CRYPTO", 0.5231, 4, 1, 0, 500.0, 0.8),
    _i("DOGEUSDT", "crypto", "Dogecoin / Tether", "CRYPTO", 0.12845, 5, 1, 0, 2000.0, 1.0),
    _i("ADAUSDT", "crypto", "Cardano / Tether", "CRYPTO", 0.3617, 4, 1, 1, 800.0, 0.9),
    # japan, india, korea, taiwan
    _i("7203.JP", "japan", "Toyota Motor", "STOCK_JP", 2741.5, 1, 5, 0, 100.0, 0.25),
    _i("6758.JP", "japan", "Sony Group", "STOCK_JP", 3120.0, 0, 1, 0, 100.0, 0.3),
    _i("RELIANCE.IN", "india", "Reliance Industries", "STOCK_IN", 1287.35, 2, 5, 0, 50.0, 0.25),
    _i("TCS.IN", "india", "Tata Consultancy Services", "STOCK_IN", 4125.6, 2, 5, 0, 20.0, 0.22),
    _i("005930.KS", "korea", "Samsung Electronics", "STOCK_KS", 55300.0, 0, 100, 0, 100.0, 0.3),
    _i("000660.KS", "korea", "SK hynix", "STOCK_KS", 175000.0, 0, 100, 0, 50.0, 0.45),
    _i("2330.TW", "taiwan", "Taiwan Semiconductor Manufacturing", "STOCK_TW", 1050.0, 0, 5, 0, 1000.0, 0.3),
    _i("2317.TW", "taiwan", "Hon Hai Precision Industry", "STOCK_TW", 185.5, 1, 5, 0, 1000.0, 0.35),
)


class Catalogue:
    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_symbol: dict[str, Instrument] = {}
        for inst in instruments:
            if inst.business not in BUSINESSES:
                raise ValueError(f"{inst.symbol}: unknown business {inst.business!r}")
            if inst.kind not in TYPE_BUSINESS:
                raise ValueError(
                    f"{inst.symbol}: unknown type {inst.kind!r}; expected one of {', '.join(SYMBOL_TYPES)}"
                )
            if TYPE_BUSINESS[inst.kind] != inst.business:
                raise ValueError(
                    f"{inst.symbol}: type {inst.kind} streams on business {TYPE_BUSINESS[inst.kind]!r}, "
                    f"not {inst.business!r}"
                )
            if inst.session is not None and inst.session not in SCHEDULES:
                raise ValueError(f"{inst.symbol}: unknown session {inst.session!r}")
            self._by_symbol[inst.symbol] = inst

    @classmethod
    def default(cls) -> Catalogue:
        return cls(_DEFAULT)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Catalogue | None = None) -> Catalogue:
        """Add or override instruments: {"instruments": [{"symbol": ..., "business": ..., ...}]}."""
        items = dict((base or cls.default())._by_symbol)
        for spec in raw.get("instruments", []):
            old = items.get(spec["symbol"])
            items[spec["symbol"]] = replace(old, **spec) if old else Instrument(**spec)
        return cls(items.values())

    def only(self, symbols: Iterable[str]) -> Catalogue:
        wanted = list(symbols)
        unknown = [s for s in wanted if s not in self._by_symbol]
        if unknown:
            raise ValueError(f"unknown symbols: {', '.join(unknown)}")
        return Catalogue(self._by_symbol[s] for s in wanted)

    def get(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(symbol)

    def all(self) -> list[Instrument]:
        return list(self._by_symbol.values())

    def for_business(self, business: str) -> list[Instrument]:
        return [i for i in self._by_symbol.values() if i.business == business]

    def of_type(self, type_: str) -> list[Instrument]:
        return [i for i in self._by_symbol.values() if i.kind == type_]

    def __len__(self) -> int:
        return len(self._by_symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol


# -- reference data for /common/basic/* (plain JSON rows; BadRequest -> HTTP 400) --------------------------


def _require_type(type_: str | None, allowed: tuple[str, ...] = SYMBOL_TYPES) -> str:
    if type_ is None or not type_.strip():
        raise BadRequest("Required parameter 'type' is not present.")
    value = type_.strip().upper()
    if value not in allowed:
        raise BadRequest(f"Parameter 'type' must be one of {', '.join(allowed)}, not {type_!r}.")
    return value


def _filter(symbols: str | None, max_symbols: int) -> set[str] | None:
    if symbols is None:
        return None
    wanted = {s.strip() for s in symbols.split(",") if s.strip()}
    if len(wanted) > max_symbols:
        raise BadRequest(
            f"Parameter 'symbols' holds {len(wanted)} symbols; at most {max_symbols} are allowed."
        )
    return wanted


def _typed(
    catalogue: Catalogue, type_: str | None, symbols: str | None, max_symbols: int
) -> list[tuple[int, Instrument]]:
    """(1-based position in the type's full list, instrument), narrowed by the `symbols=` filter."""
    wanted = _filter(symbols, max_symbols)
    rows = list(enumerate(catalogue.of_type(_require_type(type_)), 1))
    return [(n, i) for n, i in rows if wanted is None or i.symbol in wanted]


def symbol_rows(
    catalogue: Catalogue,
    type_: str | None,
    symbols: str | None = None,
    *,
    max_symbols: int = MAX_FILTER_SYMBOLS,
) -> list[dict[str, Any]]:
    """`GET /common/basic/symbols?type=T[&symbols=A,B]`: {symbol, name_cn, name_hk, name_en, index} rows.

    A missing or unknown type is a BadRequest; unknown symbols in the filter are left out, not an error."""
    return [
        {"symbol": i.symbol, "name_cn": i.name_cn, "name_hk": i.name_hk, "name_en": i.name, "index": n}
        for n, i in _typed(catalogue, type_, symbols, max_symbols)
    ]


def symbol_info_rows(
    catalogue: Catalogue,
    type_: str | None,
    symbols: str | None = None,
    *,
    max_symbols: int = MAX_FILTER_SYMBOLS,
) -> list[dict[str, Any]]:
    """`GET /common/basic/symbols/info?type=T&symbols=...`: static data per symbol (the mock's shape: the
    vendor's is not documented)."""
    out = []
    for n, i in _typed(catalogue, type_, symbols, max_symbols):
        sched = i.schedule
        out.append(
            {
                "symbol": i.symbol,
                "type": i.kind,
                "market": i.market,
                "business": i.business,
                "name_cn": i.name_cn,
                "name_hk": i.name_hk,
                "name_en": i.name,
                "index": n,
                "currency": i.currency,
                "timezone": sched.timezone,
                "price_precision": i.price_decimals,
                "tick_size": _decimal(i.tick, i.price_decimals),
                "volume_precision": i.volume_decimals,
            }
        )
    return out


def stock_detail(catalogue: Catalogue, type_: str | None, symbol: str | None) -> dict[str, Any]:
    """`GET /common/basic/stock/detail?type=T&symbol=S`: one symbol's static data, as a symbols/info row
    (the vendor's shape is not documented; the SDK passes exactly one symbol)."""
    kind = _require_type(type_)
    if symbol is None or not symbol.strip():
        raise BadRequest("Required parameter 'symbol' is not present.")
    wanted = symbol.strip()
    if "," in wanted:
        raise BadRequest(f"Parameter 'symbol' takes one symbol, not a list: {symbol!r}.")
    rows = symbol_info_rows(catalogue, kind, wanted)
    if not rows:
        raise BadRequest(f"Symbol {wanted!r} is not a {kind} symbol.")
    return rows[0]


def adjustment_factors(
    catalogue: Catalogue,
    symbol: str | None,
    market: str | None,
    begin_day: str | None,
    end_day: str | None,
) -> list[dict[str, Any]]:
    """`GET /common/basic/symbols/adjustment_factors?symbol=S&market=M&beginDay=..&endDay=..`: the price
    adjustment factors of an equity in a date range. The simulated market has no corporate actions
    (splits, dividends), so a valid request is answered with no rows; bad parameters are 400s as on the
    calendar endpoint."""
    code, *_ = _market_range(market, begin_day, end_day, MAX_CALENDAR_DAYS)  # as on trading_days
    if symbol is None or not symbol.strip():
        raise BadRequest("Required parameter 'symbol' is not present.")
    inst = catalogue.get(symbol.strip())
    if inst is None or inst.market != code:
        raise BadRequest(f"Symbol {symbol.strip()!r} is not a {code} equity.")
    return []


def market_rows() -> list[dict[str, Any]]:
    """`GET /common/basic/markets`: the equity markets with their zone and regular sessions."""
    out = []
    for code, m in MARKETS.items():
        sched = SCHEDULES[code]
        out.append(
            {
                "market": code,
                "name_en": m["name_en"],
                "name_cn": m["name_cn"],
                "name_hk": m["name_hk"],
                "type": m["type"],
                "business": TYPE_BUSINESS[m["type"]],
                "currency": m["currency"],
                "timezone": sched.timezone,
                "session": sched.summary,
                "sessions": sched.rows(),
            }
        )
    return out


_DAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


def _parse_day(name: str, value: str | None) -> tuple[date, bool]:
    if value is None or not value.strip():
        raise BadRequest(f"Required parameter '{name}' is not present.")
    m = _DAY.match(value.strip())
    try:
        if m is None:
            raise ValueError
        return date(int(m[1]), int(m[2]), int(m[3])), "-" in value
    except ValueError:
        raise BadRequest(
            f"Parameter '{name}' must be a date as YYYYMMDD or YYYY-MM-DD, not {value!r}."
        ) from None


def _market_range(
    market: str | None, begin_day: str | None, end_day: str | None, max_days: int
) -> tuple[str, date, int, bool]:
    """The checked `market`, `beginDay`, `endDay` of a calendar query: (market code, first day, days in the
    range, whether beginDay was written YYYY-MM-DD)."""
    if market is None or not market.strip():
        raise BadRequest("Required parameter 'market' is not present.")
    code = market.strip().upper()
    if code not in MARKETS:
        raise BadRequest(f"Parameter 'market' must be one of {', '.join(MARKETS)}, not {market!r}.")
    begin, dashed = _parse_day("beginDay", begin_day)
    end, _ = _parse_day("endDay", end_day)
    if end < begin:
        raise BadRequest("Parameter 'endDay' is before 'beginDay'.")
    span = (end - begin).days + 1
    if span > max_days:
        raise BadRequest(f"The range holds {span} days; at most {max_days} are allowed.")
    return code, begin, span, dashed


def trading_days(
    market: str | None,
    begin_day: str | None,
    end_day: str | None,
    *,
    mode: str = "real",
    max_days: int = MAX_CALENDAR_DAYS,
) -> list[dict[str, str]]:
    """`GET /common/basic/markets/trading_days?market=US&beginDay=...&endDay=...`: one row
    {"market", "day"} per day with a session, days written as the request wrote beginDay (YYYYMMDD or
    YYYY-MM-DD). Weekends are closed; exchange holidays are not modelled. `mode` "always" (the server's
    market_hours) makes every day a trading day, as the mock then streams."""
    code, begin, span, dashed = _market_range(market, begin_day, end_day, max_days)
    sched = ALWAYS if check_mode(mode) == "always" else SCHEDULES[code]
    fmt = "%Y-%m-%d" if dashed else "%Y%m%d"
    days = (begin + timedelta(days=n) for n in range(span))
    return [{"market": code, "day": d.strftime(fmt)} for d in days if sched.is_trading_day(d)]


def trading_schedule_rows(catalogue: Catalogue, type_: str | None = None) -> list[dict[str, Any]]:
    """`GET /common/basic/markets/trading_schedule[?type=T]`: one row per `common` product,
    {symbol, type, name, timezone, session, sessions}; T is one of SCHEDULE_TYPES (equities are a 400)."""
    types = SCHEDULE_TYPES if type_ is None or not type_.strip() else (_require_type(type_, SCHEDULE_TYPES),)
    out = []
    for t in types:
        for i in catalogue.of_type(t):
            sched = i.schedule
            out.append(
                {
                    "symbol": i.symbol,
                    "type": i.kind,
                    "name": i.name,
                    "timezone": sched.timezone,
                    "session": sched.summary,
                    "sessions": sched.rows(),
                }
            )
    return out


def _decimal(units: int, decimals: int) -> str:
    if decimals == 0:
        return str(units)
    whole, frac = divmod(units, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


__all__ = [
    "BUSINESSES",
    "MARKETS",
    "SCHEDULE_TYPES",
    "SYMBOL_TYPES",
    "TYPE_BUSINESS",
    "BadRequest",
    "Catalogue",
    "Instrument",
    "market_rows",
    "symbol_info_rows",
    "symbol_rows",
    "trading_days",
    "trading_schedule_rows",
]
