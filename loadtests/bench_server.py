"""Mock push rate and fan-out vs a bare websockets server pushing the same frames.

Each server runs in its own process; the clients run here. Two figures per case:
- delivered: frames/s counted by the clients over a fixed window (bounded by whichever side is slower);
- capacity: frames sent per CPU-second of the server process, which isolates the server's own cost when
  the clients on the other core are the bottleneck.
Baseline and mock alternate, repetitions >= 5, medians reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from typing import Any

import orjson
import websockets

from loadtests.harness import ServerProcess, alternate, format_table, ratio_row, serve_control

SYMBOL = "BTCUSDT"
HIGH_WATER = 512 * 1024  # bytes queued per connection before the bare server lets the loop flush


def sample_frames(n: int = 5000, seed: int = 1) -> list[bytes]:
    """The mock's own trade pushes, so the bare server sends byte-for-byte the same kind of frames."""
    from infoway_mock.mockserver.catalogue import Catalogue
    from infoway_mock.mockserver.market import Market

    cat = Catalogue.default().only([SYMBOL])
    market = Market(seed, cat, start_ms=1_786_000_000_000, trade_rate=1000.0)
    frames: list[bytes] = []
    t = 1_786_000_000_000
    while len(frames) < n:
        t += 1000
        frames += [orjson.dumps({"code": 10002, "data": tr}) for tr in market.advance(t)]
    return frames[:n]


# -- servers (run in child processes) -------------------------------------------------------------------


def _quiet_asyncio() -> None:
    # Clients vanish with megabytes in flight at the end of every case; asyncio would log each late write.
    logging.getLogger("asyncio").setLevel(logging.ERROR)


def bare_server(port_w: Any, ctl: Any) -> None:
    _quiet_asyncio()
    asyncio.run(_bare_main(port_w, ctl))


async def _bare_main(port_w: Any, ctl: Any) -> None:
    from websockets.asyncio.server import broadcast, serve

    frames = sample_frames()
    conns: set[Any] = set()
    sent = 0
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        await ws.recv()  # the client's subscribe, so both servers see the same client behaviour
        await ws.send('{"code":10001,"trace":"bench","msg":"ok"}')
        conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)

    async def pusher() -> None:
        nonlocal sent
        i = 0
        n = len(frames)
        while not done.is_set():
            if not conns:
                await asyncio.sleep(0.005)
                continue
            for _ in range(64):
                broadcast(conns, frames[i], text=True)
                i = (i + 1) % n
            sent += 64 * len(conns)
            await asyncio.sleep(0)
            while conns and max(c.transport.get_write_buffer_size() for c in conns) > HIGH_WATER:
                await asyncio.sleep(0.0005)

    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port_w.send(next(iter(server.sockets)).getsockname()[1])
        serve_control(ctl, lambda: (time.process_time(), sent), done.set)
        task = asyncio.create_task(pusher())
        await done.wait()
        await task


def mock_server(port_w: Any, ctl: Any, strict: bool) -> None:
    _quiet_asyncio()
    asyncio.run(_mock_main(port_w, ctl, strict))


async def _mock_main(port_w: Any, ctl: Any, strict: bool) -> None:
    from infoway_mock.mockserver.config import ServerConfig
    from infoway_mock.mockserver.server import MockServer

    cfg = ServerConfig(
        port=0,
        strict=strict,
        symbols=[SYMBOL],
        trade_rate=400_000.0,  # far above what one core can push: the pump runs flat out
        max_send_buffer=1 << 30,
        max_trades_per_advance=1000,  # pumps small enough for the high-water check to bite
        pump_interval=0.00005,  # back to back: the bench measures push capacity, not the cadence
        pump_high_water=HIGH_WATER,  # the same back-pressure as the bare server's pusher
    ).with_overrides(max_connections=0)  # 0 = no per-key connection quota: the bench opens 100+
    done = asyncio.Event()
    async with MockServer(cfg) as srv:
        port_w.send(srv.port)

        def stats() -> tuple[float, int]:
            return time.process_time(), srv.metrics.frames_sent[10002]

        serve_control(ctl, stats, done.set)
        await done.wait()


