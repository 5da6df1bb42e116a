"""Vendor parity over real sockets: what the SDK and the vendor's docs use, the mock serves (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from infoway_mock import schemas
from tests.conftest import wait_until
from tests.test_faults import quiet_for
from tests.test_server import aget

# Saturday 2026-08-15 10:00 UTC: equities and CFDs are closed, crypto trades.
WEEKEND = int(datetime(2026, 8, 15, 10, 0, tzinfo=UTC).timestamp() * 1000)
# Tuesday 2026-08-18 14:00 UTC (10:00 in New York): the US market is open, Hong Kong has closed.
US_OPEN = int(datetime(2026, 8, 18, 14, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("business", "symbol"), [("korea", "005930.KS"), ("taiwan", "2330.TW")])
async def test_korea_and_taiwan_stream(server: Any, connect: Any, business: str, symbol: str) -> None:
    ws = await connect(server.ws_url(business))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": symbol}})
    await ws.expect_code(10001)
    push = await ws.expect_code(10002)
    assert push["data"]["s"] == symbol


async def test_index_symbols_with_a_leading_dot(server: Any, connect: Any) -> None:
    ws = await connect(server.ws_url("stock"))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": ".DJI.US,.IXIC.US"}})
    ack = await ws.expect_code(10001)
    assert ack["msg"] == "ok"
    seen = set()
    while seen != {".DJI.US", ".IXIC.US"}:
        push = await ws.expect_code(10002)
        schemas.validate_server_frame(push)
        seen.add(push["data"]["s"])


@pytest.mark.infoway_parity
@pytest.mark.parametrize("symbol", ["USDCNY", "XAUAUD", "CN50", "AUDCAD", "HK50", "XNIUSD", "XPTUSD", "NGAS"])
async def test_the_docs_example_symbols_are_served(server: Any, api_key: str, symbol: str) -> None:
    status, _, body = await aget(f"{server.http_url}/common/batch_trade/{symbol}", {"apiKey": api_key})
    (row,) = orjson.loads(body)["data"]
    assert status == 200 and row["s"] == symbol


async def test_every_known_symbol_has_a_trade_from_the_start(make_server: Any) -> None:
    srv = await make_server(trade_rate=0.001)  # nothing would have traded yet
    _, _, body = await aget(f"{srv.http_url}/stock/batch_trade/AAPL.US,00285.HK", {"apiKey": "demo"})
    assert {r["s"] for r in orjson.loads(body)["data"]} == {"AAPL.US", "00285.HK"}


async def test_a_closed_market_acks_then_stays_silent(make_server: Any, connect: Any) -> None:
    srv = await make_server(market_hours="real", start_ms=WEEKEND, speed=1)
    stock = await connect(srv.ws_url("stock"))
    crypto = await connect(srv.ws_url("crypto"))
    await stock.send({"code": 10000, "trace": "s", "data": {"codes": "AAPL.US"}})
    await stock.send({"code": 10003, "trace": "d", "data": {"codes": "AAPL.US"}})
    await stock.expect_code(10001)
    await stock.expect_code(10004)
    await crypto.send({"code": 10000, "trace": "c", "data": {"codes": "BTCUSDT"}})
    await crypto.expect_code(10001)
    for _ in range(3):
        await crypto.expect_code(10002)  # the weekend does not stop crypto
    pushes = [f for f in await quiet_for(stock, 0.5) if orjson.loads(f).get("code") in (10002, 10005)]
    assert pushes == []
    # REST: the last trade (from the Friday close) is still there; the book is null, as live.
    _, _, body = await aget(f"{srv.http_url}/stock/batch_depth/AAPL.US", {"apiKey": "demo"})
    (row,) = orjson.loads(body)["data"]
    assert row["a"] is None and row["b"] is None
    schemas.validate_document(row, "rest/depth-row.json")


async def test_an_open_market_streams_while_another_is_closed(make_server: Any, connect: Any) -> None:
    srv = await make_server(market_hours="real", start_ms=US_OPEN)
    ws = await connect(srv.ws_url("stock"))
    await ws.send({"code": 10000, "trace": "s", "data": {"codes": "AAPL.US,00700.HK"}})
    await ws.expect_code(10001)
    symbols = {(await ws.expect_code(10002))["data"]["s"] for _ in range(10)}
    assert symbols == {"AAPL.US"}


async def test_requests_without_trace_are_a_warning_in_the_report(server: Any, connect: Any) -> None:
    ws = await connect(server.ws_url("crypto"))
    await ws.send({"code": 10000, "data": {"codes": "BTCUSDT"}})
    ack = await ws.expect_code(10001)
    assert ack["trace"] == ""
    await wait_until(lambda: server.report()["clients"][0]["rules"]["trace"]["verdict"] == "warn")
    assert server.report()["verdict"] == "warn"
