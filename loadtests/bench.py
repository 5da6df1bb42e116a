"""`make bench`: every benchmark, one table at the end, reports/bench.json and PNG plots.

Every figure is a ratio to a baseline measured in the same run (baseline and candidate alternated,
medians of the repetitions), with the absolute numbers beside it. Runs in a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from loadtests.harness import format_table

# What the issues ask of each ratio (None: informational). Keys are benchmark-name prefixes.
TARGETS = {
    "push rate, 1 connection: delivered": 0.6,
    "fan-out, 100 connections: delivered": 0.6,
    "client consumption (async for): frames -> typed events/s": 0.85,
    "client consumption (on_event callback): frames -> typed events/s": 0.85,
    # Issue 17: an open console costs the mock under 5 % of its push capacity with 1,000 connections.
    "console open, 1000 connections: pushes per server CPU-s": 0.95,
    "proxy: delivered pushes/s": 0.8,
    # Issue 20: a second worker spends no more per frame than one (>= 0.9 of its frames per CPU-s), at a
    # pump cadence both groups keep (bench_cluster's docstring says why the cadence must be the same).
    "fan-out to 1000 via HAProxy, 50 ms pump: frames per mock CPU-s": 0.9,
    "firehose, 1 connection: frames/s vs bare websockets": 3.0,
    "firehose, 1 connection: frames/s vs raw transport": 0.8,
}


PARTS = ["validation", "server", "connections", "storm", "client", "outage", "console", "replay", "cluster"]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def target_for(name: str) -> float | None:
    return next((t for prefix, t in TARGETS.items() if name.startswith(prefix)), None)


def plot(rows: list[dict[str, Any]], out: Path) -> list[str]:
    """Two PNGs: ratio per benchmark (with targets), and every repetition relative to its baseline's
    median, which shows how noisy each figure was."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the load extra is not installed: the table and JSON still stand
        return []
    rated = [r for r in rows if r.get("ratio_value") is not None]
    names = [r["benchmark"] for r in rated]
    files = []

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rated) + 1.5))
    ys = range(len(rated))
    ax.barh(ys, [r["ratio_value"] for r in rated], color="#4c72b0")
    for y, r in zip(ys, rated, strict=True):
        t = target_for(r["benchmark"])
        if t is not None:
            ax.plot([t, t], [y - 0.4, y + 0.4], color="#c44e52", lw=2)
        ax.text(r["ratio_value"], y, f" {r['ratio_value']:.2f}", va="center", fontsize=8)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("candidate / baseline, same run (red: target)")
    ax.set_xscale("log")
    fig.tight_layout()
    path = out / "bench-ratios.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rated) + 1.5))
    for y, r in enumerate(rated):
        base = r["baseline_value"]
        for j, (series, vals) in enumerate(r["values"].items()):
            flat = [v if isinstance(v, int | float) else v[0] for v in vals]
            ax.scatter([v / base for v in flat], [y + (j - 0.5) * 0.2] * len(flat), s=12, label=series)
    ax.set_yticks(range(len(rated)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("each repetition / median of its baseline (spread = machine noise)")
    fig.tight_layout()
    path = out / "bench-repetitions.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))
    return files


def to_markdown(report: dict[str, Any]) -> str:
    """The table as Markdown, for the README: ratio first, then the absolute figures behind it."""
    m = report["machine"]
    lines = [
        f"{m['cores']} cores, {m['cpu']}, Python {m['python']}; {report['repetitions']} repetitions per "
        f"figure, medians, baseline and candidate alternated; {report['seconds']:.0f} s in all "
        f"({report['when']}).",
        "",
        "| benchmark | ratio | target | candidate | baseline | ratio of |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        target = f">= {r['target']}" if "target" in r else r.get("acceptance", "")
        lines.append(
            f"| {r['benchmark']} | {r['ratio']} | {target} | {r['candidate']} | {r['baseline']} | "
            f"{r['unit']} |"
        )
    return "\n".join(lines) + "\n"


def _sections(part: str, a: argparse.Namespace, reps: int) -> list[tuple[str, Any]]:
    """The (title, run) sections of one part; modules are imported only for the parts that run."""
    import importlib

    def mod(name: str) -> Any:
        return importlib.import_module(f"loadtests.{name}")

    table: dict[str, list[tuple[str, Any]]] = {
        "validation": [("validation cost per frame", lambda: mod("bench_validation").run(reps))],
        "server": [
            ("mock push rate and fan-out", lambda: mod("bench_server").run(reps, 1.5, (1, 100))),
            (f"fan-out to {a.big_fanout}", lambda: mod("bench_server").run(reps, 1.5, (a.big_fanout,))),
        ],
        "connections": [("handshakes", lambda: mod("bench_connections").run_handshakes(reps))],
        "storm": [("reconnect storm", lambda: mod("bench_connections").run_storm(reps, a.storm_clients))],
        "client": [("client consumption", lambda: mod("bench_client").run(reps))],
        "outage": [("time to data after an outage", lambda: mod("bench_outage").run(max(reps, 5)))],
        "console": [("an open console, 1,000 connections", lambda: mod("bench_console").run(reps, 1000))],
        "replay": [("proxy, firehose, replay (issue 15)", lambda: mod("bench_replay").run(reps))],
        "cluster": [("worker groups behind HAProxy (issue 20)", lambda: mod("bench_cluster").run(reps))],
    }
    return table[part]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5, help="per figure; at least 5 for reports")
    ap.add_argument("--out", default="reports", help="directory for bench.json and the plots")
    ap.add_argument("--storm-clients", type=int, default=1000)
    ap.add_argument("--big-fanout", type=int, default=1000)
    ap.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        help="run only these parts",
    )
    a = ap.parse_args(argv)
    parts = set(a.only or PARTS)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    reps = a.repetitions
    rows: list[dict[str, Any]] = []
    started = time.time()

    def section(name: str, fn: Any) -> None:
        t0 = time.perf_counter()
        print(f"== {name} ...", flush=True)
        got = fn()
        rows.extend(got)
        print(format_table(got), f"\n   ({time.perf_counter() - t0:.0f} s)\n", flush=True)

    for part in PARTS:
        if part in parts:
            for title, run in _sections(part, a, reps):
                section(title, run)

    for r in rows:
        t = target_for(r["benchmark"])
        if t is not None and r.get("ratio_value") is not None:
            r["target"] = t
            r["meets_target"] = r["ratio_value"] >= t
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "repetitions": reps,
        "machine": machine(),
        "results": rows,
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "bench.md").write_text(to_markdown(report))
    plots = plot(rows, out)
    print("== all benchmarks (median of", reps, "repetitions; ratio = candidate / baseline, same run)")
    print(format_table(rows))
    missed = [r["benchmark"] for r in rows if r.get("meets_target") is False]
    for name in missed:
        print(f"below target: {name}")
    print(
        f"\nwrote {out / 'bench.json'}, {out / 'bench.md'}" + "".join(f", {p}" for p in plots),
        f"in {report['seconds']} s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
