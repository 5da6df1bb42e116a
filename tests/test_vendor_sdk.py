"""The vendor's own SDK (`infoway-sdk`, the client most users run) against the mock, unchanged: only its
base URLs point at 127.0.0.1. Every WebSocket subscription kind, unsubscribe, heartbeat, reconnect after a
reset, the news socket, its REST calls (trade, depth, kline via POST v2, symbols, markets, calendar,
stock detail, adjustment factors, package) and its README's examples, with `max_retries=1` so that
nothing passes on a retry; the fundamentals it also offers get a clear 501 "not modelled"."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from infoway import InfowayClient, InfowayNewsWebSocket, InfowayWebSocket
from infoway.exceptions import InfowayAPIError

from infoway_mock.mockserver.faults import Fault
from tests.conftest import wait_until

pytestmark = pytest.mark.slow


class Recorder:
    """The SDK's callbacks, recorded by kind."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.errors: list[Exception] = []
        self.reconnects = 0

    def attach(self, ws: InfowayWebSocket) -> None:
        async def on(kind: str, data: dict[str, Any]) -> None:
            self.got[kind].append(data)

        async def on_error(e: Exception) -> None:
            self.errors.append(e)

        async def on_reconnect() -> None:
            self.reconnects += 1

        ws.on_trade = lambda d: on("trade", d)
        ws.on_depth = lambda d: on("depth", d)
        ws.on_kline = lambda d: on("kline", d)
        ws.on_error = on_error
        ws.on_reconnect = on_reconnect


def sdk_ws(srv: Any, business: str) -> InfowayWebSocket:
    ws = InfowayWebSocket(api_key="demo", business=business, base_url=f"ws://127.0.0.1:{srv.port}/ws")
    ws._heartbeat_interval = 0.2  # the SDK's 30 s, shortened so the test sees several
    ws._initial_backoff = 0.05  # and its 1 s first reconnect delay
    return ws


async def test_sdk_websocket_every_subscription_heartbeat_unsubscribe_and_reconnect(make_server: Any) -> None:
    srv = await make_server()
    ws = sdk_ws(srv, "crypto")
    rec = Recorder()
    rec.attach(ws)
    await ws.subscribe_trade(["BTCUSDT", "ETHUSDT"])
    await ws.subscribe_depth("BTCUSDT")
    await ws.subscribe_kline("ETHUSDT", 1)
    task = asyncio.create_task(ws.connect())
    try:
        await wait_until(lambda: all(rec.got[k] for k in ("trade", "depth", "kline")), timeout=10)
        assert {t["s"] for t in rec.got["trade"]} <= {"BTCUSDT", "ETHUSDT"}
        ((session, _),) = srv.sessions.values()
        await wait_until(lambda: session.heartbeats >= 2, timeout=5)
        # Unsubscribe: the server drops the pair (the SDK sends klineTypes with the interval).
        await ws.unsubscribe_kline("ETHUSDT", 1)
        await ws.unsubscribe_depth("BTCUSDT")
        await wait_until(lambda: not session.klines and not session.depth, timeout=5)
        # A reset: the SDK reconnects and resubscribes what it still wants; data flows again.
        before = len(rec.got["trade"])
        await srv.faults.apply(Fault("reset"))
        await wait_until(lambda: rec.reconnects == 1 and len(rec.got["trade"]) > before + 5, timeout=15)
        ((session2, _),) = srv.sessions.values()
        assert session2.trades == {"BTCUSDT", "ETHUSDT"}
        assert rec.errors == []
    finally:
        await ws.close()
        await asyncio.wait_for(task, 10)
    report = srv.report()
    assert report["verdict"] != "fail", report


@pytest.mark.parametrize(
    ("business", "symbol"),
    [
        ("stock", "AAPL.US"),
        ("japan", "7203.JP"),
        ("india", "RELIANCE.IN"),
        ("korea", "005930.KS"),
        ("taiwan", "2330.TW"),
    ],
)
async def test_sdk_equity_businesses_with_include_ty(make_server: Any, business: str, symbol: str) -> None:
    srv = await make_server()
    ws = sdk_ws(srv, business)
    rec = Recorder()
    rec.attach(ws)
    await ws.subscribe_trade(symbol, include_ty=True)
    task = asyncio.create_task(ws.connect())
    try:
        await wait_until(lambda: len(rec.got["trade"]) >= 3, timeout=10)
        assert all(t["s"] == symbol and isinstance(t["ty"], str) for t in rec.got["trade"])
        assert rec.errors == []
    finally:
        await ws.close()
        await asyncio.wait_for(task, 10)


