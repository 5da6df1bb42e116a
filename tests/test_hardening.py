"""Slow consumers are dropped at the bound without hurting anyone else; API keys never reach a log
line or a report in full."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets

from tests.conftest import wait_until


async def test_client_that_never_reads_is_dropped_at_the_bound(make_server: Any) -> None:
    bound = 256 * 1024
    srv = await make_server(max_send_buffer=bound, trade_rate=20_000.0, symbols=["BTCUSDT", "ETHUSDT"])
    # The bystander reads everything, all the time: it must never be mistaken for a slow consumer.
    bystander = await websockets.connect(srv.ws_url(), compression=None, ping_interval=None)
    seen: list[int] = []

    async def drain() -> None:
        async for raw in bystander:
            seen.append(json.loads(raw).get("code", 0))

    reader = asyncio.create_task(drain())
    # Depth (a few frames a second) rather than the 20,000 trades/s: a loaded CI machine must not make
    # the bystander itself a slow consumer.
    await bystander.send(json.dumps({"code": 10003, "trace": "b", "data": {"codes": "ETHUSDT"}}))

    # max_queue=1: the client library stops reading the socket once one message waits unread, so
    # TCP back-pressure reaches the server's send buffer.
    sloth = await websockets.connect(srv.ws_url(), compression=None, max_queue=1, ping_interval=None)
    await sloth.send(json.dumps({"code": 10000, "trace": "s", "data": {"codes": "BTCUSDT"}}))

    peak = 0

    def dropped() -> bool:
        nonlocal peak
        for _, conn in srv.sessions.values():
            if conn.transport is not None:
                peak = max(peak, conn.transport.get_write_buffer_size())
        return srv.metrics.slow_consumers_dropped >= 1

    try:
        await wait_until(dropped, timeout=60, interval=0.005)
        await wait_until(lambda: srv.counters()["sessions"] == 1, timeout=10)
        # Memory stays bounded: a flush that leaves more than the bound queued drops the connection at once.
        assert peak <= bound + 64 * 1024, peak  # slack: replies go out outside the batch
        pushes_before = seen.count(10005)
        await bystander.send(json.dumps({"code": 10010, "trace": "hb", "ack": 1}))
        await wait_until(lambda: 10011 in seen and seen.count(10005) > pushes_before, timeout=10)
        assert srv.metrics.slow_consumers_dropped == 1, srv.metrics.render()
    finally:
        sloth.transport.abort()
        reader.cancel()
        await bystander.close()


@pytest.mark.parametrize("presented", ["wrongsecretkey456", None])
async def test_api_keys_are_masked_in_logs_and_reports(
    make_server: Any, connect: Any, caplog: pytest.LogCaptureFixture, presented: str | None
) -> None:
    secret = "supersecretkey123"
    srv = await make_server(keys={secret: "pro"})
    caplog.set_level(logging.DEBUG)
    ws = await connect(srv.ws_url(key=secret))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    await ws.expect_code(10001)
    await ws.close()
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(srv.ws_url(key=presented), open_timeout=5)
    await wait_until(lambda: srv.counters()["sessions"] == 0)
    # The server's own records (the test's client library logs its request line; that is not ours).
    server_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client")]
    text = "\n".join(server_lines) + json.dumps(srv.report())
    assert any("infoway" in r.name for r in caplog.records)
    assert secret not in text
    if presented:
        assert presented not in text
    assert "su*************23" in text  # masked, still tells keys apart
