"""The HTTP side of the listener: persistent connections, pipelining, bodies and bounds (h11 underneath)."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

import orjson
import pytest


def _conn(srv: Any) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)


async def test_keep_alive_serves_many_requests_on_one_connection(server: Any) -> None:
    def run() -> list[int]:
        c = _conn(server)
        statuses = []
        for _ in range(150):
            c.request("GET", "/crypto/batch_trade/BTCUSDT,ETHUSDT", headers={"apiKey": "demo"})
            resp = c.getresponse()
            body = resp.read()
            assert orjson.loads(body)["ret"] == 200
            statuses.append(resp.status)
            assert resp.getheader("Connection") != "close"
        sock = c.sock
        c.close()
        assert sock is not None
        return statuses

    statuses = await asyncio.to_thread(run)
    assert statuses == [200] * 150


async def test_pipelined_requests_are_answered_in_order(server: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    paths = ["/crypto/batch_trade/BTCUSDT", "/healthz", "/crypto/batch_depth/ETHUSDT", "/nope"]
    writer.write(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\napiKey: demo\r\n\r\n".encode() for p in paths))
    await writer.drain()
    answers = []
    for _ in paths:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status = int(head.split(b" ", 2)[1])
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        body = await reader.readexactly(length)
        answers.append((status, body))
    writer.close()
    assert [s for s, _ in answers] == [200, 200, 200, 404]
    assert orjson.loads(answers[0][1])["ret"] == 200
    assert orjson.loads(answers[1][1])["status"] == "ok"
    assert orjson.loads(answers[2][1])["data"][0]["s"] == "ETHUSDT"


async def test_post_v2_batch_kline(server: Any) -> None:
    def run() -> tuple[int, Any]:
        c = _conn(server)
        body = orjson.dumps({"klineType": 1, "klineNum": 10, "codes": "BTCUSDT"})
        c.request(
            "POST",
            "/crypto/v2/batch_kline",
            body=body,
            headers={"apiKey": "demo", "Content-Type": "application/json"},
        )
        resp = c.getresponse()
        return resp.status, orjson.loads(resp.read())

    status, env = await asyncio.to_thread(run)
    assert status == 200 and env["ret"] == 200
    (row,) = env["data"]
    assert row["s"] == "BTCUSDT" and len(row["respList"]) == 10


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("DELETE", "/crypto/batch_trade/BTCUSDT", b"", 405),
        ("GET", "/crypto/v2/batch_kline", b"", 405),
        ("GET", "/ws", b"", 426),
        ("GET", "/nowhere", b"", 404),
        ("POST", "/crypto/v2/batch_kline", b"x" * (70 * 1024), 413),
    ],
)
async def test_methods_paths_and_bounds_get_proper_statuses(
    server: Any, method: str, path: str, body: bytes, status: int
) -> None:
    def run() -> tuple[int, str | None]:
        c = _conn(server)
        c.request(method, path, body=body or None, headers={"apiKey": "demo"})
        resp = c.getresponse()
        resp.read()
        return resp.status, resp.getheader("Allow")

    got, allow = await asyncio.to_thread(run)
    assert got == status
    if status == 405:
        assert allow


async def test_garbage_and_oversized_heads_get_4xx_and_no_crash(server: Any) -> None:
    for payload, status in (
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(payload)
        head = await asyncio.wait_for(reader.read(200), 5)
        writer.close()
        assert int(head.split(b" ", 2)[1]) == status
    # ... and the server still answers
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"200 OK" in await asyncio.wait_for(reader.read(), 5)
    writer.close()
