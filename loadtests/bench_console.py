"""What an open console costs the mock: its push rate with 1,000 subscribed connections, with a console
open and without, alternated in the same server process, medians of n >= 5 windows.

The mock runs flat out in its own process (the pump back to back, as in bench_server), pushing every
trade of one symbol to 1,000 connections. The connections are raw sockets here that read and discard
bytes, so the clients are not what limits the rate. A console is the page's own socket: it asks for the
page's view (50 rows, a chart) and reads every update. Two figures, both "with / without": frames pushed
per wall second, and frames per second of the server's CPU time (the console's cost per frame, whatever
the clients do). The issue's bar: an open console costs under 5 % of the push rate (ratio >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import time
from typing import Any

import orjson
import websockets

from loadtests.harness import ServerProcess, format_table, ratio_row, serve_control
from loadtests.lightclient import upgrade_request

SYMBOL = "BTCUSDT"
TOKEN = "bench-console"
HIGH_WATER = 512 * 1024


def console_mock(port_w: Any, ctl: Any) -> None:
    import logging

    logging.getLogger("asyncio").setLevel(logging.ERROR)
    asyncio.run(_mock_main(port_w, ctl))


async def _mock_main(port_w: Any, ctl: Any) -> None:
    from infoway_mock.mockserver.config import ServerConfig
    from infoway_mock.mockserver.server import MockServer

    cfg = ServerConfig(
        port=0,
        symbols=[SYMBOL, "ETHUSDT"],
        trade_rate=400_000.0,  # far above what one core can push: the pump runs flat out
        max_send_buffer=1 << 30,
        max_trades_per_advance=20,  # small steps: the loop stays responsive (handshakes, the console)
        pump_interval=0.00005,
        pump_high_water=HIGH_WATER,
        heartbeat_timeout=3600.0,  # the raw clients never heartbeat
        control_token=TOKEN,
    ).with_overrides(max_connections=0)
    done = asyncio.Event()
    async with MockServer(cfg) as srv:
        port_w.send(srv.port)

        def stats() -> tuple[float, int]:
            return time.process_time(), srv.metrics.frames_sent.total()

        def console() -> dict[str, Any]:
            c = srv.console
            return {
                "updates": c.updates_sent,
                "busy": c.busy,
                "skipped": c.updates_skipped,
                "open": len(c.clients),
            }

        serve_control(ctl, stats, done.set, {"console": console, "sessions": lambda: len(srv.conns)})
        await done.wait()


# -- raw clients: a subscribe, then bytes read and dropped ---------------------------------------------------


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class _Sink(asyncio.Protocol):
    def __init__(self, upgraded: asyncio.Future[bool]) -> None:
        self.upgraded = upgraded
        self.head = b""
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.upgraded.done():
            self.received += len(data)
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            head, _, rest = self.head.partition(b"\r\n\r\n")
            self.received += len(rest)
            self.upgraded.set_result(head.startswith(b"HTTP/1.1 101"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_result(False)


async def _open_raw(port: int, n: int) -> list[_Sink]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(50)  # a handshake flood would measure the listen backlog instead

    async def one() -> _Sink:
        async with gate:
            fut: asyncio.Future[bool] = loop.create_future()
            _, sink = await loop.create_connection(lambda: _Sink(fut), "127.0.0.1", port)
            assert sink.transport is not None
            sink.transport.write(upgrade_request(f"127.0.0.1:{port}", "/ws?business=crypto&apikey=demo"))
            if not await asyncio.wait_for(fut, 30):
                raise RuntimeError("the mock refused a benchmark connection")
            return sink

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def _window(sp: ServerProcess, seconds: float) -> tuple[float, float, float]:
    """(frames per wall second, frames per server CPU second, server CPU seconds) over one window."""
    cpu0, sent0 = await asyncio.to_thread(sp.stats)
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)  # the measurement window itself
    cpu1, sent1 = await asyncio.to_thread(sp.stats)
    elapsed = time.perf_counter() - t0
    frames = sent1 - sent0
    return frames / elapsed, frames / max(cpu1 - cpu0, 1e-9), cpu1 - cpu0


async def _measure(sp: ServerProcess, conns: int, repetitions: int, window: float) -> dict[str, Any]:
    sinks = await _open_raw(sp.port, conns)
    subscribe = _masked_text(orjson.dumps({"code": 10000, "trace": "b", "data": {"codes": SYMBOL}}))
    for s in sinks:
        assert s.transport is not None
        s.transport.write(subscribe)
    await asyncio.sleep(1.0)  # warm-up: every connection streaming before the first window
    out: dict[str, list[tuple[float, float, float]]] = {"without": [], "with": []}
    updates: list[int] = []
    sizes: list[int] = []
    busy: list[float] = []
    try:
        for _ in range(repetitions):
            out["without"].append(await _window(sp, window))
            url = f"ws://127.0.0.1:{sp.port}/console/ws?token={TOKEN}"
            async with websockets.connect(url, max_size=None, compression=None, open_timeout=60) as ws:
                await ws.send(
                    orjson.dumps({"id": 1, "op": "view", "filter": "", "offset": 0, "limit": 50}).decode()
                )
                await ws.send(orjson.dumps({"id": 2, "op": "chart", "symbol": SYMBOL}).decode())
                got = 0
                nbytes = 0

                async def read() -> None:
                    nonlocal got, nbytes
                    async for msg in ws:
                        if b'"type":"state"' in (msg if isinstance(msg, bytes) else msg.encode()):
                            got += 1
                            nbytes += len(msg)

                reader = asyncio.create_task(read())
                await asyncio.sleep(0.6)  # the first state is out before the window opens
                before = await asyncio.to_thread(sp.ask, "console")
                got0, bytes0 = got, nbytes
                out["with"].append(await _window(sp, window))
                after = await asyncio.to_thread(sp.ask, "console")
                updates.append(got - got0)
                sizes.append((nbytes - bytes0) // max(1, got - got0))
                # The console's own CPU time as a share of the server's in the same window.
                busy.append((after["busy"] - before["busy"]) / max(out["with"][-1][2], 1e-9))
                reader.cancel()
    finally:
        for s in sinks:
            if s.transport is not None:
                s.transport.abort()
    return {"values": out, "updates": updates, "sizes": sizes, "busy": busy, "window": window}


def run(repetitions: int = 5, conns: int = 1000, window: float = 3.0) -> list[dict[str, Any]]:
    with ServerProcess(console_mock) as sp:
        res = asyncio.run(_measure(sp, conns, repetitions, window))
    rows = []
    per_s = statistics.median(res["updates"]) / res["window"]
    size = statistics.median(res["sizes"])
    busy = statistics.median(res["busy"])
    for i, what in enumerate(("pushes/s", "pushes per server CPU-s")):
        without = [v[i] for v in res["values"]["without"]]
        with_ = [v[i] for v in res["values"]["with"]]
        b, m = statistics.median(without), statistics.median(with_)
        rows.append(
            ratio_row(
                f"console open, {conns} connections: {what}",
                m,
                b,
                f"with / without a console ({per_s:.1f} updates/s of {size / 1024:.1f} KiB; "
                f"building them took {busy:.1%} of the server's CPU)",
                {"with": with_, "without": without},
                digits=3,
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--window", type=float, default=3.0)
    a = ap.parse_args()
    print(format_table(run(a.repetitions, a.connections, a.window)))


if __name__ == "__main__":
    main()
