"""Connection-level benchmarks: handshakes per second vs a bare websockets server, and a reconnect storm.

Handshakes: the same client opens N connections (a few in flight at a time), reads the first frame and
closes; the bare server sends the same welcome frame, the mock does auth, quota and session set-up too.

Reconnect storm: `clients` reference clients each subscribe depth for one symbol; the server then drops
every connection at once with a TCP reset. Figure: time until every client has resubscribed and seen
a depth push again, against the same measure from a cold start of the same clients in the same run;
and the count of 427 and 501 errors the storm provoked (must be 0: quota slots are released before
clients come back, and the pacer keeps every connection under its request limit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import websockets

from loadtests.harness import ServerProcess, alternate, format_table, ratio_row, serve_control

WELCOME = '{"code":200,"msg":"ws connect success"}'


# -- servers (each in its own process) ------------------------------------------------------------------


def bare_handshake_server(port_w: Any, ctl: Any) -> None:
    asyncio.run(_bare_handshake_main(port_w, ctl))


async def _bare_handshake_main(port_w: Any, ctl: Any) -> None:
    from websockets.asyncio.server import serve

    accepted = 0
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        nonlocal accepted
        accepted += 1
        await ws.send(WELCOME)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port_w.send(next(iter(server.sockets)).getsockname()[1])
        serve_control(ctl, lambda: (time.process_time(), accepted), done.set)
        await done.wait()


def mock_connection_server(port_w: Any, ctl: Any, max_connections: int) -> None:
    asyncio.run(_mock_main(port_w, ctl, max_connections))


async def _mock_main(port_w: Any, ctl: Any, max_connections: int) -> None:
    from infoway_mock.mockserver.config import ServerConfig
    from infoway_mock.mockserver.server import MockServer

    cfg = ServerConfig(port=0, strict=True, symbols=["BTCUSDT", "ETHUSDT", "EURUSD", "XAUUSD"])
    cfg.with_overrides(max_connections=max_connections)
    done = asyncio.Event()
    async with MockServer(cfg) as srv:
        port_w.send(srv.port)

        def counters() -> dict[str, Any]:
            m = srv.metrics
            return {
                **srv.counters(),
                "errors": dict(m.errors_sent),
                "refused": dict(m.handshakes_refused),
                "violations": m.contract_violations,
                "rss_kb": _rss_kb(),
            }

        pending: set[asyncio.Task[None]] = set()

        def drop() -> bool:
            task = asyncio.ensure_future(srv.drop_all(None))  # abrupt: TCP reset, no close frame
            pending.add(task)
            task.add_done_callback(pending.discard)
            return True

        serve_control(
            ctl,
            lambda: (time.process_time(), srv.metrics.connections_total),
            done.set,
            {"counters": counters, "drop": drop},
        )
        await done.wait()


def _rss_kb() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# -- handshakes -------------------------------------------------------------------------------------------


async def _handshakes(url: str, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            async with websockets.connect(url, compression=None, ping_interval=None) as ws:
                await ws.recv()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


def run_handshakes(repetitions: int = 5, n: int = 300, concurrency: int = 10) -> list[dict[str, Any]]:
    with (
        ServerProcess(bare_handshake_server) as bare_sp,
        ServerProcess(mock_connection_server, 0) as mock_sp,
    ):
        bare_url = f"ws://127.0.0.1:{bare_sp.port}/ws"
        mock_url = f"ws://127.0.0.1:{mock_sp.port}/ws?business=crypto&apikey=demo"
        results = alternate(
            {
                "bare": lambda: asyncio.run(_handshakes(bare_url, n, concurrency)),
                "mock": lambda: asyncio.run(_handshakes(mock_url, n, concurrency)),
            },
            repetitions,
        )
    b, m = statistics.median(results["bare"]), statistics.median(results["mock"])
    return [ratio_row(f"handshakes/s ({n} connects, {concurrency} in flight)", m, b, "mock / bare", results)]


# -- reconnect storm ------------------------------------------------------------------------------------


async def _storm(port: int, clients: int, deadline: float, sp: ServerProcess) -> dict[str, Any]:
    from infoway_mock.client import Depth, InfowayClient, Resubscribed

    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=demo"
    symbols = ["BTCUSDT", "ETHUSDT"]
    epoch = 0  # bumped at the drop: a client counts once per epoch when its depth flows again
    seen: list[int] = [-1] * clients
    resubscribed = 0
    all_in = asyncio.Event()
    remaining = clients

    def handler(i: int) -> Any:
        def on_event(ev: Any) -> None:
            nonlocal remaining, resubscribed
            t = type(ev)
            if t is Depth and seen[i] != epoch:
                seen[i] = epoch
                remaining -= 1
                if remaining == 0:
                    all_in.set()
            elif t is Resubscribed:
                resubscribed += 1

        return on_event

    pool = [
        InfowayClient(url, on_event=handler(i), heartbeat_interval=20.0, backoff_base=1.0)
        for i in range(clients)
    ]
    try:
        start = time.perf_counter()
        for i, c in enumerate(pool):
            c.start()
            await c.subscribe_depth(symbols[i % len(symbols)])
        await asyncio.wait_for(all_in.wait(), deadline)
        cold = time.perf_counter() - start
        before = await asyncio.to_thread(sp.ask, "counters")

        epoch, remaining = 1, clients
        all_in.clear()
        start = time.perf_counter()
        await asyncio.to_thread(sp.ask, "drop")
        await asyncio.wait_for(all_in.wait(), deadline)
        storm = time.perf_counter() - start
        after = await asyncio.to_thread(sp.ask, "counters")
    finally:
        await asyncio.gather(*(c.close() for c in pool), return_exceptions=True)

    def errors(code: int) -> int:
        return after["errors"].get(code, 0) - before["errors"].get(code, 0)

    return {
        "cold_s": cold,
        "storm_s": storm,
        "resubscribed": resubscribed,
        "errors_427": after["refused"].get(427, 0) - before["refused"].get(427, 0),
        "errors_501": errors(501),
        "violations": after["violations"],
    }


def run_storm(repetitions: int = 5, clients: int = 1000, deadline: float = 90.0) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for _ in range(repetitions):
        with ServerProcess(mock_connection_server, clients) as sp:
            runs.append(asyncio.run(_storm(sp.port, clients, deadline, sp)))
    cold = statistics.median(r["cold_s"] for r in runs)
    storm = statistics.median(r["storm_s"] for r in runs)
    bad = {k: sum(r[k] for r in runs) for k in ("errors_427", "errors_501", "violations")}
    row = ratio_row(
        f"reconnect storm: {clients} clients reset at once, s until all resubscribed",
        storm,
        cold,
        "storm / cold start (lower is better)",
        {"storm": [r["storm_s"] for r in runs], "cold": [r["cold_s"] for r in runs]},
    )
    row["unit"] += f"; 427s {bad['errors_427']}, 501s {bad['errors_501']}, resubscribed " + "/".join(
        str(r["resubscribed"]) for r in runs
    )
    row.update(bad)
    return [row]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--only", choices=["handshakes", "storm"])
    a = ap.parse_args()
    rows: list[dict[str, Any]] = []
    if a.only in (None, "handshakes"):
        rows += run_handshakes(a.repetitions)
    if a.only in (None, "storm"):
        rows += run_storm(a.repetitions, a.clients)
    print(format_table(rows))


if __name__ == "__main__":
    main()
