"""The symbol catalogue: what each business streams, at realistic price levels, ticks and decimals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

BUSINESSES = ("common", "stock", "crypto", "japan", "india")


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    business: str
    name: str
    kind: (
        str  # FOREX, FUTURES, ENERGY, METAL, INDEX, STOCK_US, STOCK_HK, STOCK_CN, STOCK_JP, STOCK_IN, CRYPTO
    )
    price: float  # initial price level
    price_decimals: int
    tick: int  # price tick in units of 10**-price_decimals
    volume_decimals: int
    typical_volume: float  # median trade size
    volatility: float  # annualised
    weight: float = 1.0  # relative trade rate


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
) -> Instrument:
    return Instrument(symbol, business, name, kind, price, pd, tick, vd, vol, sigma, weight)


# Symbols as the vendor spells them: suffixed stock codes (.US .HK .SH .SZ, and .JP / .NSE for japan /
# india, our choice), bare forex/metal/energy codes, exchange-suffixed futures (IF2401.CFE from the
# tutorial), USDT pairs for crypto.
_DEFAULT: tuple[Instrument, ...] = (
    # common: forex, metals, energy, indices, futures
    _i("EURUSD", "common", "Euro / US Dollar", "FOREX", 1.0842, 5, 1, 2, 1.0, 0.07, 3),
    _i("GBPUSD", "common", "British Pound / US Dollar", "FOREX", 1.2715, 5, 1, 2, 1.0, 0.08, 2),
    _i("USDJPY", "common", "US Dollar / Japanese Yen", "FOREX", 151.42, 3, 1, 2, 1.0, 0.09, 2),
    _i("AUDUSD", "common", "Australian Dollar / US Dollar", "FOREX", 0.6583, 5, 1, 2, 1.0, 0.09),
    _i("USDCNH", "common", "US Dollar / Offshore Yuan", "FOREX", 7.2461, 4, 1, 2, 1.0, 0.04),
    _i("XAUUSD", "common", "Gold spot", "METAL", 2631.45, 2, 1, 2, 0.5, 0.15, 3),
    _i("XAGUSD", "common", "Silver spot", "METAL", 31.152, 3, 1, 1, 5.0, 0.25),
    _i("USOIL", "common", "WTI crude oil", "ENERGY", 70.86, 2, 1, 1, 2.0, 0.35, 2),
    _i("UKOIL", "common", "Brent crude oil", "ENERGY", 74.31, 2, 1, 1, 2.0, 0.33),
    _i("NGAS", "common", "Natural gas", "ENERGY", 2.853, 3, 1, 1, 5.0, 0.6),
    _i("HK50", "common", "Hang Seng 50 index CFD", "INDEX", 19685.0, 1, 10, 0, 2.0, 0.25),
    _i("US30", "common", "Dow Jones 30 index CFD", "INDEX", 43870.5, 1, 5, 0, 1.0, 0.15),
    _i("US500", "common", "S&P 500 index CFD", "INDEX", 5948.7, 1, 1, 0, 1.0, 0.16),
    _i("IF2401.CFE", "common", "CSI 300 index futures", "FUTURES", 3542.4, 1, 2, 0, 3.0, 0.22),
    _i("GC2612.CMX", "common", "COMEX gold futures", "FUTURES", 2648.3, 1, 1, 0, 2.0, 0.15),
    _i("CL2612.NYM", "common", "NYMEX WTI crude futures", "FUTURES", 70.52, 2, 1, 0, 3.0, 0.35),
    # stock
    _i("AAPL.US", "stock", "Apple Inc.", "STOCK_US", 229.87, 2, 1, 0, 100.0, 0.25, 3),
    _i("TSLA.US", "stock", "Tesla Inc.", "STOCK_US", 352.56, 2, 1, 0, 100.0, 0.6, 3),
    _i("MSFT.US", "stock", "Microsoft Corp.", "STOCK_US", 415.49, 2, 1, 0, 50.0, 0.22, 2),
    _i("NVDA.US", "stock", "NVIDIA Corp.", "STOCK_US", 141.95, 2, 1, 0, 200.0, 0.5, 3),
    _i("AMZN.US", "stock", "Amazon.com Inc.", "STOCK_US", 201.45, 2, 1, 0, 100.0, 0.3),
    _i("00700.HK", "stock", "Tencent Holdings", "STOCK_HK", 402.6, 1, 2, 0, 500.0, 0.3, 2),
    _i("09988.HK", "stock", "Alibaba Group", "STOCK_HK", 83.45, 2, 5, 0, 1000.0, 0.35),
    _i("03690.HK", "stock", "Meituan", "STOCK_HK", 163.9, 1, 1, 0, 500.0, 0.45),
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
    # japan (.JP) and india (.NSE): suffixes are our choice, the vendor does not document them.
    _i("7203.JP", "japan", "Toyota Motor", "STOCK_JP", 2741.5, 1, 5, 0, 100.0, 0.25),
    _i("6758.JP", "japan", "Sony Group", "STOCK_JP", 3120.0, 0, 1, 0, 100.0, 0.3),
    _i("RELIANCE.NSE", "india", "Reliance Industries", "STOCK_IN", 1287.35, 2, 5, 0, 50.0, 0.25),
    _i("TCS.NSE", "india", "Tata Consultancy Services", "STOCK_IN", 4125.6, 2, 5, 0, 20.0, 0.22),
)


class Catalogue:
    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_symbol: dict[str, Instrument] = {}
        for inst in instruments:
            if inst.business not in BUSINESSES:
                raise ValueError(f"{inst.symbol}: unknown business {inst.business!r}")
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

    def __len__(self) -> int:
        return len(self._by_symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol
