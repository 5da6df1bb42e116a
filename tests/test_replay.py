"""Replay: a capture cut into episodes (pure), then served over real sockets, paced, at max speed, looped;
the scenario of a capture; the firehose; the pytest plugin's `infoway_server.replay`."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
import yaml
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infoway_mock.mockserver import cli, replay
from infoway_mock.mockserver import scenario as scenario_mod
from infoway_mock.mockserver.firehose import render
from infoway_mock.mockserver.replay import CLOSE, PUSH, RAW, REFUSE, RESET, ReplayFeed
from infoway_mock.schemas import capture as capture_format
from infoway_mock.schemas import load
from tests.conftest import fast_config, wait_until

TRADE = load("server/trade-push.json")["examples"][0]["data"]
DEPTH = load("server/depth-push.json")["examples"][0]["data"]
SUB = {"code": 10000, "trace": "s1", "data": {"codes": "BTCUSDT"}}


def trade(t_ms: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"code": 10002, "data": {**TRADE, "s": symbol, "t": t_ms}}


class Recorder:
    """Writes a capture with explicit times, as a proxy would have recorded it."""

    def __init__(self, path: Path) -> None:
        self.w = capture_format.CaptureWriter(path, source="proxy", tool="test", upstream="ws://up")
        self.path = path

    def open(self, t: float, conn: int, status: int = 101, business: str = "crypto") -> None:
        self.w.event(
            "open", t, conn=conn, path="/ws", query={"business": business, "apikey": "****"}, status=status
        )

    def recv(self, t: float, conn: int, obj: Any) -> None:
        self.w.message(conn, "recv", obj if isinstance(obj, str) else json.dumps(obj), t)

    def send(self, t: float, conn: int, obj: Any) -> None:
        self.w.message(conn, "send", json.dumps(obj), t)

    def end(self, t: float, conn: int, ev: str, by: str = "server", **kw: Any) -> None:
        self.w.event(ev, t, conn=conn, by=by, **kw)

    def close(self) -> Path:
        self.w.close()
        return self.path


def incident(path: Path) -> Path:
    """Three connections: the first reset at 0.5 s after its subscribe, then two refused handshakes for
    0.3 s, the second ends with 513 + close, the third is closed by the client."""
    r = Recorder(path)
    r.open(0.0, 1)
    r.recv(0.001, 1, {"code": 200, "msg": "ws connect success"})
    r.send(0.010, 1, SUB)
    r.recv(0.011, 1, {"code": 10001, "trace": "s1", "msg": "ok"})
    for i in range(5):
        r.recv(0.110 + i * 0.1, 1, trade(1_000 + i))
    r.end(0.510, 1, "reset", how="rst")
    r.open(0.6, 2, status=503)
    r.open(0.7, 3, status=503)
    r.open(0.81, 4)
    r.recv(0.811, 4, {"code": 200, "msg": "ws connect success"})
    r.send(0.82, 4, {**SUB, "trace": "s2"})
    r.send(0.83, 4, {"code": 10000, "trace": "bad", "data": {}})
    r.recv(0.831, 4, {"traceId": "bad", "code": 507, "msg": "Param lost：codes"})  # a reply: not replayed
    for i in range(3):
        r.recv(0.92 + i * 0.1, 4, trade(2_000 + i))
    r.recv(1.2, 4, {"traceId": "srv-1", "code": 513, "msg": "Websocket heartbeat timeout"})
    r.end(1.2, 4, "close", code=1008, reason="Websocket heartbeat timeout", error=513)
    r.open(1.5, 5)
    r.send(1.51, 5, {**SUB, "trace": "s3"})
    r.recv(1.6, 5, trade(3_000))
    r.recv(1.6, 5, {"code": 10002, "data": {**TRADE, "p": 63039}})  # breaks the contract (p a number)
    r.end(1.9, 5, "close", by="client", code=1000, reason="")
    return r.close()


# -- the timeline (pure) ------------------------------------------------------------------------------


def test_a_capture_is_cut_into_episodes_anchored_at_their_first_subscribe(tmp_path: Path) -> None:
    tl = replay.load(incident(tmp_path / "c.jsonl"))
    eps = tl.episodes[("/ws", "crypto")]
    assert [e.conn for e in eps] == [1, 4, 5]
    first, second, third = eps
    assert first.on_subscribe and first.anchor == pytest.approx(0.010)
    assert [i.kind for i in first.items] == [PUSH] * 5 + [RESET, REFUSE]
    assert first.items[0].at == pytest.approx(0.1) and first.items[5].at == pytest.approx(0.5)
    refuse = first.items[6]
    assert refuse.code == 503 and refuse.seconds == pytest.approx(0.3)  # from the reset to the next open
    # Replies (welcome, acks, the 507 answering "bad") are the session's; the server's own 513 is not.
    assert [i.kind for i in second.items] == [PUSH, PUSH, PUSH, RAW, CLOSE]
    assert second.items[-1].code == 1008 and second.ended_by == "server"
    assert third.ended_by == "client" and all(i.kind == PUSH for i in third.items)  # no replayed close
    assert len(tl.violations) == 1 and "$.data.p" in tl.violations[0]
    assert tl.covered("/ws", "crypto") == {("trade", "BTCUSDT")}


def test_the_scenario_of_a_capture_is_its_disconnects(tmp_path: Path) -> None:
    path = incident(tmp_path / "incident.jsonl")
    assert cli.main(["scenario", "from-capture", str(path)]) == 0
    out = path.with_suffix(".scenario.yaml")
    doc = yaml.safe_load(out.read_text())
    assert [(s["at"], s["fault"]["kind"]) for s in doc["timeline"]] == [
        (0.51, "reset"),
        (0.51, "refuse"),
        (1.2, "error"),
    ]
    assert doc["timeline"][2]["fault"] == {
        "kind": "error",
        "code": 513,
        "msg": "Websocket heartbeat timeout",
        "then_close": True,
    }
    sc = scenario_mod.load(out)  # the schema and the fault registry accept it
    assert sc.name == "incident" and sc.duration == pytest.approx(1.9)
    quiet = Recorder(tmp_path / "quiet.jsonl")
    quiet.open(0, 1)
    quiet.end(1, 1, "close", by="client", code=1000, reason="")
    assert cli.main(["scenario", "from-capture", str(quiet.close())]) == 1  # nothing to write: said so


# -- serving a capture ----------------------------------------------------------------------------------


async def serve_capture(make_server: Any, path: Path, **feed: Any) -> Any:
    srv = await make_server()
    srv.use_feed(ReplayFeed(replay.load(path), **feed))
    return srv


async def play(url: str, sub: dict[str, Any] = SUB, idle: float = 1.5) -> tuple[list[tuple[float, Any]], Any]:
    """Connect, subscribe, and collect (seconds after the subscribe, frame) until the end or `idle` s of
    silence; returns the frames and how it ended."""
    ws = await websockets.connect(url, compression=None, close_timeout=1)
    await ws.recv()  # the session's own welcome
    await ws.send(json.dumps(sub))
    t0 = time.monotonic()
    got: list[tuple[float, Any]] = []
    try:
        while True:
            raw = await asyncio.wait_for(ws.recv(), idle)
            got.append((time.monotonic() - t0, json.loads(raw)))
    except ConnectionClosed as e:
        return got, ("close", e.rcvd.code, time.monotonic() - t0) if e.rcvd else (
            "reset",
            None,
            time.monotonic() - t0,
        )
    except TimeoutError:
        await ws.close()
        return got, ("silent", None, None)


def pushes(got: list[tuple[float, Any]]) -> list[Any]:
    return [f for _, f in got if f.get("code") == 10002]


async def test_each_connection_replays_its_episode_with_its_ending(make_server: Any, tmp_path: Path) -> None:
    srv = await serve_capture(make_server, incident(tmp_path / "c.jsonl"))
    url = srv.ws_url()
    got, end = await play(url)
    assert pushes(got) == [trade(1_000 + i) for i in range(5)]
    assert end[0] == "reset" and end[2] == pytest.approx(0.5, abs=0.1)
    with pytest.raises(InvalidStatus) as refused:  # the recorded outage: 503 for 0.3 s after the reset
        await websockets.connect(url)
    assert refused.value.response.status_code == 503
    await asyncio.sleep(0.35)  # the replayed outage itself (0.3 s), not a wait for an event
    got, end = await play(url)
    assert pushes(got) == [trade(2_000 + i) for i in range(3)]
    assert got[-1][1]["code"] == 513 and got[-1][1]["traceId"] == "srv-1"
    assert end[:2] == ("close", 1008)
    got, end = await play(url, idle=0.6)
    assert len(pushes(got)) == 2 and end[0] == "silent"  # the client's own close is not replayed
    got, end = await play(url, idle=0.3)
    assert got == [] or all(f.get("code") != 10002 for _, f in got)  # beyond the capture: silence
    report = srv.report()
    assert report["replay"]["unmatched"] == [{"conn": 4, "business": "crypto", "recorded": 3}]
    assert any("no counterpart" in n for n in report["notes"])
    assert any("break the contract" in n for n in report["notes"])


async def test_replay_is_deterministic_within_the_timer_resolution(make_server: Any, tmp_path: Path) -> None:
    r = Recorder(tmp_path / "c.jsonl")
    r.open(0, 1)
    r.send(0.01, 1, SUB)
    for i in range(40):
        r.recv(0.02 + i * 0.0123, 1, trade(i))
    r.end(0.6, 1, "close", code=4001, reason="recorded")
    path = r.close()
    runs = []
    for _ in range(2):
        srv = await serve_capture(make_server, path)
        runs.append(await play(srv.ws_url()))
    (a, end_a), (b, end_b) = runs
    a, b = a[1:], b[1:]  # after the session's ack
    assert [f for _, f in a] == [f for _, f in b] == [trade(i) for i in range(40)]
    assert end_a[:2] == end_b[:2] == ("close", 4001)
    recorded = [0.01 + i * 0.0123 for i in range(40)]
    errors = [abs(t - want) for (t, _), want in zip(a + b, recorded + recorded, strict=True)]
    print(f"offset error: median {statistics.median(errors) * 1000:.2f} ms, max {max(errors) * 1000:.2f} ms")
    # Measured on this shared 2-core machine: median 0.7-0.8 ms, max 6-18 ms (the loop's 1 ms timers, the
    # trip through both stacks, other processes); the bounds let no pacing bug through.
    assert statistics.median(errors) < 0.01 and max(errors) < 0.05, errors
    assert abs(end_a[2] - 0.59) < 0.05 and abs(end_b[2] - 0.59) < 0.05


async def test_what_the_capture_lacks_is_acked_silent_and_reported(make_server: Any, tmp_path: Path) -> None:
    srv = await serve_capture(make_server, incident(tmp_path / "c.jsonl"))
    got, _ = await play(
        srv.ws_url(), {"code": 10000, "trace": "x", "data": {"codes": "XRPUSDT,NOSUCH"}}, idle=0.8
    )
    assert [f["code"] for _, f in got] == [10001]  # the ack; then no push (the reset was BTCUSDT's)
    missing = srv.report()["replay"]["missing"]
    assert {m["symbol"] for m in missing} == {"XRPUSDT", "NOSUCH"}
    assert "XRPUSDT, which the capture lacks" in "\n".join(srv.report()["notes"])


async def test_rest_answers_from_the_replayed_state(make_server: Any, tmp_path: Path) -> None:
    r = Recorder(tmp_path / "c.jsonl")
    r.open(0, 1)
    r.send(0.01, 1, SUB)
    r.recv(0.02, 1, trade(111))
    r.recv(0.03, 1, {"code": 10005, "data": {**DEPTH, "s": "BTCUSDT"}})
    r.recv(0.3, 1, trade(222))
    srv = await serve_capture(make_server, r.close())
    task = asyncio.create_task(play(srv.ws_url(), idle=0.5))

    def rest(path: str) -> Any:
        req = urllib.request.Request(srv.http_url + path, headers={"apiKey": "demo"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())["data"]

    # The replay has reached the first trade and the book recorded 10 ms after it.
    market = srv.feed.market
    await wait_until(lambda: market.last_trade("BTCUSDT") is not None and market.is_open("BTCUSDT", 0))
    assert (await asyncio.to_thread(rest, "/crypto/batch_trade/BTCUSDT"))[0]["t"] == 111
    assert (await asyncio.to_thread(rest, "/crypto/batch_depth/BTCUSDT"))[0]["a"] == DEPTH["a"]
    await task
    assert (await asyncio.to_thread(rest, "/crypto/batch_trade/BTCUSDT"))[0]["t"] == 222


async def test_speed_max_sends_everything_in_order_then_the_end(make_server: Any, tmp_path: Path) -> None:
    r = Recorder(tmp_path / "c.jsonl")
    r.open(0, 1)
    r.send(0.01, 1, SUB)
    for i in range(3000):
        r.recv(0.02 + i, 1, trade(i))  # 50 minutes recorded
    r.end(3001, 1, "close", code=4003, reason="end")
    srv = await serve_capture(make_server, r.close(), speed=float("inf"))
    started = time.monotonic()
    got, end = await play(srv.ws_url())
    assert pushes(got) == [trade(i) for i in range(3000)] and end[:2] == ("close", 4003)
    assert time.monotonic() - started < 10  # not paced
    assert srv.metrics.frames_sent[10002] == 3000


async def test_loop_plays_the_episode_again(make_server: Any, tmp_path: Path) -> None:
    r = Recorder(tmp_path / "c.jsonl")
    r.open(0, 1)
    r.send(0.01, 1, SUB)
    r.recv(0.02, 1, trade(1))
    r.recv(0.05, 1, trade(2))
    r.w.event("end", 0.11)  # the capture ends 0.1 s after the subscribe: one pass
    srv = await serve_capture(make_server, r.close(), loop=True)
    ws = await websockets.connect(srv.ws_url(), compression=None)
    await ws.recv()
    await ws.send(json.dumps(SUB))
    got = [json.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(7)]
    await ws.close()
    assert [f["data"]["t"] for f in got[1:]] == [1, 2, 1, 2, 1, 2]


async def test_the_firehose_is_the_seeded_market_rendered_once(make_server: Any) -> None:
    cfg = fast_config(symbols=["BTCUSDT", "ETHUSDT"], trade_rate=200.0)
    timeline = render(cfg, 2.0)
    assert timeline.violations == []  # every frame checked once, at render
    want = [
        i.wire
        for i in timeline.episodes[("/ws", "*")][0].items
        if i.channel == "trade" and i.key == "BTCUSDT"
    ]
    srv = await make_server(symbols=["BTCUSDT", "ETHUSDT"])
    srv.use_feed(ReplayFeed(timeline, speed=float("inf")))
    ws = await websockets.connect(srv.ws_url(), compression=None, max_size=None)
    await ws.recv()
    await ws.send(json.dumps(SUB))
    assert json.loads(await ws.recv())["code"] == 10001
    got = [await asyncio.wait_for(ws.recv(), 5) for _ in want]
    await ws.close()
    assert [g.encode() for g in got] == [w[2:] if w[1] < 126 else w[4:] for w in want]
    assert len(want) > 300


def test_the_plugin_replays_a_capture(infoway_server: Any, tmp_path: Path) -> None:
    from websockets.sync.client import connect

    infoway_server.replay(incident(tmp_path / "c.jsonl"))
    with connect(infoway_server.url()) as ws:
        ws.recv()
        ws.send(json.dumps(SUB))
        frames = [json.loads(ws.recv(timeout=5)) for _ in range(6)]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)  # the recorded reset
    assert [f["code"] for f in frames] == [10001] + [10002] * 5


def test_serve_replay_from_the_command_line(tmp_path: Path) -> None:
    path = incident(tmp_path / "c.jsonl")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infoway_mock.mockserver", "serve", "--port", "0", "--replay", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().split()[-1]  # type: ignore[union-attr]
        assert "replaying" in proc.stdout.readline()  # type: ignore[union-attr]
        got, end = asyncio.run(play(url))
        assert len(pushes(got)) == 5 and end[0] == "reset"
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "infoway_mock.mockserver", "serve", "--speed", "max"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--replay or --firehose" in bad.stderr


def _tiny_loop_capture(path: Path) -> Path:
    r = Recorder(path)
    r.open(0, 1)
    r.send(0.01, 1, SUB)
    r.recv(0.02, 1, trade(1))
    r.recv(0.05, 1, trade(2))
    r.w.event("end", 0.11)
    return r.close()


async def test_speed_max_loop_of_a_small_pass_neither_recurses_nor_starves(
    make_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A looped max-speed pass that the socket takes at once used to start the next pass from inside the
    last one: after ~500 passes a RecursionError in the event loop, and the stream stopped. Each pass now
    starts from the loop, so the stream goes on and other work gets its turn between passes."""
    srv = await serve_capture(
        make_server, _tiny_loop_capture(tmp_path / "c.jsonl"), speed=float("inf"), loop=True
    )
    # close_timeout: a client that stops reading a stream that never ends does not see the close reply
    ws = await websockets.connect(srv.ws_url(), compression=None, max_size=None, close_timeout=0.2)
    await ws.recv()
    await ws.send(json.dumps(SUB))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == 10001
    ts = [json.loads(await asyncio.wait_for(ws.recv(), 5))["data"]["t"] for _ in range(4000)]
    assert ts == [1, 2] * 2000
    # While it streams, the same loop still serves a request on another connection.
    other = await websockets.connect(srv.ws_url(), compression=None)
    assert json.loads(await asyncio.wait_for(other.recv(), 5))["code"] == 200
    await other.close()
    await ws.close()
    await wait_until(lambda: not srv.feed._plays, timeout=5)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.records


async def test_speed_max_loop_with_nothing_for_the_subscription_waits_instead_of_spinning(
    make_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A looped pass with no frames for what the client holds (the capture lacks it) used to recurse at
    once; it now idles until the client subscribes to something the capture has."""
    srv = await serve_capture(
        make_server, _tiny_loop_capture(tmp_path / "c.jsonl"), speed=float("inf"), loop=True
    )
    # close_timeout: a client that stops reading a stream that never ends does not see the close reply
    ws = await websockets.connect(srv.ws_url(), compression=None, max_size=None, close_timeout=0.2)
    await ws.recv()
    await ws.send(json.dumps({"code": 10000, "trace": "e", "data": {"codes": "ETHUSDT"}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == 10001
    ((play),) = srv.feed._plays.values()
    await wait_until(lambda: play.plan == [], timeout=5)  # the first pass ran: nothing in it for ETHUSDT
    assert srv.metrics.frames_sent[10002] == 0
    await ws.send(json.dumps(SUB))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == 10001
    ts = [json.loads(await asyncio.wait_for(ws.recv(), 5))["data"]["t"] for _ in range(10)]
    assert ts == [1, 2] * 5
    await ws.close()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.records
