"""Client consumption rate: frames decoded to typed events by InfowayClient vs a bare websockets
receive loop on the same stream (the bare pusher of bench_server, in its own process).

Two figures per mode: frames/s over the window (the target), and frames per CPU-second this process
spent in it. The second does not move when another process takes the core for a while, which on a
shared machine swings the first by a factor of two between repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import websockets

from infoway_mock.client import InfowayClient, Trade
from loadtests.bench_server import bare_server
from loadtests.harness import ServerProcess, alternate, format_table, ratio_row


class _Window:
    """Counts frames from `warmup` seconds on for `window` seconds: rate and frames per CPU-second."""

    def __init__(self, window: float, warmup: float) -> None:
        self.start = time.perf_counter() + warmup
        self.end = self.start + window
        self.n = self.counted = 0
        self.cpu = 0.0

    def tick(self) -> tuple[float, float] | None:
        self.n += 1
        now = time.perf_counter()  # the same per-frame clock read in every mode
        if now >= self.start:
            if self.counted == 0:
                self.counted, self.cpu = self.n, time.process_time()
            elif now >= self.end:
                frames = self.n - self.counted
                return frames / (now - self.start), frames / max(1e-9, time.process_time() - self.cpu)
        return None


async def _bare(port: int, window: float, warmup: float) -> tuple[float, float]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", compression=None, max_size=None) as ws:
        await ws.send('{"code":10000,"trace":"b","data":{"codes":"BTCUSDT"}}')
        w = _Window(window, warmup)
        async for _ in ws:
            if (got := w.tick()) is not None:
                return got
    return 0.0, 0.0


async def _client(port: int, window: float, warmup: float) -> tuple[float, float]:
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=bench"
    async with InfowayClient(url, heartbeat_interval=3600) as client:
        await client.subscribe_trades("BTCUSDT")
        w = _Window(window, warmup)
        async for ev in client:
            if type(ev) is Trade and (got := w.tick()) is not None:
                return got
    return 0.0, 0.0


async def _callback(port: int, window: float, warmup: float) -> tuple[float, float]:
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=bench"
    result: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
    w = _Window(window, warmup)

    def on_event(ev: Any) -> None:
        if type(ev) is Trade and (got := w.tick()) is not None and not result.done():
            result.set_result(got)

    async with InfowayClient(url, heartbeat_interval=3600, on_event=on_event) as client:
        await client.subscribe_trades("BTCUSDT")
        return await asyncio.wait_for(result, warmup + window + 8)


def run(repetitions: int = 5, window: float = 1.5) -> list[dict[str, Any]]:
    with ServerProcess(bare_server) as sp:

        def bare() -> tuple[float, float]:
            return asyncio.run(_bare(sp.port, window, 0.3))

        def client() -> tuple[float, float]:
            return asyncio.run(_client(sp.port, window, 0.3))

        def callback() -> tuple[float, float]:
            return asyncio.run(_callback(sp.port, window, 0.3))

        results = alternate({"bare": bare, "client": client, "callback": callback}, repetitions)
    rows = []
    for i, (what, unit) in enumerate(
        (
            ("frames -> typed events/s", "InfowayClient / bare websockets receive loop"),
            ("frames per client CPU-s", "InfowayClient / bare websockets receive loop, per CPU-s of each"),
        )
    ):
        b = statistics.median(v[i] for v in results["bare"])
        for name, label in (("client", "async for"), ("callback", "on_event callback")):
            c = statistics.median(v[i] for v in results[name])
            rows.append(
                ratio_row(
                    f"client consumption ({label}): {what}",
                    c,
                    b,
                    unit,
                    {"bare": [v[i] for v in results["bare"]], name: [v[i] for v in results[name]]},
                )
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