async def test_sdk_news_socket(make_server: Any) -> None:
    srv = await make_server(news_interval=0.05)
    news = InfowayNewsWebSocket(api_key="demo", base_url=f"ws://127.0.0.1:{srv.port}/news")
    items: list[dict[str, Any]] = []
    errors: list[Exception] = []

    async def on_news(item: dict[str, Any]) -> None:
        items.append(item)

    async def on_error(e: Exception) -> None:
        errors.append(e)

    news.on_news, news.on_error = on_news, on_error
    await news.subscribe("en")
    task = asyncio.create_task(news.connect())
    try:
        await wait_until(lambda: len(items) >= 3, timeout=10)
        assert all(i["lang"] == "en" and i["dk"] and isinstance(i["published"], int) for i in items)
        await news.subscribe("ja")  # replaces the selection
        await wait_until(lambda: items[-1]["lang"] == "ja", timeout=10)
        await news.unsubscribe()
        await wait_until(lambda: srv.hub.news == {}, timeout=5)
        assert errors == []
    finally:
        await news.close()
        await asyncio.wait_for(task, 10)


def _rest(srv: Any) -> InfowayClient:
    return InfowayClient(api_key="demo", base_url=srv.http_url, max_retries=1, timeout=5)


async def test_sdk_rest_market_data_on_every_business(make_server: Any) -> None:
    srv = await make_server()
    symbols = {
        "crypto": "BTCUSDT,ETHUSDT",
        "stock": "AAPL.US,00700.HK",
        "common": "XAUUSD,EURUSD",
        "japan": "7203.JP",
        "india": "RELIANCE.IN",
        "korea": "005930.KS",
        "taiwan": "2330.TW",
    }

    def run() -> None:
        with _rest(srv) as client:
            for business, codes in symbols.items():
                api = getattr(client, business)
                trades = api.get_trade(codes)
                assert {r["s"] for r in trades} == set(codes.split(",")), (business, trades)
                depth = api.get_depth(codes)
                assert all(r["a"] and r["b"] for r in depth)
                one = codes.split(",")[0]
                klines = api.get_kline(one, 1, 10)
                assert len(klines[0]["respList"]) == 10
                two = api.get_kline(codes, 5, 2, timestamp=1_786_775_220)  # several symbols: 2 bars each
                assert len(two) == len(codes.split(","))
            # A batch with one unknown symbol still answers the known ones; all unknown is 508.
            assert [r["s"] for r in client.crypto.get_trade("BTCUSDT,NOPEUSDT")] == ["BTCUSDT"]
            with pytest.raises(InfowayAPIError) as info:
                client.crypto.get_trade("NOPEUSDT")
            assert info.value.ret == 508 and info.value.error_name == "PRODUCT_NOT_EXISTS"

    await asyncio.to_thread(run)


async def test_sdk_rest_reference_data(make_server: Any) -> None:
    srv = await make_server()

    def run() -> None:
        with _rest(srv) as client:
            rows = client.basic.get_symbols("CRYPTO")
            assert {"BTCUSDT", "ETHUSDT"} <= {r["symbol"] for r in rows}
            assert set(rows[0]) == {"symbol", "name_cn", "name_hk", "name_en", "index"}
            only = client.basic.get_symbols("STOCK_US", symbols="AAPL.US,TSLA.US")
            assert {r["symbol"] for r in only} == {"AAPL.US", "TSLA.US"}
            assert client.basic.get_symbol_info("STOCK_HK", "00700.HK")[0]["symbol"] == "00700.HK"
            assert {m["market"] for m in client.basic.get_markets()} >= {"US", "HK", "CN"}
            days = client.basic.get_trading_days("US", "20260803", "20260809")
            assert len(days) == 5  # a week, weekend closed
            assert client.basic.get_trading_schedule_by_type("FOREX")
            assert client.basic.get_trading_schedule()
            with pytest.raises(InfowayAPIError) as info:
                client.basic.get_symbols("")  # the server answers 400 (RFC 7807) without a type
            assert info.value.ret == 400 and "type" in info.value.msg

    await asyncio.to_thread(run)


