"""Time to data after an outage: the mock is restarted (port closed for N s, every connection reset) five
times in a row, each time once the stream is back, with two reference clients streaming BTCUSDT trades
from it: one with the adaptive reconnect policy (the default), one with the plain backoff policy it
replaced. Both see the same outages, so the comparison is paired.

Figure per down time: seconds from the server's return (fault + down time) to the first trade pushed
after the fault, median and max of the five outages; the handshakes each client attempted per outage;
and the most connections either client ever had open at once (must be 1).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from loadtests.harness import ServerProcess, fmt, format_table, serve_control

DOWN_TIMES = (0.5, 2.0, 10.0)
POLICIES = ("adaptive", "backoff")  # candidate, baseline
SYMBOL = "BTCUSDT"
# What issue 19 accepts for the 2 s outage (the adaptive policy): seconds, attempts, connections.
ACCEPT_MEDIAN_S, ACCEPT_MAX_S, ACCEPT_HANDSHAKES, ACCEPT_OPEN = 1.0, 2.0, 20, 1


def outage_server(port_w: Any, ctl: Any) -> None:
    asyncio.run(_server_main(port_w, ctl))


async def _server_main(port_w: Any, ctl: Any) -> None:
    from infoway_mock.mockserver.config import ServerConfig
    from infoway_mock.mockserver.faults import Fault
    from infoway_mock.mockserver.server import MockServer

    cfg = ServerConfig(port=0, symbols=[SYMBOL], trade_rate=100.0)
    done = asyncio.Event()
    pending: set[asyncio.Future[Any]] = set()
    async with MockServer(cfg) as srv:
        port_w.send(srv.port)

        def restart(seconds: float) -> Any:
            def apply() -> float:
                at = time.monotonic()  # one clock for both processes (CLOCK_MONOTONIC on Linux)
                task = asyncio.ensure_future(srv.faults.apply(Fault("restart", seconds=seconds)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                return at

            return apply

        commands = {f"restart {s}": restart(s) for s in DOWN_TIMES}
        serve_control(ctl, lambda: (time.process_time(), 0), done.set, commands)
        await done.wait()


class _Watch:
    """One client's events: when the first trade after the drop came (a trade the server pushed between
    the fault command and the restart is not "after the outage")."""

    def __init__(self) -> None:
        self.armed = False
        self.dropped = False
        self.first_after: float | None = None
        self.back = asyncio.Event()

    def arm(self) -> None:
        self.armed, self.dropped, self.first_after = True, False, None
        self.back.clear()

    def on_event(self, ev: Any) -> None:
        from infoway_mock.client import Disconnected, Trade

        t = type(ev)
        if t is Disconnected and self.armed:
            self.dropped = True
        elif t is Trade and self.first_after is None and (self.dropped or not self.armed):
            self.first_after = time.monotonic()
            self.back.set()


async def _outages(port: int, sp: ServerProcess, down: float, count: int, deadline: float) -> dict[str, Any]:
    from infoway_mock.client import InfowayClient

    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=demo"
    watches = {p: _Watch() for p in POLICIES}
    clients = {p: InfowayClient(url, on_event=watches[p].on_event, reconnect_policy=p) for p in POLICIES}
    lags: dict[str, list[float]] = {p: [] for p in POLICIES}
    handshakes: dict[str, list[int]] = {p: [] for p in POLICIES}
    try:
        for c in clients.values():
            c.start()
            await c.subscribe_trades(SYMBOL)
        await asyncio.wait_for(asyncio.gather(*(w.back.wait() for w in watches.values())), deadline)
        for _ in range(count):
            attempts = {p: c.stats()["connect_attempts"] for p, c in clients.items()}
            for w in watches.values():
                w.arm()
            fault_at = await asyncio.to_thread(sp.ask, f"restart {down}")
            await asyncio.wait_for(asyncio.gather(*(w.back.wait() for w in watches.values())), deadline)
            for p, c in clients.items():
                lags[p].append(watches[p].first_after - fault_at - down)  # type: ignore[operator]
                handshakes[p].append(c.stats()["connect_attempts"] - attempts[p])
        open_max = {p: c.stats()["connections_open_max"] for p, c in clients.items()}
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)
    return {"lags": lags, "handshakes": handshakes, "open_max": open_max}


def run(
    count: int = 5, downs: tuple[float, ...] = DOWN_TIMES, deadline: float = 120.0
) -> list[dict[str, Any]]:
    rows = []
    for down in downs:
        with ServerProcess(outage_server) as sp:
            got = asyncio.run(_outages(sp.port, sp, down, count, deadline))
        rows.append(_row(down, got))
    return rows


def _row(down: float, got: dict[str, Any]) -> dict[str, Any]:
    lags, hs, open_max = got["lags"], got["handshakes"], got["open_max"]
    cand, base = statistics.median(lags["adaptive"]), statistics.median(lags["backoff"])

    def summary(p: str) -> str:
        return (
            f"{p}: max {max(lags[p]):.2f} s, handshakes/outage median {statistics.median(hs[p]):g} "
            f"max {max(hs[p])}, open at once {open_max[p]}"
        )

    row = {
        "benchmark": f"time to data after a {down:g} s outage (restart, x{len(lags['adaptive'])}): "
        "s from the server's return to the first push",
        "candidate": f"{cand:.2f}",
        "baseline": f"{base:.2f}",
        "ratio": f"{cand / base:.2f}" if base > 0 else "n/a",
        "unit": f"adaptive / backoff policy (lower is better); {summary('adaptive')}; {summary('backoff')}",
        "candidate_value": cand,
        "baseline_value": base,
        "ratio_value": cand / base if base > 0 else None,
        "values": {"adaptive": lags["adaptive"], "backoff": lags["backoff"]},
        "handshakes": hs,
        "open_max": open_max,
    }
    if down == 2.0:
        row["acceptance"] = (
            f"median <= {ACCEPT_MEDIAN_S} s, max <= {ACCEPT_MAX_S} s, <= {ACCEPT_HANDSHAKES} handshakes "
            f"per outage, {ACCEPT_OPEN} connection open at a time"
        )
        row["meets_target"] = (
            cand <= ACCEPT_MEDIAN_S
            and max(lags["adaptive"]) <= ACCEPT_MAX_S
            and max(hs["adaptive"]) <= ACCEPT_HANDSHAKES
            and open_max["adaptive"] <= ACCEPT_OPEN
        )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--outages", type=int, default=5, help="outages in a row per down time")
    ap.add_argument("--down", type=float, nargs="+", default=list(DOWN_TIMES), choices=DOWN_TIMES)
    a = ap.parse_args()
    rows = run(a.outages, tuple(a.down))
    print(format_table(rows))
    for r in rows:
        print(r["benchmark"], {k: [fmt(v) for v in vs] for k, vs in r["values"].items()}, r["handshakes"])


if __name__ == "__main__":
    main()
