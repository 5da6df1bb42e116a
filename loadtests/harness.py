"""Shared by the benchmarks: servers in their own process, alternated repetitions, medians and ratios."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any


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


def fmt(x: float) -> str:
    if x != x:  # NaN
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def now() -> float:
    return time.perf_counter()
