"""The recording proxy, over real sockets: a mock upstream, the proxy, a client."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infoway_mock.mockserver.control import send_command
from infoway_mock.mockserver.faults import Fault
from infoway_mock.mockserver.proxy import Proxy, ProxyConfig
from infoway_mock.schemas.capture import read
from infoway_mock.schemas.check import check_lines
from tests.conftest import wait_until

KEY = "secret-key-123"


@pytest.fixture
async def make_proxy(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    proxies: list[Proxy] = []

    async def factory(upstream: str, **kw: Any) -> Proxy:
        kw.setdefault("record", str(tmp_path / f"capture{len(proxies)}.jsonl"))
        proxy = Proxy(ProxyConfig(upstream=upstream, port=0, **kw))
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield factory
    for p in proxies:
        await p.stop()


async def _setup(make_server: Any, make_proxy: Any, **server_kw: Any) -> tuple[Any, Proxy]:
    srv = await make_server(keys={KEY: "pro"}, **server_kw)
    return srv, await make_proxy(f"ws://127.0.0.1:{srv.port}")


def _events(proxy: Proxy, ev: str | None = None) -> list[dict[str, Any]]:
    assert proxy.recorder is not None
    proxy.recorder.flush()
    cap = read(proxy.recorder.path, validate=True)
    return [e for e in cap.events if ev is None or e["ev"] == ev]


async def _stop(proxy: Proxy) -> list[dict[str, Any]]:
    await proxy.stop()
    assert proxy.recorder is not None
    return read(proxy.recorder.path).events


async def test_frames_pass_both_ways_unchanged_and_are_recorded(make_server: Any, make_proxy: Any) -> None:
    srv, proxy = await _setup(make_server, make_proxy)
    ws = await websockets.connect(proxy.ws_url(key=KEY), compression=None)
    got = [await ws.recv()]
    request = '{"code": 10000,  "trace": "t-1", "data": {"codes": "BTCUSDT,ETHUSDT"}}'  # spacing kept
    await ws.send(request)
    got += [await ws.recv() for _ in range(30)]
    await ws.close(4000, "bye")
    await wait_until(lambda: not srv.conns and not proxy.conns)
    events = await _stop(proxy)
    opened = next(e for e in events if e["ev"] == "open")
    assert opened["status"] == 101 and opened["query"] == {"business": "crypto", "apikey": "se**********23"}
    recv = [e["text"] for e in events if e["ev"] == "frame" and e["dir"] == "recv"]
    assert recv[: len(got)] == got  # what the client got is what was recorded, byte for byte
    sent = [e["text"] for e in events if e["ev"] == "frame" and e["dir"] == "send"]
    assert sent == [request]
    close = next(e for e in events if e["ev"] == "close")
    assert close == {**close, "by": "client", "code": 4000, "reason": "bye"}
    assert srv.records[-1].close_code == 4000  # the server saw the client's own close
    assert check_lines(Path(proxy.recorder.path).read_text().splitlines()).ok  # type: ignore[union-attr]
    assert KEY not in Path(proxy.recorder.path).read_text()  # type: ignore[union-attr]


def _get(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def test_rest_through_the_same_port_is_forwarded_and_recorded(
    make_server: Any, make_proxy: Any
) -> None:
    _, proxy = await _setup(make_server, make_proxy)
    base = proxy.http_url
    status, _, body = await asyncio.to_thread(_get, f"{base}/crypto/batch_kline/1/3/BTCUSDT?apikey={KEY}")
    assert status == 200 and json.loads(body)["ret"] == 200
    status, _, body = await asyncio.to_thread(_get, f"{base}/crypto/batch_trade/BTCUSDT")
    assert status == 401 and json.loads(body)["code"] == 401
    post = json.dumps({"klineType": 1, "klineNum": 2, "codes": "BTCUSDT"}).encode()
    status, _, body = await asyncio.to_thread(
        _get, f"{base}/crypto/v2/batch_kline", {"apiKey": KEY, "Content-Type": "application/json"}, post
    )
    assert status == 200 and json.loads(body)["data"][0]["s"] == "BTCUSDT"
    events = _events(proxy, "http")
    assert [(e["method"], e["status"]) for e in events] == [("GET", 200), ("GET", 401), ("POST", 200)]
    assert events[0]["target"] == "/crypto/batch_kline/1/3/BTCUSDT?apikey=se**********23"
    assert json.loads(events[2]["request_body"]) == json.loads(post)
    assert KEY not in Path(proxy.recorder.path).read_text()  # type: ignore[union-attr]


async def test_rest_reuses_one_kept_alive_upstream_connection(make_server: Any, make_proxy: Any) -> None:
    """Ten REST calls through the proxy take one upstream connection, not ten (against the live service
    each new one is a TCP and TLS handshake); an idle connection the upstream has closed meanwhile is
    replaced without the client seeing an error."""
    srv, proxy = await _setup(make_server, make_proxy, http_idle_timeout=0.3)
    upstream_conns: list[Any] = []
    real = srv.http_request

    hang_up = {"next": False}

    def counting(conn: Any, req: Any) -> Any:
        if conn not in upstream_conns:
            upstream_conns.append(conn)
        if hang_up["next"]:  # the upstream closes a kept-alive connection just as a request arrives
            hang_up["next"] = False
            conn.abort()
        return real(conn, req)

    srv.http_request = counting
    for _ in range(10):
        status, _, body = await asyncio.to_thread(
            _get, f"{proxy.http_url}/crypto/batch_trade/BTCUSDT?apikey={KEY}"
        )
        assert status == 200 and json.loads(body)["ret"] == 200
    assert len(upstream_conns) == 1
    (first,) = upstream_conns
    await wait_until(
        lambda: first.transport is None or first.transport.is_closing()
    )  # the upstream's idle close
    status, _, _ = await asyncio.to_thread(_get, f"{proxy.http_url}/crypto/batch_trade/BTCUSDT?apikey={KEY}")
    assert status == 200 and len(upstream_conns) == 2
    hang_up["next"] = True
    status, _, _ = await asyncio.to_thread(_get, f"{proxy.http_url}/crypto/batch_trade/BTCUSDT?apikey={KEY}")
    assert status == 200 and len(upstream_conns) == 3  # sent again on a fresh connection, not a 502


async def test_pipelined_requests_are_answered_in_order(make_server: Any, make_proxy: Any) -> None:
    _, proxy = await _setup(make_server, make_proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    paths = ["/healthz", "/crypto/batch_trade/ETHUSDT", "/nowhere"]
    writer.write(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\napiKey: {KEY}\r\n\r\n".encode() for p in paths))
    statuses = []
    for _ in paths:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        statuses.append(int(head.split()[1]))
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        await reader.readexactly(length)
    writer.close()
    assert statuses == [200, 200, 404]


async def test_a_refused_handshake_is_relayed_and_recorded(make_server: Any, make_proxy: Any) -> None:
    _, proxy = await _setup(make_server, make_proxy)
    with pytest.raises(InvalidStatus) as e:
        await websockets.connect(proxy.ws_url(key="wrong-key-000"))
    assert e.value.response.status_code == 401
    assert e.value.response.headers["WWW-Authenticate"] == 'apikey realm="key"'
    opened = _events(proxy, "open")[0]
    assert opened["status"] == 401 and "invalid API key" in opened["body"]


async def test_an_unreachable_upstream_is_a_502(make_proxy: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proxy = await make_proxy(f"ws://127.0.0.1:{port}")
    with pytest.raises(InvalidStatus) as e:
        await websockets.connect(proxy.ws_url())
    assert e.value.response.status_code == 502
    assert _events(proxy, "open")[0]["status"] == 502
    status, _, _ = await asyncio.to_thread(_get, f"{proxy.http_url}/crypto/batch_trade/BTCUSDT")
    assert status == 502


async def _subscribed(proxy: Proxy) -> websockets.ClientConnection:
    ws = await websockets.connect(proxy.ws_url(key=KEY), compression=None, close_timeout=1)
    await ws.recv()
    await ws.send(json.dumps({"code": 10000, "trace": "s", "data": {"codes": "BTCUSDT"}}))
    await ws.recv()
    await ws.recv()  # a push: the stream is flowing
    return ws


async def _drain(ws: websockets.ClientConnection) -> tuple[list[str], ConnectionClosed]:
    frames = []
    try:
        while True:
            frames.append(await asyncio.wait_for(ws.recv(), 5))
    except ConnectionClosed as e:
        return frames, e


async def test_server_disconnects_reach_the_client_as_they_happened(
    make_server: Any, make_proxy: Any
) -> None:
    srv, proxy = await _setup(make_server, make_proxy)
    ws = await _subscribed(proxy)
    srv.faults.apply_now(Fault("error", code=513, then_close=True))
    frames, closed = await _drain(ws)
    assert json.loads(frames[-1])["code"] == 513
    assert closed.rcvd is not None and closed.rcvd.code == 1008 and "heartbeat" in closed.rcvd.reason
    ws = await _subscribed(proxy)
    srv.faults.apply_now(Fault("reset"))
    _, closed = await _drain(ws)
    assert closed.rcvd is None  # no close frame: a reset, as the server did it
    await wait_until(lambda: not proxy.conns)
    ends = [e for e in _events(proxy) if e["ev"] in ("close", "reset")]
    assert ends[0] == {**ends[0], "conn": 1, "by": "server", "code": 1008, "error": 513}
    assert ends[1] == {**ends[1], "conn": 2, "by": "server", "how": "rst"}


async def _fault_cli(proxy: Proxy, *argv: str) -> dict[str, Any]:
    """`infoway-mock fault ... --port PROXYPORT`, the real command in a child process, as a user runs it
    (its asyncio.run cannot run inside this test's running event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        "fault",
        *argv,
        "--port",
        str(proxy.port),
        f"--token={proxy.control_token}",  # a random token may start with a dash
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    return json.loads(out)


async def test_faults_act_on_proxied_connections_through_the_proxys_control(
    make_server: Any, make_proxy: Any
) -> None:
    srv, proxy = await _setup(make_server, make_proxy)
    control = f"ws://127.0.0.1:{proxy.port}/control"
    ws = await _subscribed(proxy)
    reply = await _fault_cli(proxy, "close", "--code", "4001", "--reason", "chaos")
    assert reply["connections"] == [1]
    _, closed = await _drain(ws)
    assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (4001, "chaos")
    await wait_until(lambda: not srv.conns)  # the server side followed

    ws = await _subscribed(proxy)
    stall = {"op": "fault", "fault": {"kind": "stall", "seconds": 30}}
    assert (await send_command(control, proxy.control_token, stall))["ok"]
    await wait_until(lambda: proxy.dropped["stall"] > 0)  # pushes go on upstream, none reach the client
    assert (await send_command(control, proxy.control_token, {"op": "clear"}))["cleared"] == 1
    await ws.recv()
    await ws.close()

    before = srv.metrics.connections_total
    refuse = {"op": "fault", "fault": {"kind": "refuse", "code": 503, "seconds": 30}}
    assert (await send_command(control, proxy.control_token, refuse))["ok"]
    with pytest.raises(InvalidStatus) as e:
        await websockets.connect(proxy.ws_url(key=KEY))
    assert e.value.response.status_code == 503
    assert srv.metrics.connections_total == before  # refused by the proxy: the server never saw it
    report = await send_command(control, proxy.control_token, {"op": "report"})
    assert report["report"]["verdict"] == "n/a"  # the proxy judges no client; the server does
    kinds = [e["fault"]["kind"] for e in _events(proxy, "fault")]
    assert kinds == ["close", "stall", "refuse"]
    close = next(e for e in _events(proxy, "close"))
    assert close == {**close, "by": "proxy", "code": 4001, "reason": "chaos"}


async def test_fragmented_messages_are_joined_and_pings_stay_on_their_side(make_proxy: Any) -> None:
    async def handler(ws: Any) -> None:
        await ws.ping(b"upstream")
        await ws.send(["hel", "lo"])  # a fragmented text message
        await ws.send(b"\x00\x01")
        await ws.close(4002, "done")

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        proxy = await make_proxy(f"ws://127.0.0.1:{port}")
        ws = await websockets.connect(proxy.ws_url(), compression=None)
        frames, closed = await _drain(ws)
    assert frames == ["hello", b"\x00\x01"]
    assert closed.rcvd is not None and closed.rcvd.code == 4002
    recv = [e for e in _events(proxy, "frame")]
    assert [e.get("text", e.get("binary")) for e in recv] == ["hello", "AAE="]


async def test_a_client_that_stops_reading_slows_the_server_side(make_proxy: Any) -> None:
    """Back-pressure is passed on: the proxy's buffer to a stuck client stays bounded, the server is
    no longer read (its own sends block), and everything flows again once the client reads."""
    sent = 0

    async def flood(ws: Any) -> None:
        nonlocal sent
        frame = "x" * 16384
        while True:
            await ws.send(frame)  # websockets waits while the proxy does not read
            sent += 1

    async with serve(flood, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        proxy = await make_proxy(f"ws://127.0.0.1:{port}", max_send_buffer=256 * 1024, record=None)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # no autotuning: fills at once
        sock.connect(("127.0.0.1", proxy.port))
        ws = await websockets.connect(proxy.ws_url(), sock=sock, compression=None, max_queue=1)
        await wait_until(lambda: bool(proxy.conns))
        conn = next(iter(proxy.conns.values()))
        await wait_until(lambda: not conn.session.reading, timeout=10)
        stuck = -1
        async with asyncio.timeout(10):
            while sent != stuck:  # polled until the server's sends block (kernel buffers full)
                stuck = sent
                await asyncio.sleep(0.25)
        assert conn.buffered() < 256 * 1024 + 256 * 1024  # at most one read of the server over the mark
        async with asyncio.timeout(10):
            while sent < stuck + 1000:  # reading again lets everything flow
                await ws.recv()
        ws.transport.abort()


async def test_the_proxy_command(make_server: Any, tmp_path: Path) -> None:
    srv = await make_server()
    capture = tmp_path / "cli.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        "proxy",
        "--upstream",
        f"ws://127.0.0.1:{srv.port}",
        "--listen",
        "127.0.0.1:0",
        "--record",
        str(capture),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
        url = first.split()[2]
        ws = await websockets.connect(url, compression=None)
        assert json.loads(await ws.recv())["code"] == 200
        await ws.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 0 and "1 received" in out
    assert [e["ev"] for e in read(capture).events][:2] == ["open", "frame"]
