"""The mock over real sockets on 127.0.0.1: handshake, requests, errors, pushes, limits."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infoway_mock import schemas
from tests.conftest import wait_until


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def aget(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http_get, url, headers)


@pytest.mark.infoway_parity
async def test_welcome_then_trade_subscribe_ack_and_pushes(server, connect) -> None:
    ws = await connect(server.ws_url("crypto"))
    await ws.send({"code": 10000, "trace": "tr-1", "data": {"codes": "BTCUSDT,ETHUSDT"}})
    ack = await ws.expect_code(10001)
    assert ack == {"code": 10001, "trace": "tr-1", "msg": "ok"}
    seen: set[str] = set()
    while seen != {"BTCUSDT", "ETHUSDT"}:
        push = await ws.expect_code(10002)
        schemas.validate_server_frame(push)
        seen.add(push["data"]["s"])


@pytest.mark.infoway_parity
async def test_unknown_key_gets_401_with_headers(server) -> None:
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(server.ws_url("crypto", key="nope"))
    resp = info.value.response
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'apikey realm="key"'
    assert resp.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(server.ws_url("crypto", key=None))
    assert info.value.response.status_code == 401


@pytest.mark.infoway_parity
async def test_key_in_header_is_accepted(server, connect, api_key) -> None:
    url = server.ws_url("crypto", key=None)
    await connect(url, additional_headers={"apiKey": api_key})


@pytest.mark.infoway_parity
async def test_unknown_path_404(server) -> None:
    status, _, _ = await aget(f"{server.http_url}/nope")
    assert status == 404


@pytest.mark.infoway_parity
async def test_unknown_business_gets_514_and_close(server, connect) -> None:
    ws = await connect(server.ws_url("forex"), welcome=False)
    err = await ws.recv()
    assert err["code"] == 514 and "traceId" in err
    with pytest.raises(ConnectionClosed):
        await ws.recv()


@pytest.mark.infoway_parity
async def test_stock_banner_precedes_welcome(server, connect) -> None:
    ws = await connect(server.ws_url("stock"), welcome=False)
    assert await ws.recv() == "You have permission to subscribe to all market data"
    assert (await ws.recv())["code"] == 200


@pytest.mark.infoway_parity
async def test_every_request_code_is_acked(server, connect) -> None:
    ws = await connect(server.ws_url("crypto"))
    requests: list[tuple[dict[str, Any], int]] = [
        ({"code": 10000, "trace": "a", "data": {"codes": "BTCUSDT"}}, 10001),
        ({"code": 10003, "trace": "b", "data": {"codes": "BTCUSDT"}}, 10004),
        (
            {
                "code": 10006,
                "trace": "c",
                "data": {"arr": [{"type": t, "codes": "BTCUSDT"} for t in range(1, 13)]},
            },
            10007,
        ),
        ({"code": 11000, "trace": "d", "data": {"codes": "BTCUSDT"}}, 11010),
        ({"code": 11001, "trace": "e", "data": {"codes": "BTCUSDT"}}, 11010),
        ({"code": 11002, "trace": "f", "data": {"codes": "BTCUSDT", "klineTypes": "1,2"}}, 11010),
        ({"code": 10010, "trace": "g", "ack": 1}, 10011),
    ]
    for frame, ack_code in requests:
        await ws.send(frame)
        ack = await ws.expect(lambda f, t=frame["trace"]: isinstance(f, dict) and f.get("trace") == t)
        assert ack["code"] == ack_code and ack["msg"] == "ok"


@pytest.mark.infoway_parity
async def test_depth_and_kline_pushes_are_valid_and_consistent(server, connect) -> None:
    ws = await connect(server.ws_url("crypto"))
    await ws.send({"code": 10003, "trace": "d", "data": {"codes": "BTCUSDT"}})
    await ws.send({"code": 10006, "trace": "k", "data": {"arr": [{"type": 1, "codes": "BTCUSDT"}]}})
    depth = await ws.expect_code(10005)
    schemas.validate_server_frame(depth)
    bids, asks = depth["data"]["b"][0], depth["data"]["a"][0]
    assert float(bids[0]) < float(asks[0])
    kline = await ws.expect_code(10008)
    schemas.validate_server_frame(kline)
    assert kline["data"]["ty"] == 1 and isinstance(kline["data"]["t"], str)


@pytest.mark.infoway_parity
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{oops", 515),
        ({"code": 10000, "trace": "x"}, 507),
        ({"code": 10042, "trace": "x", "data": {}}, 506),
        ({"code": 10000, "trace": "x", "data": {"codes": 7}}, 506),
    ],
)
async def test_bad_frames_get_error_and_do_not_affect_others(server, connect, frame: Any, code: int) -> None:
    bystander = await connect(server.ws_url("crypto"))
    await bystander.send({"code": 10000, "trace": "b", "data": {"codes": "BTCUSDT"}})
    await bystander.expect_code(10001)
    ws = await connect(server.ws_url("crypto"))
    await ws.send(frame)
    err = await ws.expect(lambda f: isinstance(f, dict) and "traceId" in f)
    assert err["code"] == code and "data" not in err
    # The offender is still served, and so is everyone else.
    await ws.send({"code": 10010, "trace": "hb", "ack": 1})
    await ws.expect_code(10011)
    await bystander.expect_code(10002)


@pytest.mark.infoway_parity
async def test_binary_frame_gets_515(server, connect) -> None:
    ws = await connect(server.ws_url("crypto"))
    await ws.send(b"\x00\x01binary")
    assert (await ws.expect(lambda f: isinstance(f, dict) and "traceId" in f))["code"] == 515


async def test_rate_limit_501_then_disconnect(make_server, connect) -> None:
    srv = await make_server(rate_limit=5)
    ws = await connect(srv.ws_url("crypto"))
    for i in range(6):
        await ws.send({"code": 10010, "trace": f"h{i}"})
    err = await ws.expect_code(501)
    assert err["msg"] == "Request frequency exceed the limit：5 times per minute"
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_heartbeat_timeout_513_then_close(make_server, connect) -> None:
    srv = await make_server(heartbeat_timeout=0.3)
    ws = await connect(srv.ws_url("crypto"))
    err = await ws.expect_code(513, timeout=3)
    assert err["msg"] == "Websocket heartbeat timeout" and err["traceId"]
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()


async def test_heartbeats_keep_connection_alive(make_server, connect) -> None:
    srv = await make_server(heartbeat_timeout=0.4)
    ws = await connect(srv.ws_url("crypto"))
    for i in range(8):  # 8 x 0.15 s = 3 timeout periods
        await ws.send({"code": 10010, "trace": f"h{i}", "ack": 1})
        await ws.expect_code(10011)
        await asyncio.sleep(0.15)  # the heartbeat cadence under test, not a wait for an event
    assert srv.metrics.errors_sent[513] == 0


async def test_connection_quota_427_under_concurrent_connects(make_server) -> None:
    srv = await make_server(max_connections=3)

    async def attempt() -> Any:
        try:
            return await websockets.connect(srv.ws_url("crypto"), open_timeout=5)
        except InvalidStatus as e:
            return e.response.status_code

    results = await asyncio.gather(*(attempt() for _ in range(10)))
    conns = [r for r in results if not isinstance(r, int)]
    assert len(conns) == 3
    assert sorted(r for r in results if isinstance(r, int)) == [427] * 7
    await conns[0].close()
    await wait_until(lambda: srv.quotas.connections("demo") == 2)
    extra = await websockets.connect(srv.ws_url("crypto"))
    for c in [*conns[1:], extra]:
        await c.close()
    await wait_until(lambda: srv.counters()["quota_connections"] == 0)


async def test_product_limit_505(make_server, connect) -> None:
    srv = await make_server(max_products_per_connection=2)
    ws = await connect(srv.ws_url("crypto"))
    await ws.send({"code": 10000, "trace": "x", "data": {"codes": "BTCUSDT,ETHUSDT,SOLUSDT"}})
    err = await ws.expect_code(505)
    assert err["msg"] == "Single WS subscribe exceeds the limit 2"


async def test_counters_return_to_idle_after_clients_leave(server, connect) -> None:
    for _ in range(3):
        ws = await connect(server.ws_url("crypto"))
        await ws.send({"code": 10000, "trace": "x", "data": {"codes": "BTCUSDT,ETHUSDT"}})
        await ws.expect_code(10001)
        await ws.close()
    await wait_until(lambda: all(v == 0 for v in server.counters().values()))


async def test_healthz_and_metrics(server, connect) -> None:
    ws = await connect(server.ws_url("crypto"))
    await ws.send("nope")
    await ws.expect_code(515)
    status, _, body = await aget(f"{server.http_url}/healthz")
    assert status == 200 and orjson.loads(body)["status"] == "ok"
    status, headers, body = await aget(f"{server.http_url}/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert "infoway_connections 1" in text
    assert 'infoway_errors_sent_total{code="515"} 1' in text
    assert 'infoway_frames_sent_total{code="200"}' in text


@pytest.mark.infoway_parity
async def test_rest_snapshots(server, api_key) -> None:
    h = {"apiKey": api_key}
    status, _, body = await aget(f"{server.http_url}/crypto/batch_trade/BTCUSDT,ETHUSDT", h)
    env = orjson.loads(body)
    assert status == 200 and env["ret"] == 200 and {r["s"] for r in env["data"]} <= {"BTCUSDT", "ETHUSDT"}
    status, _, body = await aget(f"{server.http_url}/crypto/batch_depth/BTCUSDT", h)
    (row,) = orjson.loads(body)["data"]
    assert float(row["b"][0][0]) < float(row["a"][0][0])
    status, _, body = await aget(f"{server.http_url}/crypto/batch_kline/1/20/BTCUSDT", h)
    (row,) = orjson.loads(body)["data"]
    bars = row["respList"]
    assert len(bars) == 20 and int(bars[0]["t"]) > int(bars[1]["t"])
    status, _, body = await aget(f"{server.http_url}/common/basic/symbols?type=CRYPTO", h)
    symbols = {r["symbol"] for r in orjson.loads(body)["data"]}
    assert {"BTCUSDT", "ETHUSDT"} <= symbols


@pytest.mark.infoway_parity
async def test_rest_errors(server, api_key) -> None:
    status, _, body = await aget(f"{server.http_url}/crypto/batch_trade/BTCUSDT", {"apiKey": "bad"})
    assert status == 401 and orjson.loads(body) == {"code": 401, "message": "Token invalid"}
    status, _, body = await aget(f"{server.http_url}/stock/batch_trade/AAPL", {"apiKey": api_key})
    assert status == 200 and orjson.loads(body)["ret"] == 500
    status, _, body = await aget(f"{server.http_url}/crypto/batch_kline/1/501/BTCUSDT", {"apiKey": api_key})
    assert orjson.loads(body)["ret"] == 503  # "Kline quantity exceeds the limit" (the SDK's label)


async def test_restart_drops_everyone_and_comes_back_on_same_port(server, connect) -> None:
    ws = await connect(server.ws_url("crypto"))
    port = server.port
    task = asyncio.create_task(server.restart(down_for=0.3))
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()
    await task
    assert server.port == port
    await connect(server.ws_url("crypto"))
