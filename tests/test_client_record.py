"""`infoway-client stream --record`: the client's own capture, in the proxy's format, replayable."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import websockets

from infoway_mock.client import cli as client_cli
from infoway_mock.client.events import Connected, Disconnected, ServerError, Trade
from infoway_mock.client.record import Recorder
from infoway_mock.mockserver.faults import Fault
from infoway_mock.mockserver.replay import ReplayFeed, load
from infoway_mock.schemas import capture as capture_format
from infoway_mock.schemas.check import check_lines
from tests.conftest import wait_until


def test_client_events_become_capture_events(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rec = Recorder(path, "ws://127.0.0.1:1/ws?business=crypto&apikey=secret-key")
    trade = {"s": "BTCUSDT", "p": "1.5", "v": "2", "vw": "3.0", "t": 1786775227483, "td": 1}
    rec.event(Disconnected("handshake refused: HTTP 503 Service Unavailable", 503, 0.1))
    rec.event(Connected("ws://x", 1))
    rec.event(Trade(trade))
    rec.event(ServerError(513, "Websocket heartbeat timeout", "tr-1"))
    rec.event(Disconnected("closed 1008 Websocket heartbeat timeout", 513, 0.0))
    rec.event(Connected("ws://x", 0))
    rec.event(Disconnected("connection lost without a close frame", None, 0.2))
    rec.event(Connected("ws://x", 0))
    rec.event(Disconnected("dead peer: no frame for 5.0s", None, 0.2))
    rec.event(Connected("ws://x", 0))
    rec.close()
    events = capture_format.read(path).events
    ends = [
        (e["ev"], e.get("status") or e.get("by"), e.get("code") or e.get("how"))
        for e in events
        if e["ev"] != "frame"
    ]
    assert ends == [
        ("open", 503, None),
        ("open", 101, None),
        ("close", "server", 1008),
        ("open", 101, None),
        ("reset", "server", "rst"),
        ("open", 101, None),
        ("reset", "client", "timeout"),
        ("open", 101, None),
        ("close", "client", 1000),
        ("end", None, None),
    ]
    frames = [json.loads(e["text"]) for e in events if e["ev"] == "frame"]
    assert frames == [
        {"code": 10002, "data": trade},
        {"traceId": "tr-1", "code": 513, "msg": "Websocket heartbeat timeout"},
    ]
    assert next(e for e in events if e["ev"] == "close")["error"] == 513
    assert "secret-key" not in path.read_text()


async def test_stream_record_writes_a_capture_that_replays(make_server: Any, tmp_path: Path) -> None:
    srv = await make_server()
    path = tmp_path / "client.jsonl"
    argv = ["stream", "--url", srv.ws_url(), "--trade", "BTCUSDT", "--limit", "30", "--backoff-cap", "0.2"]
    args = client_cli.build_parser().parse_args([*argv, "--record", str(path)])
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        task = asyncio.create_task(client_cli._stream(args))
        await wait_until(lambda: out.getvalue().count("\n") >= 10)
        srv.faults.apply_now(Fault("error", code=513, then_close=True))
        assert await asyncio.wait_for(task, 15) == 0
    lines = path.read_text().splitlines()
    assert check_lines(lines).ok
    events = capture_format.read(path).events
    close = next(e for e in events if e["ev"] == "close")
    assert close == {**close, "by": "server", "code": 1008, "error": 513}
    assert [e["conn"] for e in events if e["ev"] == "open"] == [1, 2]

    replaying = await make_server()
    replaying.use_feed(ReplayFeed(load(path)))
    ws = await websockets.connect(replaying.ws_url(), compression=None)
    await ws.recv()
    await ws.send(json.dumps({"code": 10000, "trace": "r", "data": {"codes": "BTCUSDT"}}))
    recorded = [json.loads(e["text"]) for e in events if e["ev"] == "frame" and e["conn"] == 1]
    got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(len(recorded) + 1)]
    assert got[1:] == recorded  # after the ack: the pushes, then the 513
    await ws.close()
