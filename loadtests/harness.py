"""Shared by the benchmarks: servers in their own process, alternated repetitions, medians and ratios."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def alternate(candidates: dict[str, Callable[[], float]], repetitions: int) -> dict[str, list[float]]:
    """Run each candidate once per round, baseline and candidate interleaved, so a slow phase of the
    machine hits both alike instead of biasing one."""
    out: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repetitions):
        for name, run in candidates.items():
            out[name].append(run())
    return out


class ServerProcess:
    """Runs `target(port_conn, ctl_conn, *args)` in a spawned process. The target sends its port on
    port_conn, answers "stats" on ctl_conn with (CPU seconds used, frames sent), and exits on "stop"."""

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self._port_r, port_w = ctx.Pipe(duplex=False)
        self._stop, child_stop = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(port_w, child_stop, *args), daemon=True)

    def __enter__(self) -> ServerProcess:
        self.proc.start()
        if not self._port_r.poll(60):
            raise RuntimeError("benchmark server did not start")
        self.port: int = self._port_r.recv()
        return self

    def stats(self) -> tuple[float, int]:
        """(CPU seconds used, frames sent) so far; the server keeps serving."""
        cpu, frames = self.ask("stats")
        return float(cpu), int(frames)

    def ask(self, command: str) -> Any:
        """Run one of the server's named commands (serve_control's `commands`) and return its answer."""
        self._stop.send(command)
        if not self._stop.poll(60):
            raise RuntimeError(f"benchmark server did not answer {command!r}")
        return self._stop.recv()

    def __exit__(self, *exc: object) -> None:
        try:
            self._stop.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def serve_control(
    ctl: Any,
    stats: Callable[[], tuple[float, int]],
    stop: Callable[[], None],
    commands: dict[str, Callable[[], Any]] | None = None,
) -> None:
    """Inside a server process: answer the parent's pipe from the running asyncio loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    table = {"stats": stats, **(commands or {})}

    def on_readable() -> None:
        msg = ctl.recv()
        if msg in table:
            ctl.send(table[msg]())
        else:
            loop.remove_reader(ctl.fileno())
            stop()

    loop.add_reader(ctl.fileno(), on_readable)


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = ["benchmark", "candidate", "baseline", "ratio", "unit"]
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def ratio_row(
    name: str, candidate: float, baseline: float, unit: str, values: Any, *, digits: int = 2
) -> dict[str, Any]:
    """One benchmark row: the medians, their ratio (candidate / baseline, same run) and every repetition."""
    return {
        "benchmark": name,
        "candidate": fmt(candidate),
        "baseline": fmt(baseline),
        "ratio": f"{candidate / baseline:.{digits}f}" if baseline else "n/a",
        "unit": unit,
        "candidate_value": candidate,
        "baseline_value": baseline,
        "ratio_value": candidate / baseline if baseline else None,
        "values": values,
    }


def fmt(x: float) -> str:
    if x != x:  # NaN
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def now() -> float:
    return time.perf_counter()


# -- a server under test: its port, its processes, its /metrics ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> dict[int, str]:
    """The direct children of a process, with their command names (a worker group's workers and HAProxy)."""
    out = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out[int(child)] = Path(f"/proc/{child}/comm").read_text().strip()
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def scrape_metrics(port: int, timeout: float = 60) -> dict[str, float]:
    """A mock's /metrics (a group's: summed over its workers) as {sample name with labels: value}."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    out: dict[str, float] = {}
    for line in data.decode().split("\r\n\r\n", 1)[1].splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_sum(metrics: dict[str, float], prefix: str) -> float:
    """A counter summed over its labels."""
    return sum(v for k, v in metrics.items() if k.startswith(prefix))
