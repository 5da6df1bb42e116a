"""The live console's server side over real sockets: the token and loopback rule on the page and its
socket, the state it pushes (masked keys, a page of rows, at most a few updates a second), faults and
scenarios driven from it, the timelines it keeps, and the HTML report (`report --html`, `--report x.html`).
The page itself is driven in a real browser in test_browser.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infoway_mock.mockserver.faults import KINDS, Fault
from infoway_mock.mockserver.html_report import render
from infoway_mock.mockserver.timeline import Counters, Series, Timeline
from tests.conftest import wait_until

TOKEN = "console-t0ken"
SECRET = "very-secret-key-1234"  # a key that must never reach the browser unmasked


def http_get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class Console:
    """A console socket, as the page opens it: every message kept, states waited for by predicate."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}
        self.states: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.raw: list[str] = []
        self._ids = iter(range(1, 10_000))

    async def read(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        self.raw.append(raw)
        msg = orjson.loads(raw)
        if msg["type"] == "hello":
            self.hello = msg
        elif msg["type"] == "state":
            self.states.append(msg)
        elif msg["type"] == "reply":
            self.replies[msg["id"]] = msg
        return msg

    async def state(self, pred: Any = lambda s: True, timeout: float = 5.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.read(max(0.01, deadline - loop.time()))
            if msg["type"] == "state" and pred(msg):
                return msg

    async def command(self, **cmd: Any) -> dict[str, Any]:
        rid = next(self._ids)
        await self.ws.send(orjson.dumps({"id": rid, **cmd}).decode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while rid not in self.replies:
            await self.read(max(0.01, deadline - loop.time()))
        return self.replies[rid]


async def open_console(srv: Any, token: str = TOKEN, **kw: Any) -> Console:
    ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}/console/ws?token={token}", **kw)
    console = Console(ws)
    msg = await console.read()
    assert msg["type"] == "hello"
    return console


@pytest.fixture
async def srv(make_server: Any) -> Any:
    server = await make_server(control_token=TOKEN, keys={"demo": "pro", SECRET: "pro"})
    server.console.interval = 0.1  # updates come sooner; the spacing rule is the same
    return server


# -- the token and loopback rule ------------------------------------------------------------------------


async def test_the_page_needs_the_token(srv: Any) -> None:
    base = f"{srv.http_url}/console"
    for url in (base, f"{base}?token=wrong", f"{base}?token="):
        status, _, body = await asyncio.to_thread(http_get, url)
        assert status == 401 and "token" in body, url
    status, headers, body = await asyncio.to_thread(http_get, f"{base}?token={TOKEN}")
    assert status == 200 and "<title>infoway-mock console</title>" in body
    assert headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    assert f"connect-src 'self' ws://127.0.0.1:{srv.port};" in csp
    # The Host header reaches the policy only as a plain host:port, never as more directives.
    _, headers, _ = await asyncio.to_thread(
        http_get, f"{base}?token={TOKEN}", Host="x; script-src https://evil.example"
    )
    assert "evil" not in headers["Content-Security-Policy"]
    # Nothing on the page comes from anywhere but the mock: no CDN, no font, no analytics.
    assert not re.search(r"(src|href)=\"(https?:)?//", body)
    for asset, kind in (("app.js", "javascript"), ("style.css", "css")):
        status, headers, text = await asyncio.to_thread(http_get, f"{base}/{asset}")
        assert status == 200 and kind in headers["Content-Type"] and text
        assert "http://" not in text and "https://" not in text


async def test_the_console_socket_needs_the_token_and_a_local_page(srv: Any) -> None:
    for token in ("wrong", ""):
        with pytest.raises(InvalidStatus) as info:
            await open_console(srv, token)
        assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await open_console(srv, origin="http://evil.example")
    assert info.value.response.status_code == 403
    console = await open_console(srv, origin=f"http://localhost:{srv.port}")
    await console.ws.close()


async def test_the_console_takes_no_connection_id_and_no_slot(srv: Any, connect: Any) -> None:
    """Regression: a console socket drew an id from the connection counter (the first client was #2)."""
    console = await open_console(srv)
    await connect(srv.ws_url())
    state = await console.state(lambda s: s["conns"]["total"] == 1)
    assert [r["id"] for r in state["conns"]["rows"]] == [1]
    assert srv.counters()["sessions"] == 1 and srv.quotas.total_connections() == 1


# -- what it shows ----------------------------------------------------------------------------------------


async def test_the_console_shows_connections_with_masked_keys(srv: Any, connect: Any) -> None:
    console = await open_console(srv)
    assert [k["name"] for k in console.hello["kinds"]] == list(KINDS)  # buttons come from the registry
    assert {s["name"] for s in console.hello["scenarios"]} >= {"silent-stall", "flaky-network"}
    ws = await connect(srv.ws_url(key=SECRET))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT,ETHUSDT"}})
    await ws.send({"code": 10003, "trace": "d", "data": {"codes": "BTCUSDT"}})
    await ws.expect_code(10004)
    await ws.send({"code": 10010, "trace": "h"})
    news = await connect(srv.news_url(key=SECRET))

    state = await console.state(
        lambda s: (
            s["conns"]["total"] == 2 and any(r["out"] > 2 and r["heartbeats"] for r in s["conns"]["rows"])
        )
    )
    row = next(r for r in state["conns"]["rows"] if r["kind"] == "ws")
    assert row["key"] == "ve****************34" and row["business"] == "crypto"
    assert dict(row["subs"]) == {"trade": 2, "depth": 1} and row["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert row["in"] == 3 and row["window"] == 3 and row["window_limit"] == 60
    assert row["hb_timeout"] == 5.0 and 0 <= row["hb_age"] < 5
    assert row["buffer_limit"] == srv.config.max_send_buffer and row["peer"].startswith("127.0.0.1:")
    assert any(r["kind"] == "news" for r in state["conns"]["rows"])
    keys = {k["key"]: k for k in state["keys"]}
    assert keys["ve****************34"]["open"] == 2 and keys["****"]["open"] == 0
    market = await console.state(lambda s: s["market"]["symbols"] and s["market"]["push_rate"] > 0)
    symbols = {s["symbol"]: s for s in market["market"]["symbols"]}
    assert symbols["BTCUSDT"]["trade"] == 1 and symbols["BTCUSDT"]["depth"] == 1
    assert symbols["BTCUSDT"]["price"] is not None
    await console.command(op="chart", symbol="BTCUSDT")
    chart = await console.state(lambda s: s["chart"] and len(s["chart"]["points"]) >= 2)
    assert chart["chart"]["symbol"] == "BTCUSDT" and all(p > 0 for _, p in chart["chart"]["points"])
    report = next(s["report"] for s in console.states if "report" in s)
    assert report["clients"][0]["key"] == "ve****************34"
    assert not any(SECRET in raw for raw in console.raw)  # masked everywhere
    await news.close()


async def test_a_view_is_a_page_of_rows(srv: Any, connect: Any) -> None:
    console = await open_console(srv)
    for _ in range(5):
        await connect(srv.ws_url())
    await connect(srv.ws_url("stock"))
    assert (await console.command(op="view", filter="", offset=2, limit=2))["ok"]
    state = await console.state(lambda s: s["conns"]["total"] == 6 and s["conns"]["offset"] == 2)
    assert [r["id"] for r in state["conns"]["rows"]] == [3, 4] and state["conns"]["matched"] == 6
    await console.command(op="view", filter="stock", offset=0, limit=50)
    state = await console.state(lambda s: s["conns"]["matched"] == 1)
    assert [r["id"] for r in state["conns"]["rows"]] == [6]
    for bad in ({"limit": 0}, {"limit": 10_000}, {"offset": -1}, {"filter": 5}):
        reply = await console.command(op="view", **bad)
        assert not reply["ok"] and reply["error"].startswith("$."), bad
    assert (await console.command(op="nope"))["error"].startswith("unknown op 'nope'")
    await console.ws.send("not json")
    assert not (await console.read())["ok"]


async def test_updates_are_spaced_out_however_much_happens(srv: Any, connect: Any) -> None:
    """Aggregated state at most every `interval`, however many frames flow or commands arrive."""
    srv.console.interval = 0.2
    console = await open_console(srv)
    ws = await connect(srv.ws_url())
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT,ETHUSDT"}})
    for _ in range(6):
        await console.state()
    times = [s["t"] for s in console.states]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.19, gaps
    # A burst of commands wakes it early, but never more often than 10 times a second.
    before = len(console.states)
    for _ in range(20):
        await console.command(op="view", filter="", offset=0, limit=50)
    times = [s["t"] for s in console.states[before:]]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(times)), times


# -- what it does -----------------------------------------------------------------------------------------


async def test_faults_from_the_console_per_connection_key_and_all(srv: Any, connect: Any) -> None:
    console = await open_console(srv)
    a = await connect(srv.ws_url(key=SECRET))
    b = await connect(srv.ws_url())
    state = await console.state(lambda s: s["conns"]["total"] == 2)
    ref = next(k["ref"] for k in state["keys"] if k["key"] == "ve****************34")

    reply = await console.command(op="fault", fault={"kind": "close", "code": 4001}, target={"conn": 2})
    assert reply["ok"] and reply["result"]["connections"] == [2]
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await b.conn.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4001

    reply = await console.command(op="fault", fault={"kind": "stall", "seconds": 30}, target={"key": ref})
    assert reply["ok"] and reply["result"]["connections"] == [1]
    state = await console.state(lambda s: s["faults"]["active"])
    (active,) = state["faults"]["active"]
    assert (
        active["kind"] == "stall"
        and active["target"] == "key ve****************34"
        and 0 < active["left"] <= 30
    )
    assert (
        state["conns"]["rows"][0]["faults"] == [active["id"]] and state["conns"]["rows"][0]["hb_age"] is None
    )
    assert state["faults"]["log"][0]["kind"] == "stall"
    assert (await console.command(op="clear", fault_id=active["id"]))["cleared"] == 1
    await console.state(lambda s: not s["faults"]["active"])

    # Refused with the registry's own messages, JSON path first.
    errors = [
        ({"fault": {"kind": "close", "code": 1005}, "target": {"conn": 1}}, "$.fault.code"),
        ({"fault": {"kind": "stall", "seconds": -1}, "target": {}}, "$.fault.seconds"),
        ({"fault": {"kind": "refuse"}, "target": {"conn": 1}}, "$.fault.conn"),
        ({"fault": {"kind": "reset"}, "target": {"key": "k99"}}, "$.target.key"),
        ({"fault": {"kind": "reset"}, "target": {"conn": 99}}, "$.conn"),
        ({"fault": {"kind": "melt"}, "target": {}}, "$.fault.kind"),
        ({"fault": "reset"}, "$.fault"),
    ]
    for cmd, path in errors:
        reply = await console.command(op="fault", **cmd)
        assert not reply["ok"] and reply["error"].startswith(path), (cmd, reply)

    reply = await console.command(op="fault", fault={"kind": "reset"}, target={})
    assert reply["ok"] and reply["result"]["connections"] == [1]
    with pytest.raises(ConnectionClosed):
        while True:
            await a.conn.recv()
    await console.state(lambda s: s["conns"]["total"] == 0)
    assert not any(SECRET in raw for raw in console.raw)


async def test_scenarios_play_and_stop_from_the_console(srv: Any, connect: Any) -> None:
    console = await open_console(srv)
    await connect(srv.ws_url())
    reply = await console.command(op="play", name="silent-stall", scale=0.5)
    assert reply["ok"] and reply["playing"] == "silent-stall"
    state = await console.state(lambda s: s["scenario"] and s["scenario"]["steps"][0].get("id"))
    sc = state["scenario"]
    assert sc["state"] == "playing" and sc["duration"] == 15.0 and sc["steps"][0]["fault"]["kind"] == "stall"
    assert sc["steps"][0]["connections"] == 1 and state["faults"]["active"]
    again = await console.command(op="play", name="flaky-network")
    assert not again["ok"] and "stop it first" in again["error"]
    reply = await console.command(op="stop")
    assert reply["ok"] and reply["cleared"] == 1  # its ongoing stall ended with it
    state = await console.state(lambda s: s["scenario"]["state"] == "stopped")
    assert not state["faults"]["active"]
    assert srv.counters()["tasks"] == 0
    for cmd, error in (
        ({"name": "../../etc/passwd"}, "$.name: no shipped scenario"),
        ({"name": "silent-stall", "scale": 0}, "$.scale"),
        ({"name": "silent-stall", "scale": True}, "$.scale"),
    ):
        reply = await console.command(op="play", **cmd)
        assert not reply["ok"] and reply["error"].startswith(error), reply
    assert (await console.command(op="stop"))["error"] == "no scenario is playing"


async def test_a_finished_scenario_says_done(srv: Any) -> None:
    console = await open_console(srv)
    await console.command(op="play", name="origin-timeout-524", scale=0.02)  # 30 s -> 0.6 s
    state = await console.state(lambda s: s["scenario"] and s["scenario"]["state"] == "done", timeout=10)
    assert state["scenario"]["elapsed"] == state["scenario"]["duration"]
    await wait_until(lambda: srv.counters()["tasks"] == 0)


async def test_too_many_consoles_are_turned_away(srv: Any) -> None:
    srv.console.max_consoles = 1
    first = await open_console(srv)
    ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}/console/ws?token={TOKEN}")
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1013
    await first.ws.close()


# -- timelines and the HTML report ------------------------------------------------------------------------


def test_a_series_stays_bounded_and_keeps_every_count() -> None:
    s = Series(origin=10.0, max_points=8)
    for t in range(10, 1010):
        s.add(t + 0.5, 2)
    assert len(s.counts) <= 8 and s.total() == 2000 and s.width == 128.0


def test_a_timeline_counts_what_is_new_and_says_what_it_did_not_draw() -> None:
    tl = Timeline(max_points=10, max_heartbeats=3)
    tl.opened(1, "k", "crypto", 0.0)
    tl.sample(1.0, 1, Counters(frames_in=2, frames_out=10, heartbeats=1, last_heartbeat=0.6))
    tl.sample(2.0, 1, Counters(frames_in=3, frames_out=30, heartbeats=4, last_heartbeat=1.9))
    tl.ended(1, 2.5, 1006, Counters(frames_in=3, frames_out=35, heartbeats=4, last_heartbeat=1.9))
    (c,) = tl.all()
    d = c.to_dict()
    assert d["requests"]["counts"] == [0, 2, 1] and d["pushes"]["counts"] == [0, 10, 25]
    assert d["heartbeats"] == [0.6, 1.9, 1.9] and d["heartbeats_not_drawn"] == 1
    assert d["closed"] == 2.5 and d["close_code"] == 1006 and not tl.open
    # Thousands of closed connections are kept: each is compacted on close, every count kept.
    small = Timeline(closed_points=2)
    small.opened(2, "k", "crypto", 0.0)
    for t in range(1, 9):
        small.sample(float(t), 2, Counters(frames_in=t, frames_out=0, heartbeats=0, last_heartbeat=None))
    small.ended(2, 9.0, 1000, Counters(frames_in=9, frames_out=0, heartbeats=0, last_heartbeat=None))
    requests = small.all()[0].to_dict()["requests"]
    assert len(requests["counts"]) <= 2 and sum(requests["counts"]) == 9 and requests["width"] == 8.0


def _report_with(key: str, verdict: str) -> dict[str, Any]:
    conn = {
        "id": 1, "business": "crypto", "opened": 0.5, "closed": 4.0, "close_code": None,
        "frames_received": 3, "requests_by_code": {}, "requests_without_trace": 0, "errors_sent": {"513": 1},
        "heartbeats": 0, "max_heartbeat_gap_s": 3.5, "last_heartbeat": None, "peak_frames_per_window": 3,
        "subscriptions_at_end": 1,
    }  # fmt: skip
    rules = {"heartbeat": {"verdict": verdict, "detail": "longest silence 3.5s <b>"}}
    client = {
        "key": key,
        "rules_applied": {
            "heartbeat_interval_s": 1, "heartbeat_timeout_s": 3, "rate_limit": 10, "rate_window_s": 5,
        },
        "connections": [conn], "streams": [], "rules": rules, "verdict": verdict,
    }  # fmt: skip
    return {"clients": [client], "verdict": verdict}


def test_the_html_report_is_self_contained_and_escaped() -> None:
    tl = Timeline()
    tl.opened(1, "k", "crypto", 0.5)
    tl.ended(1, 4.0, None, Counters(3, 50, 0, None))
    page = render(_report_with("<script>x</script>", "fail"), {1: tl.all()[0].to_dict()}, now=5.0)
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert "<script" not in page and "&lt;script&gt;" in page and "3.5s &lt;b&gt;" in page
    assert not re.search(r"(src|href)=|url\(|@import|https?://", page)  # nothing to fetch
    assert 'data-rule="heartbeat"' in page and "no close frame" in page and "limit 10" in page


async def test_report_html_over_the_control_channel_and_the_cli(
    srv: Any, connect: Any, tmp_path: Path
) -> None:
    ws = await connect(srv.ws_url(key=SECRET))
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    await ws.send({"code": 10010, "trace": "h"})
    await ws.expect_code(10002)
    await srv.faults.apply(Fault("close", code=4002))
    await wait_until(lambda: not srv.conns)
    out = tmp_path / "sub" / "report.html"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infoway_mock.mockserver", "report", "--html", str(out),
        "--port", str(srv.port), "--token", TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr
    assert "wrote" in stdout.decode()
    page = out.read_text()
    assert "ve****************34" in page and SECRET not in page
    assert "4002" in page and 'data-rule="resubscribed"' in page and "<svg" in page


async def test_serve_writes_the_html_report_with_the_json_beside_it(tmp_path: Path) -> None:
    report = tmp_path / "contract.html"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infoway_mock.mockserver", "serve", "--port", "0",
        "--report", str(report), "--control-token", TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode() for _ in range(4)]
    console = next(line for line in lines if line.strip().startswith("console "))
    assert re.search(rf"console http://127\.0\.0\.1:\d+/console\?token={TOKEN}$", console.strip()), lines
    port = int(re.search(r":(\d+)/ws", lines[0]).group(1))  # type: ignore[union-attr]
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=demo") as ws:
        await ws.send(json.dumps({"code": 10010, "trace": "h"}))
        await asyncio.wait_for(ws.recv(), 5)
    proc.terminate()
    await asyncio.wait_for(proc.communicate(), 30)
    assert report.read_text().startswith("<!doctype html>")
    assert json.loads(report.with_suffix(".json").read_text())["verdict"] in ("pass", "warn")
    assert report.with_suffix(".txt").read_text().startswith("infoway-mock contract report")


async def test_frames_out_are_counted_per_connection(srv: Any, connect: Any) -> None:
    ws = await connect(srv.ws_url())
    await ws.send({"code": 10000, "trace": "t", "data": {"codes": "BTCUSDT"}})
    for _ in range(5):
        await ws.expect_code(10002)
    (conn,) = srv.conns.values()
    assert conn.frames_out >= 7  # welcome, ack and five trades at least
