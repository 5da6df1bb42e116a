"""Worker groups behind HAProxy (issue 20): does a second worker pay for itself, and what does HAProxy cost?

- fan-out efficiency: the same fan-out (N light clients subscribed to one busy symbol, spread over many
  keys) served by `--workers 2` and by `--workers 1`, both behind HAProxy; frames sent per CPU-second of
  the mock processes (HAProxy's own CPU is reported beside). A ratio near 1 means the group spends no
  more per frame than one process does, so a second core is a second core's worth of capacity.
  A process's cost per frame is mostly its socket writes, one per connection per pump tick; a process
  whose steps overrun the pump interval misses ticks and writes bigger batches less often, which costs it
  less per frame (and delivers later). So the comparison that carries the target runs both groups at one
  cadence that neither misses (a 50 ms pump), and every row reports frames per write and missed ticks;
  the default 10 ms pump is reported beside it, where one worker for 1,000 connections cannot keep up.
- handshakes/s through HAProxy (`--workers 1`) against the same mock served directly.

    python -m loadtests.bench_cluster --repetitions 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.bench_connections import _handshakes
from loadtests.harness import (
    alternate,
    children,
    cpu_seconds,
    format_table,
    free_port,
    metric_sum,
    ratio_row,
    scrape_metrics,
)

KEYS = [f"bench-key-{i:02d}" for i in range(16)]


def _counters(port: int) -> dict[str, float]:
    """Frames sent, socket writes and missed pump ticks, summed over the group (its /metrics)."""
    m = scrape_metrics(port, timeout=10)
    return {name: metric_sum(m, prefix) for prefix, name in _METRICS.items()}


_METRICS = {
    "infoway_frames_sent_total": "frames",
    "infoway_socket_writes_total": "writes",
    "infoway_pump_ticks_missed_total": "missed",
}


class Group:
    """`infoway-mock serve [--workers N]` in a subprocess, on a busy one-symbol market."""

    def __init__(self, workers: int, tmp: Path, trade_rate: float, pump_interval: float = 0.01) -> None:
        self.port = free_port()
        config = {
            "keys": [{"key": k, "plan": "load"} for k in KEYS],
            "server": {
                "symbols": ["BTCUSDT"],
                "trade_rate": trade_rate,
                "max_send_buffer": 64 << 20,
                "pump_interval": pump_interval,
            },
        }
        path = tmp / f"bench-{workers}-{pump_interval}.json"
        path.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "infoway_mock.mockserver", "serve", "--port", str(self.port)]
        cmd += ["--config", str(path), "--control-token", "bench-token-1234"]
        if workers:
            cmd += ["--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "serving" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        kids = children(self.proc.pid) if workers else {}
        self.mocks = [p for p, name in kids.items() if name != "haproxy"] or [self.proc.pid]
        self.haproxy = [p for p, name in kids.items() if name == "haproxy"]

    def cpu(self) -> tuple[float, float]:
        return sum(cpu_seconds(p) for p in self.mocks), sum(cpu_seconds(p) for p in self.haproxy)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def _fanout_window(port: int, group: Group, n: int, window: float) -> dict[str, float]:
    """Over one window with n clients subscribed: frames per mock CPU-second and per HAProxy CPU-second,
    frames per socket write, and pump ticks missed per second (summed over the workers).

    Every client connects first and subscribes after, so the stream starts for all of them at once and
    opening the last ones is not slowed by pushes to the first (each repetition stays far inside the
    heartbeat timeout, so the clients need not heartbeat)."""
    from loadtests.lightclient import connect

    gate = asyncio.Semaphore(50)

    async def open_one(i: int) -> Any:
        async with gate:
            return await connect("127.0.0.1", port, f"/ws?business=crypto&apikey={KEYS[i % len(KEYS)]}")

    clients = await asyncio.gather(*(open_one(i) for i in range(n)))
    for c in clients:
        c.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    await asyncio.sleep(1.0)  # warm-up: every subscription in place and the pump at its pace
    m0, (c0, h0) = _counters(port), group.cpu()
    await asyncio.sleep(window)  # the measurement window itself
    m1, (c1, h1) = _counters(port), group.cpu()
    lost = sum(1 for c in clients if c.closed.done())
    for c in clients:
        c.transport.close()
    await asyncio.gather(*(c.closed for c in clients), return_exceptions=True)
    if lost:
        raise RuntimeError(f"{lost} of {n} clients were closed during the window: the figure would be wrong")
    frames = m1["frames"] - m0["frames"]
    return {
        "per_cpu": frames / max(c1 - c0, 1e-6),
        "per_haproxy": frames / max(h1 - h0, 1e-6),
        "per_write": frames / max(m1["writes"] - m0["writes"], 1.0),
        "missed_per_s": (m1["missed"] - m0["missed"]) / window,
    }


def run_fanout(
    repetitions: int = 5,
    n: int = 1000,
    window: float = 4.0,
    trade_rate: float = 50.0,
    pump_interval: float = 0.05,
) -> list[dict[str, Any]]:
    """1,000 connections on BTCUSDT at 200 trades/s: 200,000 frames/s, which one light-client process
    takes; 4 s windows keep the CPU ticks (10 ms) a small error. Both groups run the same pump interval;
    the rows say whether each kept that cadence (frames per write, missed ticks per second)."""
    with tempfile.TemporaryDirectory() as tmp:
        one = Group(1, Path(tmp), trade_rate, pump_interval)
        two = Group(2, Path(tmp), trade_rate, pump_interval)
        try:
            results = alternate(
                {
                    "1 worker": lambda: asyncio.run(_fanout_window(one.port, one, n, window)),
                    "2 workers": lambda: asyncio.run(_fanout_window(two.port, two, n, window)),
                },
                repetitions,
            )
        finally:
            one.close()
            two.close()

    def med(key: str, group: str) -> float:
        return statistics.median(r[key] for r in results[group])

    cadence = ", ".join(
        f"{g}: {med('per_write', g):.1f} frames/write, {med('missed_per_s', g):.1f} ticks missed/s"
        for g in ("1 worker", "2 workers")
    )
    label = f"fan-out to {n} via HAProxy, {pump_interval * 1000:.0f} ms pump"
    rows = []
    for key, what in (("per_cpu", "frames per mock CPU-s"), ("per_haproxy", "frames per HAProxy CPU-s")):
        values = {g: [r[key] for r in results[g]] for g in results}
        rows.append(
            ratio_row(
                f"{label}: {what}",
                med(key, "2 workers"),
                med(key, "1 worker"),
                f"2 workers / 1 worker; {cadence}",
                values,
            )
        )
    return rows


def run_handshakes(repetitions: int = 5, n: int = 300, concurrency: int = 10) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        direct, proxied = Group(0, Path(tmp), 2.0), Group(1, Path(tmp), 2.0)
        try:
            results = alternate(
                {
                    "direct": lambda: asyncio.run(_handshakes(_url(direct.port), n, concurrency)),
                    "haproxy": lambda: asyncio.run(_handshakes(_url(proxied.port), n, concurrency)),
                },
                repetitions,
            )
        finally:
            direct.close()
            proxied.close()
    d, p = statistics.median(results["direct"]), statistics.median(results["haproxy"])
    return [
        ratio_row(
            f"handshakes/s via HAProxy ({n} connects, {concurrency} in flight)",
            p,
            d,
            "haproxy / direct",
            results,
        )
    ]


def _url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/ws?business=crypto&apikey={KEYS[0]}"


def run(repetitions: int = 5) -> list[dict[str, Any]]:
    # 50 ms: a cadence one worker for 1,000 connections keeps (the target's row); 10 ms: the default.
    return (
        run_fanout(repetitions, pump_interval=0.05)
        + run_fanout(repetitions, pump_interval=0.01)
        + run_handshakes(repetitions)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(a.repetitions)
    print(format_table(rows), f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