async def test_sdk_keep_alive_needs_no_retry(make_server: Any) -> None:
    """150 back-to-back SDK calls on one keep-alive connection: with max_retries=1 a single dropped
    connection would raise (the old mock closed every connection after one answer)."""
    srv = await make_server(symbols=["BTCUSDT", "ETHUSDT"])

    def run() -> int:
        with _rest(srv) as client:
            for _ in range(150):
                client.crypto.get_trade("BTCUSDT,ETHUSDT")
        return srv.metrics.rest_requests[200]

    assert await asyncio.to_thread(run) == 150


async def test_sdk_readme_quick_start_and_basic_info_examples(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK README's quick start and its "Basic info" examples, as written there (the key from
    INFOWAY_API_KEY, only base_url pointed at the mock). `packages.get_info()`, `get_stock_detail()` and
    `get_adjustment_factors()` were 404s; they are answered from the key's plan and the catalogue now."""
    from infoway import KlineType, Market, ScheduleType, SymbolType

    srv = await make_server()
    monkeypatch.setenv("INFOWAY_API_KEY", "demo")

    def run() -> None:
        with InfowayClient(base_url=srv.http_url, max_retries=1) as client:
            assert client.stock.get_trade("AAPL.US")[0]["s"] == "AAPL.US"
            assert len(client.crypto.get_kline("BTCUSDT", KlineType.DAY, 30)[0]["respList"]) == 30
            package = client.packages.get_info()
            assert package["packageName"] == "pro" and package["apiNumPerSec"] == 10
            assert package["expireTime"] > 4_000_000_000_000

            client.basic.get_symbols(SymbolType.STOCK_US)
            client.basic.get_symbol_info(SymbolType.STOCK_US, "AAPL.US")
            detail = client.basic.get_stock_detail(SymbolType.STOCK_US, "AAPL.US")
            assert detail["symbol"] == "AAPL.US" and detail["market"] == "US"
            # No corporate actions are simulated: a valid request has no factors.
            assert client.basic.get_adjustment_factors("AAPL.US", Market.US, "20260801", "20260815") == []
            assert len(client.basic.get_trading_days(Market.US, "20260801", "20260815")) == 10
            client.basic.get_trading_schedule()
            assert client.basic.get_trading_schedule_by_type(ScheduleType.ENERGY)
            client.basic.get_markets()

    await asyncio.to_thread(run)


async def test_sdk_reference_data_bad_parameters_are_400s(make_server: Any) -> None:
    srv = await make_server()

    def run() -> list[tuple[int, str]]:
        out = []
        with _rest(srv) as client:
            for call in (
                lambda: client.basic.get_stock_detail("STOCK_US", "00700.HK"),
                lambda: client.basic.get_stock_detail("STOCK_US", "AAPL.US,TSLA.US"),
                lambda: client.basic.get_stock_detail("STOCK_US", ""),
                lambda: client.basic.get_adjustment_factors("00700.HK", "US", "20260801", "20260815"),
                lambda: client.basic.get_adjustment_factors("AAPL.US", "US", "20260815", "20260801"),
                lambda: client.basic.get_adjustment_factors("AAPL.US", "XX", "20260801", "20260815"),
            ):
                with pytest.raises(InfowayAPIError) as info:
                    call()
                out.append((info.value.ret, info.value.msg))
        return out

    answers = await asyncio.to_thread(run)
    assert [ret for ret, _ in answers] == [400] * 6
    assert "not a STOCK_US symbol" in answers[0][1]
    assert "one symbol" in answers[1][1]
    assert "'symbol' is not present" in answers[2][1]
    assert "not a US equity" in answers[3][1]
    assert "before 'beginDay'" in answers[4][1]
    assert "'market' must be one of" in answers[5][1]


async def test_sdk_fundamentals_get_a_clear_not_modelled_answer(make_server: Any) -> None:
    """The SDK's fundamentals, sector and ranking clients reach documented vendor paths the mock does not
    simulate: each gets HTTP 501 whose message says so (it was a bare 404 "Not Found")."""
    from infoway import Market

    srv = await make_server()

    def run() -> list[InfowayAPIError]:
        errors = []
        with _rest(srv) as client:
            for call in (
                lambda: client.market.get_temperature(Market.US),
                lambda: client.plate.get_industry(Market.US),
                lambda: client.stock_info.get_company("AAPL.US"),
                lambda: client.financial.get_dividend("AAPL.US", "STOCK_US"),
            ):
                with pytest.raises(InfowayAPIError) as info:
                    call()
                errors.append(info.value)
        return errors

    for e in await asyncio.to_thread(run):
        assert e.ret == 501 and "not modelled" in e.msg, e


