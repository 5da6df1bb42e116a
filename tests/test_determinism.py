"""`infoway-mock serve --seed S --start T`: two runs stream the same frames, byte for byte."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
import websockets

pytestmark = pytest.mark.slow

START = "2026-08-15T09:30:00Z"


async def _serve(*args: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        "serve",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"ws://127\.0\.0\.1:(\d+)/ws", line)
    assert match, line
    return proc, int(match.group(1))


async def _first_frames(port: int, n: int) -> list[bytes]:
    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=demo"
    async with websockets.connect(url, compression=None, max_queue=None) as ws:
        # Every subscription at once: the market waits for the first, plus a short settle time.
        await ws.send('{"code":10000,"trace":"t","data":{"codes":"BTCUSDT,ETHUSDT"}}')
        await ws.send('{"code":10003,"trace":"d","data":{"codes":"BTCUSDT"}}')
        await ws.send('{"code":10006,"trace":"k","data":{"arr":[{"type":1,"codes":"ETHUSDT"}]}}')
        frames: list[bytes] = []
        while len(frames) < n:
            frame = await asyncio.wait_for(ws.recv(decode=False), 10)
            frames.append(frame)
        return frames


async def test_two_runs_with_seed_and_start_give_identical_frames() -> None:
    runs: list[list[bytes]] = []
    for _ in range(2):
        proc, port = await _serve("--seed", "7", "--start", START, "--speed", "60")
        try:
            runs.append(await _first_frames(port, 1000))
        finally:
            proc.terminate()
            await proc.wait()
    a, b = runs
    kinds: dict[int, int] = {}
    for f in a:
        code = int(re.search(rb'"code":(\d+)', f).group(1))  # type: ignore[union-attr]
        kinds[code] = kinds.get(code, 0) + 1
    assert {10002, 10005, 10008} <= set(kinds), kinds  # trades, depth and klines all in the sample
    first_diff = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)
    assert first_diff is None, (first_diff, a[first_diff], b[first_diff])


def test_start_accepts_epoch_ms_and_iso() -> None:
    from infoway_mock.mockserver.cli import parse_start

    assert parse_start("1786775220000") == 1_786_775_220_000
    assert parse_start("2026-08-15T09:30:00Z") == parse_start("2026-08-15T09:30:00+00:00")
    with pytest.raises(Exception, match="ISO 8601"):
        parse_start("yesterday")