# -- clients (run here) ---------------------------------------------------------------------------------


async def _measure(
    port: int, n_conns: int, window: float, warmup: float, stats: Any
) -> tuple[int, float, tuple]:
    """Frames all clients received in the window, and the server's (CPU, frames sent) at both ends."""
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=demo"
    counts = [0] * n_conns
    counting = False

    go = asyncio.Event()
    opened: list[Any] = []
    connecting = asyncio.Semaphore(50)  # a handshake flood would measure the listen backlog instead

    async def one(i: int, ready: asyncio.Event) -> None:
        async with connecting:
            ws = await websockets.connect(url, compression=None, max_size=None, ping_interval=None)
        opened.append(ws)
        async with ws:
            ready.set()
            # Nobody subscribes until everyone is connected, so handshakes never queue behind pushes.
            await go.wait()
            await ws.send(json.dumps({"code": 10000, "trace": f"b{i}", "data": {"codes": SYMBOL}}))
            async for _ in ws:
                if counting:
                    counts[i] += 1

    readies = [asyncio.Event() for _ in range(n_conns)]
    tasks = [asyncio.create_task(one(i, readies[i])) for i in range(n_conns)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        # Server CPU and frames are taken over warm-up and window together: a fast server fills the
        # kernel's socket buffers during warm-up and may then rightly sit idle through the window.
        before = await asyncio.to_thread(stats)
        go.set()
        await asyncio.sleep(warmup)  # let the stream reach steady state before counting
        counting = True
        t0 = time.perf_counter()
        await asyncio.sleep(window)  # the measurement window itself
        counting = False
        # A saturated loop wakes late: divide by the time actually counted, not the nominal window.
        elapsed = time.perf_counter() - t0
        after = await asyncio.to_thread(stats)
    finally:
        # Abort rather than close: a closing handshake would wait behind megabytes of queued pushes.
        for ws in opened:
            ws.transport.abort()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return sum(counts), elapsed, (before, after)


def _run_case(target: Any, args: tuple[Any, ...], n_conns: int, window: float) -> tuple[float, float]:
    with ServerProcess(target, *args) as sp:
        frames, elapsed, ((cpu0, sent0), (cpu1, sent1)) = asyncio.run(
            _measure(sp.port, n_conns, window, 0.5, sp.stats)
        )
    delivered = frames / elapsed
    capacity = (sent1 - sent0) / max(cpu1 - cpu0, 1e-9)
    return delivered, capacity


def _compare(
    n_conns: int, repetitions: int, window: float, strict: bool
) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "mock": []}

    def bare() -> float:
        results["bare"].append(_run_case(bare_server, (), n_conns, window))
        return results["bare"][-1][0]

    def mock() -> float:
        results["mock"].append(_run_case(mock_server, (strict,), n_conns, window))
        return results["mock"][-1][0]

    alternate({"bare": bare, "mock": mock}, repetitions)
    return results


def run(
    repetitions: int = 5, window: float = 1.5, fanouts: tuple[int, ...] = (1, 100), strict: bool = True
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in fanouts:
        label = "push rate, 1 connection" if n == 1 else f"fan-out, {n} connections"
        results = _compare(n, repetitions, window, strict)
        for i, what in enumerate(("delivered frames/s", "frames per server CPU-s")):
            bare = [r[i] for r in results["bare"]]
            mock = [r[i] for r in results["mock"]]
            b, m = statistics.median(bare), statistics.median(mock)
            rows.append(
                ratio_row(
                    f"{label}: {what}" + (" (strict)" if strict else ""),
                    m,
                    b,
                    "mock / bare websockets",
                    {"mock": mock, "bare": bare},
                )
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--window", type=float, default=1.5)
    ap.add_argument("--fanout", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--no-strict", action="store_true")
    a = ap.parse_args()
    print(format_table(run(a.repetitions, a.window, tuple(a.fanout), strict=not a.no_strict)))


if __name__ == "__main__":
    main()