async def test_sdk_readme_error_handling_sees_the_exceptions_it_documents(make_server: Any) -> None:
    """The README's error-handling example: a bad key is InfowayAuthError, the REST quota
    InfowayRateLimitError (here a free-plan key's 61st call in a minute), a stock without suffix an
    InfowayAPIError with a trace id; and a WebSocket handshake 401 is not retried."""
    from infoway import InfowayAuthError, InfowayRateLimitError

    srv = await make_server(keys={"demo": "pro", "free-key": "free"})
    limit = srv.config.plans["free"].rest_rate_limit

    def run() -> None:
        with InfowayClient(api_key="not-a-key", base_url=srv.http_url, max_retries=1) as bad:
            with pytest.raises(InfowayAuthError):
                bad.stock.get_trade("AAPL.US")
        with _rest(srv) as client:
            with pytest.raises(InfowayAPIError) as info:
                client.stock.get_trade("INVALID")
            # The mock answers ret 500 "Param error：...", as live; the SDK classifies it as 506 PARAM_ERROR.
            assert info.value.ret == 506 and "no market suffix" in info.value.msg and info.value.trace_id
        with InfowayClient(api_key="free-key", base_url=srv.http_url, max_retries=1) as free:
            for _ in range(limit):
                free.crypto.get_trade("BTCUSDT")
            with pytest.raises(InfowayRateLimitError):
                free.crypto.get_trade("BTCUSDT")

    await asyncio.to_thread(run)

    ws = InfowayWebSocket(api_key="not-a-key", business="crypto", base_url=f"ws://127.0.0.1:{srv.port}/ws")
    ws._initial_backoff = 0.05
    with pytest.raises(InfowayAuthError, match="Not reconnecting"):  # gives up on 401, not retrying forever
        await asyncio.wait_for(ws.connect(), timeout=10)
    assert srv.metrics.handshakes_refused[401] == 1


async def test_sdk_readme_websocket_and_news_examples(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's WebSocket example as written (plain lambdas as callbacks, subscriptions sent after
    `connect()` started, the key from INFOWAY_API_KEY), its 30 s sleep replaced by waiting for data; and
    its news example (`lang="zh-Hans"` in the constructor)."""
    from infoway import KlineType
    from infoway.ws import InfowayNewsWebSocket as News
    from infoway.ws import InfowayWebSocket as Quotes

    srv = await make_server(news_interval=0.05)
    monkeypatch.setenv("INFOWAY_API_KEY", "demo")
    seen: list[tuple[str, str]] = []
    errors: list[Any] = []

    ws = Quotes(business="crypto", base_url=f"ws://127.0.0.1:{srv.port}/ws")
    ws.on_trade = lambda data: seen.append((data["s"], data["p"]))
    ws.on_error = lambda err: errors.append(err)
    task = asyncio.create_task(ws.connect())
    await ws.subscribe_trade("BTCUSDT,ETHUSDT")
    await ws.subscribe_kline("BTCUSDT", KlineType.MIN_1)
    await wait_until(lambda: {s for s, _ in seen} == {"BTCUSDT", "ETHUSDT"}, timeout=10)
    ((session, _),) = srv.sessions.values()
    assert session.klines
    await ws.unsubscribe_kline("BTCUSDT", KlineType.MIN_1)
    await wait_until(lambda: not session.klines, timeout=5)
    await ws.close()
    await asyncio.wait_for(task, 10)
    assert errors == []

    titles: list[str] = []
    news = News(lang="zh-Hans", base_url=f"ws://127.0.0.1:{srv.port}/news")
    news.on_news = lambda item: titles.append(item["title"])
    news_task = asyncio.create_task(news.connect())
    try:
        await wait_until(lambda: len(titles) >= 2, timeout=10)
        assert all(t.startswith("[zh-Hans]") for t in titles)
    finally:
        await news.close()
        await asyncio.wait_for(news_task, 10)
