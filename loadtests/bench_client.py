"""Client consumption rate: frames decoded to typed events by InfowayClient vs a bare websockets
receive loop on the same stream (the bare pusher of bench_server, in its own process)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import websockets

from infoway_mock.client import InfowayClient, Trade
from loadtests.bench_server import bare_server
from loadtests.harness import ServerProcess, alternate, fmt, format_table


async def _bare(port: int, window: float, warmup: float) -> float:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", compression=None, max_size=None) as ws:
        await ws.send('{"code":10000,"trace":"b","data":{"codes":"BTCUSDT"}}')
        n = 0
        start = time.perf_counter() + warmup
        end = start + window
        counted = 0
        async for _ in ws:
            n += 1
            now = time.perf_counter()  # same per-frame clock read as the candidate loop below
            if now >= start:
                if counted == 0:
                    counted = n
                if now >= end:
                    return (n - counted) / (now - start)
    return 0.0


async def _client(port: int, window: float, warmup: float) -> float:
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=bench"
    async with InfowayClient(url, heartbeat_interval=3600) as client:
        await client.subscribe_trades("BTCUSDT")
        n = 0
        start = time.perf_counter() + warmup
        end = start + window
        counted = 0
        async for ev in client:
            if type(ev) is not Trade:
                continue
            n += 1
            now = time.perf_counter()
            if now >= start:
                if counted == 0:
                    counted = n
                if now >= end:
                    return (n - counted) / (now - start)
    return 0.0


async def _callback(port: int, window: float, warmup: float) -> float:
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=bench"
    state = {"n": 0, "counted": 0}
    result: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    start = time.perf_counter() + warmup
    end = start + window

    def on_event(ev: Any) -> None:
        if type(ev) is not Trade:
            return
        state["n"] += 1
        now = time.perf_counter()
        if now >= start:
            if state["counted"] == 0:
                state["counted"] = state["n"]
            if now >= end and not result.done():
                result.set_result((state["n"] - state["counted"]) / (now - start))

    async with InfowayClient(url, heartbeat_interval=3600, on_event=on_event) as client:
        await client.subscribe_trades("BTCUSDT")
        return await asyncio.wait_for(result, warmup + window + 8)


def run(repetitions: int = 5, window: float = 1.5) -> list[dict[str, Any]]:
    with ServerProcess(bare_server) as sp:

        def bare() -> float:
            return asyncio.run(_bare(sp.port, window, 0.3))

        def client() -> float:
            return asyncio.run(_client(sp.port, window, 0.3))

        def callback() -> float:
            return asyncio.run(_callback(sp.port, window, 0.3))

        results = alternate({"bare": bare, "client": client, "callback": callback}, repetitions)
    b = statistics.median(results["bare"])
    rows = []
    for name, label in (("client", "async for"), ("callback", "on_event callback")):
        c = statistics.median(results[name])
        rows.append(
            {
                "benchmark": f"client consumption ({label}): frames -> typed events/s",
                "candidate": fmt(c),
                "baseline": fmt(b),
                "ratio": f"{c / b:.2f}",
                "ratio_value": c / b,
                "candidate_value": c,
                "baseline_value": b,
                "unit": "InfowayClient / bare websockets receive loop",
                "values": {"bare": results["bare"], name: results[name]},
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--window", type=float, default=1.5)
    a = ap.parse_args()
    print(format_table(run(a.repetitions, a.window)))


if __name__ == "__main__":
    main()
