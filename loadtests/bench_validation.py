"""Per-frame cost of validating server pushes: full path vs fast path vs strict mode's per-code checker.

- full: `validate_server_frame(obj)` - jsonschema, readable report, semantic rules (the baseline);
- fast: `validate_server_frame(obj, fast=True)` - compiled jsonschema-rs, dispatch by code, semantic rules;
- checker: `server_frame_checker(code)(obj)` - what strict mode runs on every push: no dispatch at all.

The frames are the mock's own trade, depth and kline pushes (from `mockserver.market.Market`, as in
bench_server.sample_frames), decoded once up front so only validation is timed. Candidates alternate
within each repetition; medians over >= 5 repetitions, in µs per frame. ratio = full / candidate time,
i.e. the speed-up over the full path.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from statistics import median
from typing import Any

from infoway_mock.schemas import server_frame_checker, validate_server_frame
from loadtests.harness import alternate, fmt, format_table

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
START_MS = 1_786_000_000_000


def sample_frames(n: int = 600, seed: int = 1) -> dict[int, list[dict[str, Any]]]:
    """n decoded frames per push code (10002 trade, 10005 depth, 10008 kline), made by the mock's market."""
    from infoway_mock.mockserver.catalogue import Catalogue
    from infoway_mock.mockserver.market import Market

    market = Market(seed, Catalogue.default().only(SYMBOLS), start_ms=START_MS, trade_rate=200.0)
    out: dict[int, list[dict[str, Any]]] = {10002: [], 10005: [], 10008: []}
    t = START_MS
    while min(len(v) for v in out.values()) < n:
        t += 100
        out[10002] += [{"code": 10002, "data": tr} for tr in market.advance(t)]
        for i, s in enumerate(SYMBOLS):
            out[10005].append({"code": 10005, "data": market.depth(s, t)})
            out[10008].append({"code": 10008, "data": market.kline(s, 1 + (t // 100 + i) % 12, t)})
    return {code: frames[:n] for code, frames in out.items()}


def _timer(frames: list[dict[str, Any]], validate: Callable[[dict[str, Any]], None]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        for f in frames:
            validate(f)
        return (time.perf_counter() - t0) / len(frames) * 1e6

    return run


def _candidates(code: int, frames: list[dict[str, Any]]) -> dict[str, Callable[[], float]]:
    checker = server_frame_checker(code)
    return {
        "full": _timer(frames, validate_server_frame),
        "fast": _timer(frames, lambda f: validate_server_frame(f, fast=True)),
        "checker": _timer(frames, checker),
    }


def _row(benchmark: str, candidate: list[float], baseline: list[float], what: str) -> dict[str, Any]:
    c, b = median(candidate), median(baseline)
    return {
        "benchmark": benchmark,
        "candidate": fmt(c),
        "baseline": fmt(b),
        "ratio": f"{b / c:.1f}x",
        "unit": f"µs/frame, {what} / full path (ratio = speed-up)",
        "candidate_value": c,
        "baseline_value": b,
        "ratio_value": b / c,
        "values": {"candidate": candidate, "baseline": baseline},
    }


def run(repetitions: int = 5, frames_per_code: int = 600) -> list[dict[str, Any]]:
    repetitions = max(5, repetitions)
    names = {10002: "trade push 10002", 10005: "depth push 10005", 10008: "kline push 10008"}
    rows: list[dict[str, Any]] = []
    for code, frames in sample_frames(frames_per_code).items():
        candidates = _candidates(code, frames)
        for run_once in candidates.values():  # warm up: compile validators, fill caches
            run_once()
        res = alternate(candidates, repetitions)
        rows.append(_row(f"{names[code]}: fast path", res["fast"], res["full"], "fast"))
        rows.append(_row(f"{names[code]}: strict checker", res["checker"], res["full"], "checker"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--frames", type=int, default=600, help="frames per push code")
    a = ap.parse_args()
    print(format_table(run(a.repetitions, a.frames)))


if __name__ == "__main__":
    main()
