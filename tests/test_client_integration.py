"""The reference client against a real mock on 127.0.0.1: the acceptance list of the client issue."""

from __future__ import annotations

import asyncio
import sys
import time
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
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.client",
        "stream",
        "--url",
        server.ws_url(key=None),
        "--api-key",
        "wrong",
        "--trade",
        "BTCUSDT",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = [line for line in err.decode().splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "401" in lines[0]
    assert out == b""


async def test_cli_limit_is_reached_across_a_restart(server) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.client",
        "stream",
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
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
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
    async with InfowayClient(server.ws_url(), **FAST) as client:
        await client.subscribe_trades("BTCUSDT")
        await next_of(client, Trade)
        await server.faults.apply(Fault("stall", conn=server.connection_ids()[0], seconds=30))
        t0 = time.monotonic()
        dropped = await next_of(client, Disconnected, timeout=5)
        assert "dead peer" in dropped.reason
        assert time.monotonic() - t0 < FAST["dead_peer_timeout"] + 1.0
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
    srv = await make_server(heartbeat_timeout=1.0)
    async with InfowayClient(srv.ws_url(), **{**FAST, "heartbeat_interval": 0.4}) as client:
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
