"""Soak (opt-in: `make soak`): thousands of concurrent subscribed connections for a minute.

Reports RSS per connection of the server process and the push rate, then checks that closing every
connection returns the server's counters to idle. Size and length: INFOWAY_SOAK_CONNECTIONS (2000),
INFOWAY_SOAK_SECONDS (60). The file-descriptor limit is raised here, for both sides.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from pathlib import Path

import pytest
import websockets

from loadtests.bench_connections import mock_connection_server
from loadtests.harness import ServerProcess

pytestmark = pytest.mark.soak

CONNECTIONS = int(os.environ.get("INFOWAY_SOAK_CONNECTIONS", "2000"))
SECONDS = float(os.environ.get("INFOWAY_SOAK_SECONDS", "60"))
SYMBOLS = ["BTCUSDT", "ETHUSDT", "EURUSD", "XAUUSD"]


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


async def _soak(sp: ServerProcess) -> dict[str, float]:
    idle = await asyncio.to_thread(sp.ask, "counters")
    received = [0] * CONNECTIONS
    ready = asyncio.Semaphore(50)
    stop = asyncio.Event()

    async def one(i: int) -> None:
        business = "crypto" if SYMBOLS[i % 4].endswith("USDT") else "common"
        url = f"ws://127.0.0.1:{sp.port}/ws?business={business}&apikey=demo"
        async with ready:
            ws = await websockets.connect(url, compression=None, ping_interval=None, open_timeout=30)
        async with ws:
            await ws.send(json.dumps({"code": 10000, "trace": "t", "data": {"codes": SYMBOLS[i % 4]}}))
            await ws.send(json.dumps({"code": 10003, "trace": "d", "data": {"codes": SYMBOLS[i % 4]}}))
            next_hb = time.monotonic() + 20
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), 1.0)
                    received[i] += 1
                except TimeoutError:
                    pass
                if time.monotonic() >= next_hb:
                    await ws.send(json.dumps({"code": 10010, "trace": "hb"}))
                    next_hb += 20

    tasks = [asyncio.create_task(one(i)) for i in range(CONNECTIONS)]
    deadline = time.monotonic() + 120
    while (await asyncio.to_thread(sp.ask, "counters"))["sessions"] < CONNECTIONS:
        assert time.monotonic() < deadline, "connections did not all open"
        assert not any(t.done() and t.exception() for t in tasks), [t.exception() for t in tasks if t.done()]
        await asyncio.sleep(0.5)  # polling the server's counters with a deadline
    start_count, start = sum(received), time.monotonic()
    await asyncio.sleep(SECONDS)  # the soak itself
    loaded = await asyncio.to_thread(sp.ask, "counters")
    rate = (sum(received) - start_count) / (time.monotonic() - start)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + 30
    while True:
        after = await asyncio.to_thread(sp.ask, "counters")
        if after["sessions"] == 0 and after["subscriptions"] == 0 and after["quota_connections"] == 0:
            break
        assert time.monotonic() < deadline, after
        await asyncio.sleep(0.2)
    return {
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "rss_idle_kb": idle["rss_kb"],
        "rss_loaded_kb": loaded["rss_kb"],
        "rss_per_connection_kb": (loaded["rss_kb"] - idle["rss_kb"]) / CONNECTIONS,
        "pushes_per_s": rate,
        "errors": sum(loaded["errors"].values()),
        "violations": loaded["violations"],
        "tasks_after": after["tasks"],
    }


def test_soak() -> None:
    _raise_fd_limit(CONNECTIONS * 2 + 256)
    with ServerProcess(mock_connection_server, CONNECTIONS) as sp:
        result = asyncio.run(_soak(sp))
    print("\nsoak:", json.dumps(result, indent=2))
    Path("reports").mkdir(exist_ok=True)
    Path("reports/soak.json").write_text(json.dumps(result, indent=2))
    assert result["errors"] == 0 and result["violations"] == 0
    assert result["pushes_per_s"] > 0
    assert result["tasks_after"] == 0
