"""Soak: many concurrent subscribed connections for a while, with a load generator that is not the
bottleneck (light clients spread over several processes), against one mock process or a group behind
HAProxy (`--workers N`). Reports server RSS per connection, pushes per second, errors, and checks that every
counter is back at idle once the clients have gone.

    python -m loadtests.soak --connections 10000 --workers 2 --seconds 60     # or: make soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.harness import children, free_port, metric_sum, scrape_metrics

SYMBOLS = [("crypto", "BTCUSDT"), ("crypto", "ETHUSDT"), ("common", "EURUSD"), ("common", "XAUUSD")]
TOKEN = "soak-control-token"


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- client processes ---------------------------------------------------------------------------------------


def client_process(port: int, first: int, count: int, keys: list[str], ctl: Any) -> None:
    _raise_nofile()
    asyncio.run(_clients(port, first, count, keys, ctl))


async def _clients(port: int, first: int, count: int, keys: list[str], ctl: Any) -> None:
    from loadtests.lightclient import connect

    loop = asyncio.get_running_loop()
    conns: list[Any] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(100)  # handshakes in flight from this process

    async def open_one(i: int) -> None:
        business, symbol = SYMBOLS[i % len(SYMBOLS)]
        key = keys[i % len(keys)]
        async with gate:
            try:
                c = await connect("127.0.0.1", port, f"/ws?business={business}&apikey={key}")
            except Exception as e:  # counted and reported, never silent
                errors.append(f"{type(e).__name__}: {e}")
                return
        c.send({"code": 10000, "trace": "t", "data": {"codes": symbol}})
        c.send({"code": 10003, "trace": "d", "data": {"codes": symbol}})
        conns.append(c)

    async def heartbeats() -> None:
        # Running while connections still open: opening 10,000 can take longer than the 60 s timeout.
        while True:
            await asyncio.sleep(15)  # the heartbeat cadence (the server times out after 60 s)
            for c in list(conns):
                c.send({"code": 10010, "trace": "hb"})

    hb = asyncio.create_task(heartbeats())
    await asyncio.gather(*(open_one(i) for i in range(first, first + count)))
    while True:
        cmd = await loop.run_in_executor(None, ctl.recv)
        if cmd == "counts":
            alive = sum(1 for c in conns if not c.closed.done())
            ctl.send(
                {
                    "opened": len(conns),
                    "alive": alive,
                    "frames": sum(c.frames for c in conns),
                    "errors": errors[:5],
                    "n_errors": len(errors),
                }
            )
        elif cmd == "close":
            hb.cancel()
            for c in conns:
                if c.transport is not None:
                    c.transport.close()
            await asyncio.gather(*(c.closed for c in conns), return_exceptions=True)
            ctl.send({"closed": len(conns)})
            return


# -- the server ---------------------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def _start_server(
    port: int, workers: int, keys: list[str], tmp: Path, connections: int = 0
) -> subprocess.Popen[bytes]:
    config = {
        "keys": [{"key": k, "plan": "load"} for k in keys],
        # Depth once a second (live: ten times): 10,000 connections stay busy without drowning two cores
        # that also run HAProxy and the load generator.
        "server": {"max_trades_per_advance": 10000, "depth_interval": 1.0},
    }
    path = tmp / "soak-config.json"
    path.write_text(json.dumps(config))
    cmd = [
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        "serve",
        "--port",
        str(port),
        "--config",
        str(path),
    ]
    cmd += ["--control-token", TOKEN]
    if workers:
        # One HAProxy process holds ~(descriptor limit - 1024) / 2 connections (9,488 at this machine's
        # hard limit of 20,000, which cannot be raised here): more share the port.
        from infoway_mock.mockserver.cluster import fd_budget

        budget = fd_budget(resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        balancers = max(1, -(-(connections + 100) // budget))
        cmd += ["--workers", str(workers), "--balancers", str(balancers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=_raise_nofile)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "serving" not in line:
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc


def _idle(m: dict[str, float]) -> bool:
    return all(
        m.get(f"infoway_{g}", 0) == 0
        for g in ("connections", "subscriptions", "quota_connections", "quota_products")
    )


class Clients:
    """The load generator: client processes, each holding its share of the connections."""

    def __init__(self, port: int, connections: int, processes: int, keys: list[str]) -> None:
        ctx = mp.get_context("spawn")
        share = -(-connections // processes)
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        for p in range(processes):
            mine, theirs = ctx.Pipe()
            count = min(share, connections - p * share)
            proc = ctx.Process(
                target=client_process, args=(port, p * share, count, keys, theirs), daemon=True
            )
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def counts(self) -> list[dict[str, Any]]:
        for c in self.pipes:
            c.send("counts")
        return [c.recv() for c in self.pipes]

    def wait_open(self, connections: int, timeout: float = 300) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.counts()
            if sum(g["opened"] + g["n_errors"] for g in got) >= connections:
                return got
            if time.monotonic() > deadline:
                raise RuntimeError(f"connections did not all open: {got}")
            time.sleep(1.0)  # polling the clients with a deadline

    def close(self) -> None:
        for c in self.pipes:
            c.send("close")
        for c in self.pipes:
            c.recv()
        for proc in self.procs:
            proc.join(30)


def _wait_idle(port: int, timeout: float = 60) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while not _idle(after := scrape_metrics(port)) and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the server's gauges with a deadline
    return after


def run(connections: int, workers: int, seconds: float, processes: int, n_keys: int) -> dict[str, Any]:
    _raise_nofile()
    port = free_port()
    keys = [f"soak-key-{i:02d}" for i in range(n_keys)]
    with tempfile.TemporaryDirectory() as tmp:
        server = _start_server(port, workers, keys, Path(tmp), connections)
        try:
            time.sleep(0.5)  # let the group settle before measuring its idle memory
            tree = {server.pid: Path(f"/proc/{server.pid}/comm").read_text().strip(), **children(server.pid)}
            idle_rss = {pid: _rss_kb(pid) for pid in tree}
            clients = Clients(port, connections, processes, keys)
            t_open = time.monotonic()
            got = clients.wait_open(connections)
            open_seconds = time.monotonic() - t_open
            m0, f0, t0 = scrape_metrics(port), sum(g["frames"] for g in got), time.monotonic()
            time.sleep(seconds)  # the soak itself
            got = clients.counts()
            f1, t1 = sum(g["frames"] for g in got), time.monotonic()
            loaded_rss = {pid: _rss_kb(pid) for pid in tree}
            m1 = scrape_metrics(port)
            clients.close()
            after = _wait_idle(port)
        finally:
            server.terminate()
            server.wait(30)
    mocks = [pid for pid, name in tree.items() if name != "haproxy" and (workers == 0 or pid != server.pid)]
    haproxy = [pid for pid, name in tree.items() if name == "haproxy"]
    mock_idle, mock_loaded = sum(idle_rss[p] for p in mocks), sum(loaded_rss[p] for p in mocks)
    frames = metric_sum(m1, "infoway_frames_sent_total") - metric_sum(m0, "infoway_frames_sent_total")
    return {
        "connections": connections,
        "opened": sum(g["opened"] for g in got),
        "alive_at_end": sum(g["alive"] for g in got),
        "client_errors": sum(g["n_errors"] for g in got),
        "client_error_samples": [e for g in got for e in g["errors"]][:5],
        "workers": workers,
        "client_processes": processes,
        "seconds": seconds,
        "open_seconds": round(open_seconds, 1),
        "pushes_per_s": round((f1 - f0) / (t1 - t0)),
        "server_frames_per_s": round(frames / (t1 - t0)),
        "mock_rss_idle_mb": round(mock_idle / 1024, 1),
        "mock_rss_loaded_mb": round(mock_loaded / 1024, 1),
        "mock_rss_per_connection_kb": round((mock_loaded - mock_idle) / max(1, connections), 1),
        "haproxy_rss_mb": round(sum(loaded_rss[p] for p in haproxy) / 1024, 1),
        "server_errors_sent": metric_sum(m1, "infoway_errors_sent_total"),
        "handshakes_refused": metric_sum(m1, "infoway_handshakes_refused_total"),
        "slow_consumers_dropped": m1.get("infoway_slow_consumers_dropped_total", 0),
        "contract_violations": m1.get("infoway_contract_violations_total", 0),
        "idle_after": _idle(after),
        "gauges_after": {
            k: v
            for k, v in after.items()
            if k.split("{")[0]
            in (
                "infoway_connections",
                "infoway_subscriptions",
                "infoway_quota_connections",
                "infoway_quota_products",
            )
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.soak", description=__doc__)
    ap.add_argument(
        "--connections", type=int, default=int(os.environ.get("INFOWAY_SOAK_CONNECTIONS", "10000"))
    )
    ap.add_argument("--workers", type=int, default=int(os.environ.get("INFOWAY_SOAK_WORKERS", "2")))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("INFOWAY_SOAK_SECONDS", "60")))
    ap.add_argument("--client-processes", type=int, default=int(os.environ.get("INFOWAY_SOAK_CLIENTS", "3")))
    ap.add_argument("--keys", type=int, default=16, help="API keys the connections are spread over")
    ap.add_argument("--out", default="reports/soak.json")
    args = ap.parse_args(argv)
    result = run(args.connections, args.workers, args.seconds, args.client_processes, args.keys)
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    ok = (
        result["opened"] == args.connections
        and result["client_errors"] == 0
        and result["server_errors_sent"] == 0
        and result["contract_violations"] == 0
        and result["idle_after"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
