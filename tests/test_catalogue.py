"""The catalogue and the reference data the /common/basic/* endpoints serve from it (pure functions)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infoway_mock.mockserver.catalogue import (
    BUSINESSES,
    MARKETS,
    SCHEDULE_TYPES,
    SYMBOL_TYPES,
    TYPE_BUSINESS,
    BadRequest,
    Catalogue,
    market_rows,
    symbol_info_rows,
    symbol_rows,
    trading_days,
    trading_schedule_rows,
)
from infoway_mock.mockserver.market import Market
from infoway_mock.schemas import schema_violations, validate_server_frame

CAT = Catalogue.default()
START_MS = 1_796_137_200_000  # 2026-12-01 15:00 UTC, a Tuesday

# PROTOCOL.md "Added 2026-12-02" and the docs' example requests: symbol -> (business, type).
DOCUMENTED = {
    ".DJI.US": ("stock", "STOCK_US"),
    ".IXIC.US": ("stock", "STOCK_US"),
    "AAPL.US": ("stock", "STOCK_US"),
    "TSLA.US": ("stock", "STOCK_US"),
    "00700.HK": ("stock", "STOCK_HK"),
    "00285.HK": ("stock", "STOCK_HK"),
    "600519.SH": ("stock", "STOCK_CN"),
    "000001.SZ": None,  # named in the docs as a format only
    "002594.SZ": ("stock", "STOCK_CN"),
    "7203.JP": ("japan", "STOCK_JP"),
    "005930.KS": ("korea", "STOCK_KS"),
    "RELIANCE.IN": ("india", "STOCK_IN"),
    "2330.TW": ("taiwan", "STOCK_TW"),
    "BTCUSDT": ("crypto", "CRYPTO"),
    "ETHUSDT": ("crypto", "CRYPTO"),
    "EURUSD": ("common", "FOREX"),
    "USDCNY": ("common", "FOREX"),
    "USDCNH": ("common", "FOREX"),
    "AUDCAD": ("common", "FOREX"),
    "XAUUSD": ("common", "METAL"),
    "XAGUSD": ("common", "METAL"),
    "XPTUSD": ("common", "METAL"),
    "XPDUSD": ("common", "METAL"),
    "XAUAUD": ("common", "METAL"),
    "XAUCNH": ("common", "METAL"),
    "XCUUSD": ("common", "METAL"),
    "XNIUSD": ("common", "METAL"),
    "NGAS": ("common", "ENERGY"),
    "USOIL": ("common", "ENERGY"),
    "CN50": ("common", "INDICES"),
    "HK50": ("common", "INDICES"),
    "IF2401.CFE": ("common", "FUTURES"),
}


@pytest.mark.parametrize("symbol", [s for s, v in DOCUMENTED.items() if v])
def test_documented_symbols_present(symbol: str) -> None:
    inst = CAT.get(symbol)
    assert inst is not None, symbol
    assert (inst.business, inst.kind) == DOCUMENTED[symbol]


def test_businesses_and_suffixes() -> None:
    assert BUSINESSES == ("common", "stock", "crypto", "japan", "india", "korea", "taiwan")
    assert set(TYPE_BUSINESS) == set(SYMBOL_TYPES) and len(SYMBOL_TYPES) == 13
    for business in BUSINESSES:
        assert CAT.for_business(business), business
    suffix = {"japan": ".JP", "india": ".IN", "korea": ".KS", "taiwan": ".TW"}
    for inst in CAT.all():
        assert not inst.symbol.endswith((".NS", ".NSE", ".T")), inst.symbol  # Yahoo's, answered 508 live
        if inst.business in suffix:
            assert inst.symbol.endswith(suffix[inst.business]), inst.symbol
        assert inst.name and inst.name_cn and inst.name_hk, inst.symbol
        assert TYPE_BUSINESS[inst.kind] == inst.business
    for type_ in SYMBOL_TYPES:
        assert CAT.of_type(type_), type_


def test_instrument_must_stream_on_its_types_business() -> None:
    with pytest.raises(ValueError, match="streams on business 'korea'"):
        Catalogue([replace(CAT.get("005930.KS"), business="stock")])
    with pytest.raises(ValueError, match="unknown type"):
        Catalogue([replace(CAT.get("BTCUSDT"), kind="COIN")])
    with pytest.raises(ValueError, match="unknown session"):
        Catalogue([replace(CAT.get("BTCUSDT"), session="MARS")])


def test_every_symbol_streams_valid_frames() -> None:
    """Leading dots, new suffixes and new price grids all pass the contract, trades, depth and klines."""
    market = Market(3, CAT, start_ms=START_MS, trade_rate=5.0)
    market.advance(START_MS + 20_000)
    for inst in CAT.all():
        s = inst.symbol
        assert schema_violations(market.last_trade(s), "rest/trade-row.json") == [], s
        validate_server_frame({"code": 10002, "data": market.last_trade(s)})
        validate_server_frame({"code": 10005, "data": market.depth(s, START_MS + 20_000)})
        validate_server_frame({"code": 10008, "data": market.kline(s, 1, START_MS + 20_000)})
        rows = market.closed_klines(s, 1, 3, START_MS + 20_000)
        assert schema_violations({"s": s, "respList": rows}, "rest/kline-row.json") == []


# -- /common/basic/symbols --------------------------------------------------------------------------------


def test_symbol_rows_shape_and_index() -> None:
    rows = symbol_rows(CAT, "STOCK_US")
    assert [r["symbol"] for r in rows] == [i.symbol for i in CAT.of_type("STOCK_US")]
    assert [r["index"] for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert set(row) == {"symbol", "name_cn", "name_hk", "name_en", "index"}
        assert schema_violations(row, "rest/symbol-row.json") == []
    aapl = next(r for r in rows if r["symbol"] == "AAPL.US")
    assert aapl["name_cn"] == "苹果" and aapl["name_hk"] == "蘋果" and aapl["name_en"] == "Apple Inc."


def test_symbols_filter_keeps_index_and_drops_unknown_symbols() -> None:
    full = {r["symbol"]: r["index"] for r in symbol_rows(CAT, "STOCK_US")}
    rows = symbol_rows(CAT, "STOCK_US", " TSLA.US,.DJI.US,NOPE.US,BTCUSDT ,")
    assert [r["symbol"] for r in rows] == [".DJI.US", "TSLA.US"]  # catalogue order; BTCUSDT is not STOCK_US
    assert all(r["index"] == full[r["symbol"]] for r in rows)
    assert symbol_rows(CAT, "crypto", "BTCUSDT")[0]["symbol"] == "BTCUSDT"  # type is case-insensitive
    assert symbol_rows(CAT, "STOCK_KS") and symbol_rows(CAT, "STOCK_TW")


@pytest.mark.parametrize(
    ("type_", "symbols", "detail"),
    [
        (None, None, "Required parameter 'type' is not present."),
        ("  ", None, "Required parameter 'type' is not present."),
        ("US", None, "Parameter 'type' must be one of STOCK_US"),  # a market code is not a type
        ("STOCK_US", ",".join(f"S{i}.US" for i in range(501)), "at most 500 are allowed"),
    ],
)
def test_symbols_bad_requests(type_: str | None, symbols: str | None, detail: str) -> None:
    with pytest.raises(BadRequest) as info:
        symbol_rows(CAT, type_, symbols)
    assert detail in info.value.detail


def test_symbol_info_rows() -> None:
    rows = symbol_info_rows(CAT, "STOCK_HK", "00285.HK,00700.HK")
    assert [r["symbol"] for r in rows] == ["00700.HK", "00285.HK"]
    byd = rows[1]
    assert byd["tick_size"] == "0.05" and byd["currency"] == "HKD" and byd["market"] == "HK"
    assert byd["timezone"] == "Asia/Hong_Kong" and byd["type"] == "STOCK_HK"
    for type_ in SYMBOL_TYPES:
        for row in symbol_info_rows(CAT, type_):
            assert schema_violations(row, "rest/symbol-info-row.json") == [], row
    currencies = {r["symbol"]: r["currency"] for r in symbol_info_rows(CAT, "METAL")}
    assert currencies["XAUCNH"] == "CNH" and currencies["XAUAUD"] == "AUD" and currencies["XAUUSD"] == "USD"
    with pytest.raises(BadRequest):
        symbol_info_rows(CAT, None, "AAPL.US")


# -- /common/basic/markets, trading_days, trading_schedule ------------------------------------------------


def test_market_rows() -> None:
    rows = market_rows()
    assert [r["market"] for r in rows] == ["US", "HK", "CN", "JP", "KS", "IN", "TW"] == list(MARKETS)
    for row in rows:
        assert schema_violations(row, "rest/market-row.json") == []
    hk = next(r for r in rows if r["market"] == "HK")
    assert hk["sessions"][:2] == [
        {"open": "Mon 09:30", "close": "Mon 12:00"},
        {"open": "Mon 13:00", "close": "Mon 16:00"},
    ]


def test_trading_days_skip_weekends_and_echo_the_date_format() -> None:
    rows = trading_days("US", "20261201", "20261208")  # Tue 1 .. Tue 8 December 2026
    assert [r["day"] for r in rows] == [
        "20261201",
        "20261202",
        "20261203",
        "20261204",
        "20261207",
        "20261208",
    ]
    assert {r["market"] for r in rows} == {"US"}
    dashed = trading_days("hk", "2026-12-04", "2026-12-07")
    assert [r["day"] for r in dashed] == ["2026-12-04", "2026-12-07"]
    for row in rows + dashed:
        assert schema_violations(row, "rest/trading-day-row.json") == []
    assert len(trading_days("TW", "20261205", "20261206", mode="always")) == 2  # what the mock then streams
    assert trading_days("JP", "20261205", "20261206") == []


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        ((None, "20261201", "20261202"), "Required parameter 'market'"),
        (("XX", "20261201", "20261202"), "Parameter 'market' must be one of"),
        (("US", None, "20261202"), "Required parameter 'beginDay'"),
        (("US", "2026/12/01", "20261202"), "Parameter 'beginDay' must be a date"),
        (("US", "20261301", "20261302"), "Parameter 'beginDay' must be a date"),
        (("US", "20261202", "20261201"), "'endDay' is before 'beginDay'"),
        (("US", "20260101", "20270102"), "at most 366 are allowed"),
    ],
)
def test_trading_days_bad_requests(args: tuple[str | None, ...], detail: str) -> None:
    with pytest.raises(BadRequest) as info:
        trading_days(*args)
    assert detail in info.value.detail


def test_trading_schedule_rows() -> None:
    rows = trading_schedule_rows(CAT)
    assert {r["type"] for r in rows} == set(SCHEDULE_TYPES)
    for row in rows:
        assert schema_violations(row, "rest/trading-schedule-row.json") == []
    forex = trading_schedule_rows(CAT, "forex")
    assert {r["type"] for r in forex} == {"FOREX"}
    eur = next(r for r in forex if r["symbol"] == "EURUSD")
    assert eur["sessions"] == [{"open": "Sun 17:00", "close": "Fri 17:00"}]
    assert eur["timezone"] == "America/New_York"
    future = next(r for r in trading_schedule_rows(CAT, "FUTURES") if r["symbol"] == "IF2401.CFE")
    assert future["timezone"] == "Asia/Shanghai"  # it follows the CN session, not the CFD week
    with pytest.raises(BadRequest, match="must be one of ENERGY"):
        trading_schedule_rows(CAT, "STOCK_US")  # equities are refused (the SDK's note)
