"""`infoway-mock serve --workers 2`: two mock processes behind a real HAProxy, routed by API key."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infoway_mock.mockserver.cluster import haproxy_config, merge_metrics, merge_reports
from infoway_mock.mockserver.control import send_command

pytestmark = pytest.mark.slow
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed (.ci/run installs Debian's haproxy)"
)
TOKEN = "cluster-token-1234"
KEYS = [f"cluster-key-{i:02d}" for i in range(1, 21)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[int]:
    config = {
        "plans": {"small": {"max_connections": 3, "max_products": 100, "max_products_per_connection": 50}},
        "keys": [{"key": k, "plan": "small"} for k in KEYS],
        "server": {"heartbeat_timeout": 30, "depth_interval": 0.05},
    }
    path = tmp_path / "group.json"
    path.write_text(json.dumps(config))
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "infoway_mock.mockserver", "serve", "--workers", "2", "--port", str(port)),
        *("--config", str(path), "--control-token", TOKEN, "--seed", "11", "--speed", "20"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    assert "2 workers behind haproxy" in line, line
    try:
        yield port
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def _url(port: int, key: str) -> str:
    return f"ws://127.0.0.1:{port}/ws?business=crypto&apikey={key}"


async def _worker_of_keys(port: int) -> dict[str, int]:
    """Which worker each key lands on: open one connection per key and ask the group."""
    conns = [await websockets.connect(_url(port, k), open_timeout=10) for k in KEYS]
    try:
        reply = await send_command(f"ws://127.0.0.1:{port}/control", TOKEN, {"op": "connections"})
        assert reply["ok"], reply
        by_mask = {row["key"]: row["worker"] for row in reply["connections"]}
        return {k: by_mask[k[:2] + "*" * (len(k) - 4) + k[-2:]] for k in KEYS}
    finally:
        for c in conns:
            await c.close()


@needs_haproxy
async def test_quotas_stay_exact_per_key_and_the_market_is_the_same_everywhere(group: int) -> None:
    port = group
    where = await _worker_of_keys(port)
    key_a = KEYS[0]
    key_b = next(k for k in KEYS if where[k] != where[key_a])
    # More connections for one key than its plan allows, from several clients at once.

    async def attempt(key: str) -> Any:
        try:
            return await websockets.connect(_url(port, key), open_timeout=10, compression=None)
        except InvalidStatus as e:
            return e.response.status_code

    results = await asyncio.gather(*(attempt(key_a) for _ in range(6)))
    opened = [r for r in results if not isinstance(r, int)]
    assert len(opened) == 3 and sorted(r for r in results if isinstance(r, int)) == [427, 427, 427]
    # The other key, on the other process, is unaffected.
    others = await asyncio.gather(*(attempt(key_b) for _ in range(3)))
    assert all(not isinstance(r, int) for r in others)
    # The same subscription on both processes: identical frames for the same market times.
    frames: list[dict[int, bytes]] = []
    for ws in (opened[0], others[0]):
        await ws.send('{"code":10000,"trace":"t","data":{"codes":"BTCUSDT"}}')
    for ws in (opened[0], others[0]):
        got: dict[int, bytes] = {}
        while len(got) < 40:
            raw = await asyncio.wait_for(ws.recv(decode=False), 10)
            if raw.startswith(b'{"code":10002'):
                got[orjson.loads(raw)["data"]["t"]] = raw
        frames.append(got)
    common = sorted(set(frames[0]) & set(frames[1]))
    assert len(common) >= 20, (len(frames[0]), len(frames[1]), len(common))
    assert all(frames[0][t] == frames[1][t] for t in common)
    # One control endpoint for the group: a fault by key reaches only that key's worker and connections.
    reply = await send_command(
        f"ws://127.0.0.1:{port}/control",
        TOKEN,
        {"op": "fault", "fault": {"kind": "close", "key": key_b, "code": 4004}},
    )
    assert reply["ok"] and len(reply["connections"]) == 3, reply
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await others[1].recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4004
    await opened[1].send('{"code":10010,"trace":"hb","ack":1}')
    while orjson.loads(await asyncio.wait_for(opened[1].recv(), 5)).get("code") != 10011:
        pass
    # One /metrics and one report for the group.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    accepted = int(re.search(r"^infoway_connections_total (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert accepted == len(KEYS) + 3 + 3
    assert re.search(r'^infoway_handshakes_refused_total\{status="427"\} 3$', text, re.M)
    report = await send_command(f"ws://127.0.0.1:{port}/control", TOKEN, {"op": "report"})
    assert report["ok"] and report["report"]["workers"] == 2
    for ws in opened + others:
        await ws.close()


def test_haproxy_config_routes_by_key_consistently() -> None:
    cfg = haproxy_config("127.0.0.1", 8765, [9001, 9002], 9100, 5000)
    assert "url_param(apikey)" in cfg and "req.hdr(apikey)" in cfg
    assert "hash-type consistent" in cfg and "balance hdr(X-Infoway-Route)" in cfg
    assert "server w1 127.0.0.1:9001" in cfg and "server w2 127.0.0.1:9002" in cfg
    assert "use_backend group if { path /control /metrics /healthz }" in cfg


def test_metrics_and_reports_merge() -> None:
    a = '# HELP infoway_x X.\n# TYPE infoway_x counter\ninfoway_x 2\ninfoway_y{code="1"} 1\n'
    b = (
        "# HELP infoway_x X.\n# TYPE infoway_x counter\ninfoway_x 3\n"
        + 'infoway_y{code="1"} 4\ninfoway_y{code="2"} 1\n'
    )
    merged = merge_metrics([a, b])
    assert "infoway_x 5" in merged and 'infoway_y{code="1"} 5' in merged and 'infoway_y{code="2"} 1' in merged
    assert merged.count("# HELP infoway_x") == 1
    r = merge_reports(
        [{"clients": [{"key": "a"}], "verdict": "pass"}, {"clients": [{"key": "b"}], "verdict": "warn"}]
    )
    assert r["verdict"] == "warn" and [c["key"] for c in r["clients"]] == ["a", "b"]


async def test_a_missing_haproxy_is_one_clear_line(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "infoway_mock.mockserver", "serve", "--workers", "2", "--port", "0"),
        env={"PATH": str(tmp_path)},  # no haproxy on this PATH
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "haproxy" in lines[0] and "apt-get install haproxy" in lines[0]
