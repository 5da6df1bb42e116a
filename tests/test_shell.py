"""Regression tests for the defects the old server shell had (issue 12), over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_sync

from infoway_mock.mockserver import scenario as sc
from infoway_mock.mockserver.background import BackgroundServer
from infoway_mock.mockserver.fanout import text_frame
from infoway_mock.mockserver.faults import Fault, FaultError
from loadtests.lightclient import upgrade_request
from tests.conftest import fast_config, wait_until
from tests.test_server import aget

START = 1_786_775_220_000  # a minute boundary, so candles and the stream line up from the first trade


async def collect_trades(ws: Any, until_t: int, timeout: float = 30) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not out or out[-1]["t"] < until_t:
        frame = await ws.expect_code(10002, timeout=max(0.1, deadline - time.monotonic()))
        out.append(frame["data"])
    return out


# -- 1. REST calls lose trades -----------------------------------------------------------------------------


async def test_rest_calls_during_streaming_lose_no_trades(make_server: Any, connect: Any) -> None:
    """Two identically seeded servers; one also answers 40 REST calls while it streams. The streams must
    be identical: REST used to advance the shared market and throw the new trades away."""
    quiet = await make_server(speed=20, start_ms=START, trade_rate=10.0)
    busy = await make_server(speed=20, start_ms=START, trade_rate=10.0)
    streams = []
    for srv in (quiet, busy):
        ws = await connect(srv.ws_url("crypto"))
        await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT,ETHUSDT"}})
        await ws.expect_code(10001)
        streams.append(ws)
    for _ in range(40):
        status, _, _ = await aget(f"{busy.http_url}/crypto/batch_trade/BTCUSDT,ETHUSDT", {"apiKey": "demo"})
        assert status == 200
        await asyncio.sleep(0.05)  # the cadence of the client's REST polling under test
    horizon = busy.market.now_ms
    a, b = [await collect_trades(ws, horizon) for ws in streams]
    a, b = [[t for t in s if t["t"] <= horizon] for s in (a, b)]
    assert len(a) > 100 and a == b


async def test_pushed_trades_add_up_to_the_candles(make_server: Any, connect: Any) -> None:
    srv = await make_server(speed=60, start_ms=START, trade_rate=10.0, symbols=["BTCUSDT"])
    ws = await connect(srv.ws_url("crypto"))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    await ws.expect_code(10001)
    trades = await collect_trades(ws, START + 3 * 60_000)
    for _ in range(10):  # REST reads in between, as a kline backfill would
        await aget(f"{srv.http_url}/crypto/batch_kline/1/5/BTCUSDT", {"apiKey": "demo"})
    _, _, body = await aget(f"{srv.http_url}/crypto/batch_kline/1/10/BTCUSDT", {"apiKey": "demo"})
    bars = {int(b["t"]) * 1000: b for b in orjson.loads(body)["data"][0]["respList"]}
    for minute in (START, START + 60_000):
        pushed = [t for t in trades if minute <= t["t"] < minute + 60_000]
        assert pushed, minute
        assert sum(Decimal(t["v"]) for t in pushed) == Decimal(bars[minute]["v"])
        assert Decimal(pushed[-1]["p"]) == Decimal(bars[minute]["c"])


# -- 2. the heartbeat timer spun while a connection could not time out --------------------------------------


async def test_stall_past_the_heartbeat_deadline_costs_no_cpu(make_server: Any, connect: Any) -> None:
    srv = await make_server(heartbeat_timeout=0.2)
    ws = await connect(srv.ws_url("crypto"))
    await srv.faults.apply(Fault("stall"))  # no seconds: until cleared
    wakeups = srv.metrics.timer_wakeups
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(2.0)  # the observation window itself: the deadline passes ten times over
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    assert cpu < 0.25 * wall, f"{cpu:.2f} CPU-s in {wall:.2f} s: a timer is spinning"
    assert srv.metrics.timer_wakeups - wakeups <= 1
    assert srv.faults.clear() == 1
    await ws.send({"code": 10010, "trace": "hb", "ack": 1})
    await ws.expect_code(10011)  # heard again, and not timed out for the silence it could not help


async def test_501_whose_close_is_never_answered_costs_no_cpu(make_server: Any, connect: Any) -> None:
    """The heartbeat deadline passes while our close frame waits for an answer that never comes."""
    srv = await make_server(rate_limit=3, heartbeat_timeout=0.2, close_timeout=2.5)
    ws = await connect(srv.ws_url("crypto"))
    for i in range(4):
        await ws.send({"code": 10010, "trace": f"h{i}"})
    # A client that never reads our 501 and close frame, so never answers the close. (Server and client
    # share this event loop: nothing is read between the send above and this line.)
    ws.conn.transport.pause_reading()
    await wait_until(lambda: srv.metrics.errors_sent[501] == 1)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(1.5)  # the observation window: the connection is closing, the deadline long past
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    assert cpu < 0.25 * wall, f"{cpu:.2f} CPU-s in {wall:.2f} s"
    await wait_until(lambda: srv.counters()["sessions"] == 0, timeout=5)  # aborted after close_timeout
    assert srv.counters()["timers"] == 0


# -- 3. one bad fault stopped the market for good -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"kind": "delay", "delay": "abc"}, "$.fault.delay"),
        ({"kind": "stall", "seconds": -5}, "$.fault.seconds"),
        ({"kind": "error", "code": 99999}, "$.fault.code"),
        ({"kind": "close", "code": 1005}, "$.fault.code"),
        ({"kind": "refuse", "conn": 1}, "$.fault.conn"),
    ],
)
async def test_a_bad_fault_is_refused_at_every_door_and_the_stream_goes_on(
    make_server: Any, connect: Any, tmp_path: Path, raw: dict[str, Any], path: str
) -> None:
    srv = await make_server(control_token="s3cret-token")
    ws = await connect(srv.ws_url("crypto"))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    await ws.expect_code(10001)
    # Python API
    with pytest.raises(FaultError) as info:
        Fault.from_dict(raw)
    assert str(info.value).startswith(path.replace("$.fault", "$"))
    # control channel
    ctl = await websockets.connect(f"ws://127.0.0.1:{srv.port}/control?token=s3cret-token")
    await ctl.send(orjson.dumps({"op": "fault", "fault": raw}).decode())
    reply = orjson.loads(await ctl.recv())
    await ctl.close()
    assert reply["ok"] is False and reply["error"].startswith(path), reply
    # scenario file
    bad = tmp_path / "bad.json"
    bad.write_text(
        orjson.dumps({"name": "bad", "duration": 1, "timeline": [{"at": 0, "fault": raw}]}).decode()
    )
    with pytest.raises(ValueError, match=r"\$\.timeline\[0\]\.fault"):
        sc.load(bad)
    # ... and the market still streams to everyone
    for _ in range(3):
        await ws.expect_code(10002)
    assert srv.metrics.pump_errors == 0


async def test_the_pump_survives_a_failing_step_and_a_failing_connection(
    make_server: Any, connect: Any
) -> None:
    srv = await make_server()
    good = await connect(srv.ws_url("crypto"))
    bad = await connect(srv.ws_url("crypto"))
    for ws in (good, bad):
        await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
        await ws.send({"code": 10003, "trace": "d", "data": {"codes": "BTCUSDT"}})
        await ws.expect_code(10004)
    # A market step that raises once:
    real_depth, calls = srv.market.depth, {"n": 0}

    def depth_once_broken(symbol: str, t: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real_depth(symbol, t)

    srv.market.depth = depth_once_broken  # type: ignore[method-assign]
    await wait_until(lambda: srv.metrics.pump_errors == 1)
    await good.expect_code(10005)
    # A connection whose writes raise is dropped; the others go on.
    (victim,) = [c for c in srv.conns.values() if c.conn_id == max(srv.conns)]

    class BrokenTransport:
        """The real transport, except that writing to it raises."""

        def __init__(self, real: Any) -> None:
            self.real = real

        def writelines(self, chunks: list[bytes]) -> None:
            raise OSError("broken pipe, say")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    victim.transport = BrokenTransport(victim.transport)  # type: ignore[assignment]
    await wait_until(lambda: srv.metrics.connection_errors >= 1)
    with pytest.raises(ConnectionClosed):
        while True:
            await bad.conn.recv()
    for _ in range(5):
        await good.expect_code(10002)
    assert "infoway_pump_errors_total 1" in srv.metrics.render()


# -- 4. close faults that could not be sent answered ok -----------------------------------------------------


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 5000])
def test_unsendable_close_codes_are_refused(code: int) -> None:
    with pytest.raises(FaultError, match=r"^\$\.code"):
        Fault("close", code=code)


def test_close_reason_over_123_bytes_is_refused() -> None:
    with pytest.raises(FaultError, match="123 bytes"):
        Fault("close", reason="原因" * 21)  # 42 characters, 126 bytes


async def test_error_with_a_long_cjk_message_then_close_does_close(server: Any, connect: Any) -> None:
    ws = await connect(server.ws_url("crypto"))
    msg = "服" * 48  # 144 bytes: the close reason is cut to 123 bytes on a character boundary
    await server.faults.apply(Fault("error", code=500, msg=msg, then_close=True))
    err = await ws.expect_code(500)
    assert err["msg"] == msg
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await ws.conn.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert len(info.value.rcvd.reason.encode()) <= 123 and msg.startswith(info.value.rcvd.reason)


# -- 5. the fault CLI ---------------------------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_fault_cli_errors_are_one_line_with_exit_2(make_server: Any) -> None:
    srv = await make_server(control_token="s3cret-token")
    url = f"ws://127.0.0.1:{srv.port}/control"
    cases = [
        (
            "refuse",
            "--conn",
            "3",
            "--url",
            url,
            "--token",
            "s3cret-token",
        ),  # refuse takes no conn: usage error
        ("close", "--code", "1005", "--url", url, "--token", "s3cret-token"),
        ("stall", "seconds=-5", "--url", url, "--token", "s3cret-token"),
        ("reset", "--url", url, "--token", "wrong"),
        ("reset", "--url", url),
        ("reset", "--url", "ws://127.0.0.1:9/control", "--token", "x"),  # nothing listens there
    ]
    for case in cases:
        code, out, err = await run_cli("fault", *case)
        assert code == 2, (case, out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (case, err)
    assert srv.metrics.faults_applied == {}


async def test_fault_cli_built_from_the_registry(make_server: Any, connect: Any) -> None:
    srv = await make_server(control_token="s3cret-token")
    ws = await connect(srv.ws_url("crypto"))
    code, out, _ = await run_cli(
        "fault", "close", "code=4007", "--port", str(srv.port), "--token", "s3cret-token"
    )
    assert code == 0 and orjson.loads(out)["ok"]
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await ws.conn.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4007
    code, out, _ = await run_cli("fault", "close", "--help")
    assert "--code" in out and "--reason" in out and "control endpoint" in out
    code, out, _ = await run_cli("fault", "schema")
    assert code == 0 and "stop_reading" in out


# -- 6. a scenario's server block was ignored by the pytest plugin's play() ---------------------------------


def test_background_play_applies_the_scenario_server_block(tmp_path: Path) -> None:
    path = tmp_path / "fast-timeout.yaml"
    path.write_text(
        "name: fast-timeout\nduration: 0.5\nserver:\n  heartbeat_timeout: 0.3\n"
        "timeline:\n  - at: 0.4\n    fault: {kind: delay, delay: 0.01, seconds: 0.1}\n"
    )
    with BackgroundServer(fast_config(heartbeat_timeout=30.0)) as srv:
        srv.play(str(path)).result(10)
        assert srv.server.config.heartbeat_timeout == 0.3

        with connect_sync(srv.url()) as ws:
            frame: dict[str, Any] = {}
            while "traceId" not in frame:
                frame = orjson.loads(ws.recv(timeout=5))
        assert frame["code"] == 513
        with pytest.raises(ValueError, match="cannot change on a running server"):
            srv.call(_apply(srv, {"seed": 3}))


async def _apply(srv: BackgroundServer, settings: dict[str, Any]) -> None:
    srv.server.apply_settings(settings)


async def test_metrics_show_batching_and_a_pump_that_overran_its_cadence(
    make_server: Any, connect: Any
) -> None:
    """Frames per socket write is the batching, and missed pump ticks say a process could not keep its
    cadence (its pushes went out later, in bigger writes): both on /metrics, so that two processes' cost
    per frame is compared at the same cadence (the worker-group benchmark checks it)."""
    srv = await make_server()
    ws = await connect(srv.ws_url("crypto"))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    for _ in range(5):
        await ws.expect_code(10002)
    # Every write carries at least one frame; the welcome frame (code 200) and the subscribe ack were
    # writes of their own, so the bound is all frames sent, not the pushes plus one.
    assert 1 <= srv.metrics.socket_writes <= srv.metrics.frames_sent.total()
    before = srv.metrics.pump_ticks_missed  # a busy machine may already have slipped a tick
    # A step that takes 3.5 pump intervals: the pump skips the ticks it missed and counts them.
    loop = asyncio.get_running_loop()
    real_step, slow = srv.pump.step, {"left": 1}

    def slow_step(target: int) -> None:
        if slow["left"]:
            slow["left"] -= 1
            until = loop.time() + 3.5 * srv.pump.interval
            while loop.time() < until:  # the overrun itself, not a wait for something
                pass
        real_step(target)

    srv.pump.step = slow_step  # type: ignore[method-assign]
    await wait_until(lambda: srv.metrics.pump_ticks_missed >= before + 3)
    text = srv.metrics.render()
    assert "infoway_socket_writes_total" in text and "infoway_pump_ticks_missed_total" in text


# -- a drain callback whose write fails ----------------------------------------------------------------------


async def test_a_write_that_fails_in_a_drain_callback_is_one_clean_close(make_server: Any) -> None:
    """asyncio calls resume_writing from inside its own _write_ready. If the firehose's drain callback
    wrote from there and that write failed (the peer reset between two sends), asyncio ran connection_lost
    twice and logged an AttributeError traceback. The failure is made deterministic here by shutting the
    server's side for writing just before the callback writes; the socket and the transport are real."""
    srv = await make_server()
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    old_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so the server's writes pile up in asyncio
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", srv.port))
        path = srv.ws_url("crypto").split(str(srv.port), 1)[1]
        await loop.sock_sendall(sock, upgrade_request("127.0.0.1", path))
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(sock, 4096)
        assert head.startswith(b"HTTP/1.1 101")
        await wait_until(lambda: any(c.ws_open for c in srv.conns.values()))
        (conn,) = srv.conns.values()
        drained: list[bool] = []

        def on_drain() -> None:  # what the firehose does: write the next burst once the client caught up
            drained.append(True)
            conn.transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
            conn.write_frames([text_frame(b"next burst")])

        conn.on_drain = on_drain
        conn.transport.set_write_buffer_limits(high=16 * 1024, low=0)
        conn.write_frames([text_frame(b"x" * (8 << 20))])
        assert conn.buffered() > 16 * 1024  # asyncio paused writing; resume_writing comes once it drained
        while await loop.sock_recv(sock, 1 << 16):  # read until the server's side is shut
            pass
        await wait_until(lambda: drained and not srv.conns)
    finally:
        sock.close()
        loop.set_exception_handler(old_handler)
    assert errors == []
