"""The reference client against a real mock on 127.0.0.1: the acceptance list of the client issue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from infoway_mock.client import AuthError, Connected, Disconnected, InfowayClient, Resubscribed, Trade
from infoway_mock.mockserver.faults import Fault
from infoway_mock.mockserver.session import DEPTH, TRADE, kline_channel
from tests.conftest import wait_until

FAST = {
    "heartbeat_interval": 0.3,
    "dead_peer_timeout": 1.0,
    "backoff_base": 0.05,
    "backoff_cap": 0.3,
    "healthy_after": 0.5,
    "ack_timeout": 2.0,
}


async def next_of(client: InfowayClient, kind: type, timeout: float = 5.0, seen: list | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind.__name__} within {timeout}s")
        ev = await asyncio.wait_for(client.__anext__(), left)
        if seen is not None:
            seen.append(ev)
        if isinstance(ev, kind):
            return ev


def server_side_subscriptions(srv) -> set[tuple[Any, str]]:
    ((session, _),) = srv.sessions.values()
    return session.subscription_pairs()


async def test_restart_reconnects_resubscribes_live_set_and_reports_gap(server) -> None:
    async with InfowayClient(server.ws_url(), **FAST) as client:
        await client.subscribe_trades("BTCUSDT,ETHUSDT,SOLUSDT")
        await client.subscribe_depth("BTCUSDT")
        await client.subscribe_klines("BTCUSDT", [1, 5])
        await client.unsubscribe_trades("SOLUSDT")
        await client.unsubscribe_klines("BTCUSDT", [5])
        while (await next_of(client, Trade)).symbol != "BTCUSDT":
            pass
        before = time.time() * 1000
        await server.restart(down_for=0.5)
        resub = await next_of(client, Resubscribed, timeout=10)
        wanted = {(TRADE, "BTCUSDT"), (TRADE, "ETHUSDT"), (DEPTH, "BTCUSDT"), (kline_channel(1), "BTCUSDT")}
        assert server_side_subscriptions(server) == wanted
        assert {(g.channel, g.symbol) for g in resub.gaps} == {
            ("trade", "BTCUSDT"),
            ("trade", "ETHUSDT"),
            ("depth", "BTCUSDT"),
            ("kline:1", "BTCUSDT"),
        }
        gap = next(g for g in resub.gaps if g.channel == "trade" and g.symbol == "BTCUSDT")
        assert gap.last_before is not None and gap.offline_from >= before - 1000
        assert gap.offline_to - gap.offline_from >= 400
        trade = await next_of(client, Trade)
        assert trade.time_ms >= gap.last_before
        await wait_until(lambda: any(g.first_after for g in client.gaps))
        assert client.reconnects == 1


async def test_subscribes_made_while_offline_are_flushed(server) -> None:
    async with InfowayClient(server.ws_url(), **FAST) as client:
        await client.wait_connected(5)
        await server.faults.apply(Fault("refuse", code=503, seconds=0.5))
        await server.drop_all()
        await next_of(client, Disconnected)
        await client.subscribe_trades("ETHUSDT")  # while offline
        await next_of(client, Resubscribed, timeout=10)
        assert server_side_subscriptions(server) == {(TRADE, "ETHUSDT")}


async def test_401_is_one_attempt_and_auth_error(server) -> None:
    client = InfowayClient(server.ws_url(key="wrong"), **FAST)
    async with client:
        with pytest.raises(AuthError):
            async for _ in client:
                pass
    assert server.metrics.handshakes_refused[401] == 1


async def test_cli_401_exits_2_with_one_line(server) -> None:
    proc = await _cli("--url", server.ws_url(key=None), "--api-key", "wrong", "--trade", "BTCUSDT")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = [line for line in err.decode().splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "401" in lines[0]
    assert out == b""


async def test_cli_limit_is_reached_across_a_restart(server) -> None:
    proc = await _cli(
        "--url",
        server.ws_url(),
        "--trade",
        "BTCUSDT,ETHUSDT",
        "--limit",
        "60",
        "--heartbeat-interval",
        "0.5",
        "--backoff-cap",
        "0.3",
    )
    await wait_until(lambda: server.metrics.frames_sent[10002] >= 10, timeout=30)
    await server.restart(down_for=0.5)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = [orjson.loads(line) for line in out.decode().splitlines()]
    assert len(lines) == 60 and all(line["type"] == "trade" for line in lines)
    lifecycle = [orjson.loads(line)["type"] for line in err.decode().splitlines() if line.startswith("{")]
    assert lifecycle.count("Connected") == 2 and "Resubscribed" in lifecycle


async def test_stall_is_detected_by_the_watchdog_and_reconnected(server) -> None:
    settings = {**FAST, "backoff_base": 1.0, "backoff_cap": 1.0}
    async with InfowayClient(server.ws_url(), **settings) as client:
        await client.subscribe_trades("BTCUSDT")
        await next_of(client, Trade)
        await server.faults.apply(Fault("stall", conn=server.connection_ids()[0], seconds=30))
        t0 = time.monotonic()
        dropped = await next_of(client, Disconnected, timeout=5)
        dropped_at = time.monotonic()
        assert "dead peer" in dropped.reason
        # One heartbeat period (stretched to fit the pacer's budget) plus the time its reply is owed.
        assert dropped_at - t0 < client.core.heartbeat_every() + FAST["dead_peer_timeout"] + 1.0
        await next_of(client, Connected, timeout=5)
        # Our own abort must not cut short the wait the policy chose (a short session: backoff).
        assert time.monotonic() - dropped_at >= dropped.retry_in - 0.02
        await next_of(client, Resubscribed, timeout=5)
        await next_of(client, Trade)


async def test_data_idle_watchdog_ignores_heartbeat_replies(server) -> None:
    async with InfowayClient(
        server.ws_url(), **{**FAST, "data_idle_timeout": 0.8, "dead_peer_timeout": 30}
    ) as client:
        await client.subscribe_trades("BTCUSDT")
        await next_of(client, Trade)
        # Pushes stop but heartbeat replies keep flowing: only the data-idle watchdog can notice.
        await server.faults.apply(Fault("delay", delay=60, seconds=60))
        dropped = await next_of(client, Disconnected, timeout=5)
        assert "data idle" in dropped.reason


async def test_resubscribing_many_symbols_after_five_drops_never_trips_501(make_server) -> None:
    srv = await make_server(rate_limit=10, rate_window=1.0, max_products_per_connection=600)
    symbols = [f"SYM{i:03d}.US" for i in range(50)]
    settings = {**FAST, "rate_limit": 10, "rate_window": 1.0, "max_codes": 10, "healthy_after": 0.2}
    async with InfowayClient(srv.ws_url("stock"), **settings) as client:
        await client.subscribe_trades(symbols)
        await client.subscribe_depth(symbols)
        await client.subscribe_klines(symbols, [1])
        await next_of(client, Connected)
        for _ in range(5):
            await wait_until(
                lambda: len(srv.sessions) == 1 and len(server_side_subscriptions(srv)) == 150, 20
            )
            await srv.faults.apply(Fault("reset"))
            await next_of(client, Resubscribed, timeout=20)
        await wait_until(lambda: len(srv.sessions) == 1 and len(server_side_subscriptions(srv)) == 150, 20)
    assert srv.metrics.errors_sent[501] == 0
    assert srv.metrics.connections_total == 6


async def test_idle_client_is_never_timed_out(make_server) -> None:
    # Time scaled down on both sides: a 1 s heartbeat timeout needs a rate window to match, or no
    # client could heartbeat often enough within the server's own request limit.
    srv = await make_server(heartbeat_timeout=1.0, rate_window=1.0)
    settings = {**FAST, "heartbeat_interval": 0.4, "rate_window": 1.0}
    async with InfowayClient(srv.ws_url(), **settings) as client:
        await client.wait_connected(5)
        deadline = time.monotonic() + 3 * 1.0
        while time.monotonic() < deadline:  # three timeout periods, idle but heartbeating
            await asyncio.sleep(0.1)
        assert srv.metrics.errors_sent[513] == 0
        assert client.reconnects == 0 and len(srv.sessions) == 1


async def test_501_slows_the_pacer(server) -> None:
    async with InfowayClient(server.ws_url(), **FAST) as client:
        await client.wait_connected(5)
        budget = client.pacer.budget
        await server.faults.apply(Fault("error", code=501, then_close=True))
        await next_of(client, Disconnected)
        assert client.pacer.budget < budget


async def test_kline_backfill_merges_missed_candles(make_server) -> None:
    # A 1m candle closes every 0.5 s; one symbol keeps the sped-up market light.
    srv = await make_server(speed=120.0, kline_interval=0.05, trade_rate=1.0, symbols=["BTCUSDT"])
    async with InfowayClient(srv.ws_url(), **{**FAST, "backfill_klines": True}) as client:
        await client.subscribe_klines("BTCUSDT", [1])
        from infoway_mock.client import Kline

        first = await next_of(client, Kline)
        await srv.restart(down_for=1.5)
        seen: list = []
        await next_of(client, Resubscribed, timeout=10, seen=seen)
        backfilled = []
        deadline = time.monotonic() + 5
        while not backfilled and time.monotonic() < deadline:
            ev = await next_of(client, Kline, seen=seen)
            if ev.backfill:
                backfilled.append(ev)
        # The backfill is queued in one go; live candles keep arriving behind it, so read a bounded while.
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            ev = await asyncio.wait_for(client.__anext__(), 5)
            if isinstance(ev, Kline) and ev.backfill:
                backfilled.append(ev)
        times = [k.open_time_s for k in backfilled]
        assert times == sorted(set(times)), "backfilled candles are in order without duplicates"
        assert times[0] >= first.open_time_s


async def test_stock_banner_and_legacy_trade_pushes_reach_the_consumer(make_server) -> None:
    # Off the trade fast path: a non-JSON text frame before the welcome, and the tutorial's 10000 push.
    srv = await make_server(stock_banner=True, legacy_trade_push=True)
    async with InfowayClient(srv.ws_url("stock"), **FAST) as client:
        await client.subscribe_trades("AAPL.US")
        trade = await next_of(client, Trade, timeout=10)
        assert trade.symbol == "AAPL.US" and trade.direction == 0 and trade.price > 0
        assert client.counts["control"] >= 2  # the banner and the welcome, neither an error
        assert client.counts["error"] == 0


async def test_a_message_in_too_many_fragments_ends_the_session_and_is_retried() -> None:
    # Not something the mock does: a bare loopback server splits one frame into more fragments than
    # websockets reassembles (4096), the case ws.recv would fail with 1009 and the reader now reports.
    import websockets

    connections = 0

    async def handler(ws: Any) -> None:
        nonlocal connections
        connections += 1
        await ws.send('{"code":200,"msg":"ws connect success"}')
        if connections == 1:
            await ws.send(["{}"] + [" "] * 5000)
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with InfowayClient(f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=k", **FAST) as client:
            dropped = await next_of(client, Disconnected, timeout=5)
            assert dropped.code == 1009 and "unreadable message" in dropped.reason
            await next_of(client, Connected, timeout=5)
            assert connections == 2


# -- regressions of the client-core issue (each failed on the client before it) -----------------------


def _trade(i: int) -> str:
    return orjson.dumps(
        {"code": 10002, "data": {"s": "BTCUSDT", "p": str(100 + i), "v": "1", "vw": "1", "t": 1_786_000 + i}}
    ).decode()


BAD_PUSHES = [
    '{"code":10002,"data":{"s":"BTCUSDT","p":"1","v":"1","vw":"1"}}',  # a trade without t
    '{"code":10005,"data":{"s":"BTCUSDT","a":[["2"],["1"]],"b":[["1"],["1"]]}}',  # depth without t
    '{"code":10008,"data":{"s":"BTCUSDT","ty":1,"t":"soon","o":"1","h":"1","l":"1","c":"1","v":"1"}}',
]


@contextlib.asynccontextmanager
async def scripted_server(after_subscribe: list[str]) -> AsyncIterator[str]:
    """A bare loopback WebSocket server that answers the first subscribe with `after_subscribe` and
    then idles: frames the mock would never send. Yields the URL (any key is accepted)."""
    import websockets

    async def handler(ws: Any) -> None:
        await ws.send('{"code":200,"msg":"ws connect success"}')
        async for message in ws:
            frame = orjson.loads(message)
            if frame["code"] == 10000:
                await ws.send(orjson.dumps({"code": 10001, "trace": frame["trace"], "msg": "ok"}).decode())
                for f in after_subscribe:
                    await ws.send(f)

    async with websockets.serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=s3cret-key-0042"


async def test_bad_pushes_are_reported_counted_and_skipped_while_the_stream_goes_on() -> None:
    frames = [_trade(1), *BAD_PUSHES, _trade(2)]
    async with scripted_server(frames) as url, InfowayClient(url, **FAST) as client:
        await client.subscribe_trades("BTCUSDT")
        seen: list[Any] = []
        assert (await next_of(client, Trade, seen=seen)).raw["t"] == 1_786_001
        assert (await next_of(client, Trade, seen=seen)).raw["t"] == 1_786_002
        bad = [ev for ev in seen if type(ev).__name__ == "BadFrame"]
        assert [b.reason.split(" push")[0] for b in bad] == ["trade", "depth", "kline"]
        stats = client.stats()
        assert stats["bad_frames"] == 3 and stats["messages"]["trade"] == 2


async def test_cli_skips_bad_frames_and_prints_every_good_trade() -> None:
    frames = [_trade(i) for i in range(5)] + BAD_PUSHES + [_trade(i) for i in range(5, 20)]
    async with scripted_server(frames) as url:
        proc = await _cli("--url", url, "--trade", "BTCUSDT", "--limit", "20")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert [orjson.loads(line)["p"] for line in out.decode().splitlines()] == [
        str(100 + i) for i in range(20)
    ]
    reports = [orjson.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert [r["type"] for r in reports].count("BadFrame") == 3


async def test_cli_rejects_a_url_that_is_not_a_websocket_one() -> None:
    proc = await _cli("--url", "http://127.0.0.1:9/ws?business=crypto&apikey=s3cret-key-0042", "--trade", "X")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and out == b""
    assert "ws:// or wss://" in err.decode() and "s3cret-key-0042" not in err.decode()


async def test_the_api_key_never_reaches_events_logs_or_stderr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # websockets logs the request line, key and all, at debug level
    async with scripted_server([_trade(1)]) as url:
        async with InfowayClient(url, **FAST) as client:
            await client.subscribe_trades("BTCUSDT")
            connected = await next_of(client, Connected)
            await next_of(client, Trade)
        assert "s3***********42" in connected.url and "s3cret-key-0042" not in repr(client)
        proc = await _cli("--url", url, "--trade", "BTCUSDT", "--limit", "1")
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and "Connected" in err.decode()
    assert "s3cret-key-0042" not in err.decode()
    ours = [r for r in caplog.records if r.name.startswith(("infoway.client", "websockets.client"))]
    assert any("apikey=s3***" in r.getMessage() for r in ours), "the request line is logged, masked"
    assert not [r for r in ours if "s3cret-key-0042" in r.getMessage()]


async def test_a_short_heartbeat_interval_never_starves_a_subscribe(make_server) -> None:
    # 10 frames per 3 s on both sides; heartbeats asked for every 0.1 s would want 30.
    srv = await make_server(rate_limit=10, rate_window=3.0)
    settings = {**FAST, "heartbeat_interval": 0.1, "rate_limit": 10, "rate_window": 3.0}
    async with InfowayClient(srv.ws_url(), **settings) as client:
        await client.wait_connected(5)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # two seconds of heartbeats before anything else is asked
            await asyncio.sleep(0.1)
        await client.subscribe_trades("BTCUSDT")
        seen: list[Any] = []
        await next_of(client, Trade, timeout=3.0, seen=seen)
        assert not [ev for ev in seen if isinstance(ev, Disconnected)]


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--heartbeat-interval", "0", "must be above 0"),
        ("--limit", "-1", "must be 0 or more"),
        ("--kline", "BTCUSDT", "TYPE:CODES"),
        ("--kline", "13:BTCUSDT", "1..12"),
    ],
)
def test_cli_usage_errors_are_clear(flag: str, value: str, says: str, capsys: pytest.CaptureFixture) -> None:
    from infoway_mock.client.cli import main

    with socket.socket() as s:  # a port nothing listens on, so nothing is reached if the flag is taken
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=k"
    with pytest.raises(SystemExit) as exit_:
        main(["stream", "--url", url, "--trade", "X", "--max-attempts", "1", flag, value])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_cli_time_options_say_what_they_do_and_in_what_unit(capsys: pytest.CaptureFixture) -> None:
    from infoway_mock.client.cli import main

    with pytest.raises(SystemExit):
        main(["stream", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--heartbeat-interval", "--dead-peer-timeout", "--backoff-cap"):
        assert f"{flag} SECONDS" in text, flag
    assert "seconds between heartbeats" in text and "reconnect when a frame" in text
    assert "longest wait between reconnect attempts" in text


async def _cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.client",
        "stream",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


# -- the shell around the core -------------------------------------------------------------------------


async def test_an_internal_error_raises_from_async_for_instead_of_ending_it(server) -> None:
    async with InfowayClient(server.ws_url(), **FAST) as client:
        await client.subscribe_trades("BTCUSDT")
        await next_of(client, Trade)

        def broken(messages: Any, now: float) -> Any:
            raise RuntimeError("a bug in the core")

        client.core.receive = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="a bug in the core"):
            async for _ in client:
                pass


async def test_a_failing_callback_is_counted_and_the_feed_goes_on(server) -> None:
    got: list[Any] = []

    def on_event(ev: Any) -> None:
        if isinstance(ev, Trade) and len(got) == 0:
            got.append(None)
            raise ValueError("the user's handler")
        if isinstance(ev, Trade):
            got.append(ev)

    async with InfowayClient(server.ws_url(), on_event=on_event, **FAST) as client:
        await client.subscribe_trades("BTCUSDT")
        await wait_until(lambda: len(got) >= 3)
        assert client.stats()["callback_errors"] == 1


async def test_an_async_callback_gets_every_event_in_order(server) -> None:
    got: list[Any] = []

    async def on_event(ev: Any) -> None:
        await asyncio.sleep(0)
        got.append(ev)

    async with InfowayClient(server.ws_url(), on_event=on_event, **FAST) as client:
        await client.subscribe_trades("BTCUSDT")
        await wait_until(lambda: sum(isinstance(e, Trade) for e in got) >= 5)
    assert isinstance(got[0], Connected)
    times = [e.time_ms for e in got if isinstance(e, Trade)]
    assert times == sorted(times)


async def test_a_server_going_away_is_back_within_a_second_of_its_return(server) -> None:
    async with InfowayClient(server.ws_url(), **{**FAST, "healthy_after": 10.0}) as client:
        await client.subscribe_trades("BTCUSDT")
        await next_of(client, Trade)
        await server.faults.apply(Fault("restart", seconds=1.0))
        t0 = time.monotonic()
        await next_of(client, Disconnected)
        await next_of(client, Trade, timeout=10)
        assert time.monotonic() - t0 < 1.0 + 1.0
        assert client.stats()["connections_open_max"] == 1


async def test_frames_that_come_with_the_handshake_answer_belong_to_the_session() -> None:
    # A raw server writes the 101 answer, an error frame and a close frame in one TCP segment: the client
    # reads them in one go, and must still see the error as this session's (512: wait long, not back off).
    from websockets.frames import Close, Frame, Opcode
    from websockets.utils import accept_key

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in request.split("\r\n")
            if line.lower().startswith("sec-websocket-key")
        )
        answer = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode()
        error = b'{"traceId":"","code":512,"msg":"WebSocket connections over the limit"}'
        close = Close(1008, "over the limit").serialize()
        frames = [Frame(Opcode.TEXT, error), Frame(Opcode.CLOSE, close)]
        writer.write(answer + b"".join(f.serialize(mask=False, extensions=[]) for f in frames))
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        settings = {**FAST, "long_backoff": 30.0}
        async with InfowayClient(f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=k", **settings) as client:
            seen: list[Any] = []
            dropped = await next_of(client, Disconnected, seen=seen)
        kinds = [type(ev).__name__ for ev in seen]
        assert kinds.index("Connected") < kinds.index("ServerError")
        assert dropped.code == 512 and dropped.retry_in >= 15.0
    finally:
        srv.close()
        await srv.wait_closed()
