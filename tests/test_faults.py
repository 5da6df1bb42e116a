"""Every fault, observed on the wire by a real client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infoway_mock.mockserver.faults import Fault
from tests.conftest import wait_until


async def subscribed(connect, srv, codes: str = "BTCUSDT", key: str = "demo"):
    ws = await connect(srv.ws_url("crypto", key))
    await ws.send({"code": 10000, "trace": "s", "data": {"codes": codes}})
    await ws.expect_code(10001)
    await ws.expect_code(10002)
    return ws


async def drain_closed(ws) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await ws.conn.recv()
    return info.value


async def quiet_for(ws, seconds: float) -> list:
    """Frames that arrive within `seconds` (the window is the observation itself)."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(await asyncio.wait_for(ws.conn.recv(), left))
        except TimeoutError:
            break
    return got


async def test_close_with_code_and_reason(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("close", code=4001, reason="chaos"))
    closed = await drain_closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 4001 and closed.rcvd.reason == "chaos"


async def test_reset_drops_without_close_frame(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("reset"))
    closed = await drain_closed(ws)
    assert closed.rcvd is None


async def test_stall_stops_sending_and_reading_then_resumes(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("stall", seconds=0.6))
    await quiet_for(ws, 0.05)  # frames already in flight
    await ws.send({"code": 10010, "trace": "during", "ack": 1})
    assert await quiet_for(ws, 0.4) == []
    # Once the stall ends the server reads the buffered heartbeat and the stream comes back.
    await ws.expect(lambda f: isinstance(f, dict) and f.get("trace") == "during", timeout=3)
    await ws.expect_code(10002)
    assert not ws.conn.close_code


async def test_stop_reading_keeps_pushing(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("stop_reading", seconds=0.5))
    await ws.send({"code": 10010, "trace": "hb", "ack": 1})
    frames = [orjson.loads(f) for f in await quiet_for(ws, 0.3)]
    assert any(f["code"] == 10002 for f in frames)
    assert not any(f.get("trace") == "hb" for f in frames)
    await ws.expect(lambda f: isinstance(f, dict) and f.get("trace") == "hb", timeout=3)


async def test_delay_holds_pushes_back(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("delay", delay=0.5, seconds=5))
    await quiet_for(ws, 0.05)
    assert await quiet_for(ws, 0.3) == []
    await ws.expect_code(10002, timeout=3)


async def test_error_frame_then_close(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("error", code=500, then_close=True))
    err = await ws.expect_code(500)
    assert set(err) == {"traceId", "code", "msg"}
    await drain_closed(ws)


async def test_refuse_handshakes_for_a_period(server) -> None:
    await server.faults.apply(Fault("refuse", code=427, seconds=0.5))
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(server.ws_url())
    assert info.value.response.status_code == 427
    deadline = time.monotonic() + 5
    while True:
        try:
            conn = await websockets.connect(server.ws_url())
            break
        except InvalidStatus:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    await conn.close()


async def test_duplicate_sends_every_push_twice(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("duplicate", probability=1.0, seconds=5))
    await quiet_for(ws, 0.05)
    frames = [f for f in await quiet_for(ws, 0.5) if orjson.loads(f)["code"] == 10002]
    assert len(frames) >= 4
    # Every push arrives twice in a row. The observation window may cut a pair at either end, so the
    # first and last frames may be seen once; every run in between is exactly two.
    runs = [len(list(group)) for _, group in itertools.groupby(frames)]
    assert all(n == 2 for n in runs[1:-1]) and all(n in (1, 2) for n in (runs[0], runs[-1])), runs


async def test_reorder_swaps_pushes(make_server, connect) -> None:
    srv = await make_server(trade_rate=50.0)
    ws = await subscribed(connect, srv)
    await srv.faults.apply(Fault("reorder", probability=1.0, seconds=5))
    await quiet_for(ws, 0.05)
    times = [orjson.loads(f)["data"]["t"] for f in await quiet_for(ws, 0.5)]
    assert any(b < a for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("variant", ["json", "types", "unknown_code", "binary"])
async def test_malformed_frames(server, connect, variant: str) -> None:
    ws = await connect(server.ws_url())
    await server.faults.apply(Fault("malformed", variant=variant))
    raw = await ws.conn.recv()
    if variant == "binary":
        assert isinstance(raw, bytes)
    elif variant == "json":
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
    else:
        from infoway_mock import schemas

        with pytest.raises(schemas.ContractError):
            schemas.validate_server_frame(orjson.loads(raw))


async def test_restart_closes_port_then_comes_back(server, connect) -> None:
    ws = await subscribed(connect, server)
    await server.faults.apply(Fault("restart", seconds=0.5))
    await drain_closed(ws)
    with pytest.raises(OSError):
        await websockets.connect(server.ws_url(), open_timeout=1)
    deadline = time.monotonic() + 5
    while True:
        try:
            await connect(server.ws_url())
            break
        except OSError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


async def test_faults_hit_only_their_target(make_server, connect) -> None:
    srv = await make_server()
    srv.config.keys["other"] = "pro"
    a = await subscribed(connect, srv)
    b = await subscribed(connect, srv, key="other")
    target = srv.connection_ids()[0]
    await srv.faults.apply(Fault("close", conn=target, code=4002))
    await drain_closed(a)
    await b.expect_code(10002)
    c = await subscribed(connect, srv)
    await srv.faults.apply(Fault("close", key="other", code=4003))
    await drain_closed(b)
    await c.expect_code(10002)


async def test_ongoing_fault_on_all_catches_new_connections(server, connect) -> None:
    await server.faults.apply(Fault("stall", seconds=5))
    ws = await connect(server.ws_url(), welcome=False)
    await ws.send({"code": 10000, "trace": "s", "data": {"codes": "BTCUSDT"}})
    assert await quiet_for(ws, 0.3) == []
    assert server.faults.clear() == 1
    await ws.expect_code(10002)


async def test_control_endpoint_requires_token(server) -> None:
    url = f"ws://127.0.0.1:{server.port}/control"
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(url)
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        await websockets.connect(url, additional_headers={"Authorization": "Bearer wrong"})


async def test_fault_cli_through_control_endpoint(make_server, connect) -> None:
    srv = await make_server(control_token="s3cret")
    ws = await subscribed(connect, srv)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        "fault",
        "close",
        "--all",
        "--code",
        "4005",
        "--url",
        f"ws://127.0.0.1:{srv.port}/control",
        "--token",
        "s3cret",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    reply = orjson.loads(out)
    assert reply["ok"] and len(reply["connections"]) == 1
    closed = await drain_closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 4005
    await wait_until(lambda: srv.metrics.faults_applied["close"] == 1)
