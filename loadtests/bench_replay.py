"""Issue 15's figures: the recording proxy, the firehose, and replay pacing.

- proxy: pushes/s a fast consumer gets through `infoway-mock proxy` (recording) vs straight from the mock
  (the same flat-out mock as bench_server), and the latency the proxy adds: heartbeat round trips
  (10010 ack:1 -> 10011) through it and without it, p50 and p99.
- firehose: frames/s one connection gets from `serve --firehose --speed max`, vs a bare websockets server
  sending the same frames (broadcast, as bench_server's), vs a raw asyncio transport writing the same
  pre-joined bytes with the same flow control (the practical limit here).
- replay: how far from its recorded offset each push arrives at --speed 1 (median and p99).

The consumer is a raw-socket frame counter (it walks frame headers, nothing else), so the servers are
measured, not the client. Every server runs in its own process; baseline and candidate alternate,
repetitions >= 5, medians.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from loadtests.harness import ServerProcess, alternate, format_table, ratio_row, serve_control
from loadtests.lightclient import upgrade_request

SYMBOL = "BTCUSDT"
SUBSCRIBE = orjson.dumps({"code": 10000, "trace": "bench", "data": {"codes": SYMBOL}})
FIREHOSE_SECONDS = 5.0
FIREHOSE_RATE = 20_000.0  # trades per second of market time (x4 for BTCUSDT's weight): 400k frames, looped
CHUNK = 256 * 1024
HIGH_WATER = 1024 * 1024


def _quiet() -> None:
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("infoway.mock").setLevel(logging.WARNING)
    logging.getLogger("infoway.proxy").setLevel(logging.WARNING)


# -- the consumer: a raw-socket frame counter -------------------------------------------------------------


class _Counter(asyncio.Protocol):
    """Counts WebSocket frames by walking their headers; does its own (fixed) handshake."""

    def __init__(self) -> None:
        self.frames = 0
        self.upgraded = asyncio.get_running_loop().create_future()
        self._head = b""
        self._pending = b""
        self._skip = 0
        self.transport: asyncio.Transport | None = None
        self.stamps: list[tuple[float, int]] | None = None  # (arrival, frames so far) per read, if asked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:  # noqa: C901 (the consumer's hot loop, inlined on purpose)
        if not self.upgraded.done():
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(self._head.split(b" ", 2)[1])
            rest, self._head = self._head[end + 4 :], b""
            self.upgraded.set_result(status)
            if not rest:
                return
            data = rest
        if self._pending:
            data = self._pending + data
            self._pending = b""
        i, n, frames = self._skip, len(data), 0
        while i < n:
            if n - i < 2:
                break
            length = data[i + 1] & 0x7F
            if length < 126:
                i += 2 + length
            elif length == 126:
                if n - i < 4:
                    break
                i += 4 + int.from_bytes(data[i + 2 : i + 4], "big")
            else:
                if n - i < 10:
                    break
                i += 10 + int.from_bytes(data[i + 2 : i + 10], "big")
            frames += 1
        if i < n:
            self._pending, self._skip = data[i:], 0
        else:
            self._skip = i - n
        self.frames += frames
        if self.stamps is not None and frames:
            self.stamps.append((time.perf_counter(), self.frames))


def _masked(payload: bytes, opcode: int = 0x1) -> bytes:
    from infoway_mock.mockserver.wire import client_frame

    return client_frame(opcode, payload)


async def _connect(port: int, path: str = "/ws?business=crypto&apikey=demo") -> _Counter:
    loop = asyncio.get_running_loop()
    _, counter = await loop.create_connection(_Counter, "127.0.0.1", port)
    counter.transport.write(upgrade_request("127.0.0.1", path))  # type: ignore[union-attr]
    status = await asyncio.wait_for(counter.upgraded, 30)
    if status != 101:
        raise RuntimeError(f"handshake refused: {status}")
    counter.transport.write(_masked(SUBSCRIBE))  # type: ignore[union-attr]
    return counter


async def _rate(port: int, window: float, warmup: float) -> float:
    counter = await _connect(port)
    try:
        await asyncio.sleep(warmup)  # let the stream reach steady state before counting
        n0, t0 = counter.frames, time.perf_counter()
        await asyncio.sleep(window)  # the measurement window itself
        return (counter.frames - n0) / (time.perf_counter() - t0)
    finally:
        counter.transport.abort()  # type: ignore[union-attr]


# -- servers (child processes) --------------------------------------------------------------------------


def mock_upstream(port_w: Any, ctl: Any) -> None:
    """The flat-out mock of bench_server (strict, pump held by the consumer's back-pressure)."""
    from loadtests.bench_server import mock_server

    mock_server(port_w, ctl, True)


def idle_upstream(port_w: Any, ctl: Any) -> None:
    """A mock at its defaults with nobody subscribed: round trips measure the path, not a busy pump."""
    _quiet()
    asyncio.run(_idle_main(port_w, ctl))


async def _idle_main(port_w: Any, ctl: Any) -> None:
    from infoway_mock.mockserver.config import ServerConfig
    from infoway_mock.mockserver.server import MockServer

    done = asyncio.Event()
    async with MockServer(ServerConfig(port=0, rate_window=1.0).with_overrides(rate_limit=1_000_000)) as srv:
        port_w.send(srv.port)
        serve_control(ctl, lambda: (time.process_time(), 0), done.set)
        await done.wait()


def proxy_server(port_w: Any, ctl: Any, upstream_port: int, record: str | None) -> None:
    _quiet()
    asyncio.run(_proxy_main(port_w, ctl, upstream_port, record))


async def _proxy_main(port_w: Any, ctl: Any, upstream_port: int, record: str | None) -> None:
    from infoway_mock.mockserver.proxy import Proxy, ProxyConfig

    done = asyncio.Event()
    cfg = ProxyConfig(upstream=f"ws://127.0.0.1:{upstream_port}", port=0, record=record)
    async with Proxy(cfg) as proxy:
        port_w.send(proxy.port)
        serve_control(ctl, lambda: (time.process_time(), proxy.forwarded["recv"]), done.set)
        await done.wait()


def _firehose_config() -> Any:
    from infoway_mock.mockserver.config import ServerConfig

    return ServerConfig(
        port=0,
        seed=1,
        strict=True,
        symbols=[SYMBOL],
        trade_rate=FIREHOSE_RATE,
        max_send_buffer=64 << 20,
        max_trades_per_advance=1_000_000,
    ).with_overrides(max_connections=0)


def firehose_frames() -> list[bytes]:
    """The firehose's trade frames, in the order a trade subscriber gets them (the baselines' bytes)."""
    from infoway_mock.mockserver.firehose import render

    tl = render(_firehose_config(), FIREHOSE_SECONDS)
    (episode,) = next(iter(tl.episodes.values()))
    return [i.wire for i in episode.items if i.channel == "trade" and i.key == SYMBOL]


def firehose_server(port_w: Any, ctl: Any) -> None:
    _quiet()
    asyncio.run(_firehose_main(port_w, ctl))


async def _firehose_main(port_w: Any, ctl: Any) -> None:
    from infoway_mock.mockserver.firehose import render
    from infoway_mock.mockserver.replay import ReplayFeed
    from infoway_mock.mockserver.server import MockServer

    cfg = _firehose_config()
    srv = MockServer(cfg)
    srv.use_feed(ReplayFeed(render(cfg, FIREHOSE_SECONDS), speed=float("inf"), loop=True))
    done = asyncio.Event()
    async with srv:
        port_w.send(srv.port)
        serve_control(ctl, lambda: (time.process_time(), srv.metrics.frames_sent[10002]), done.set)
        await done.wait()


def bare_firehose_server(port_w: Any, ctl: Any, frames_file: str) -> None:
    _quiet()
    asyncio.run(_bare_firehose_main(port_w, ctl, frames_file))


async def _bare_firehose_main(port_w: Any, ctl: Any, frames_file: str) -> None:
    """websockets sending the same frames as fast as it can: broadcast() in runs, held at a high-water
    mark as bench_server's bare pusher is."""
    from websockets.asyncio.server import broadcast, serve

    texts = [w[2:] if w[1] < 126 else w[4:] for w in _read_frames(frames_file)]
    texts = [t.decode() for t in texts]
    sent = 0
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        nonlocal sent
        await ws.recv()
        conns = {ws}
        i, n = 0, len(texts)
        while not done.is_set():
            for _ in range(64):
                broadcast(conns, texts[i])
                i = (i + 1) % n
            sent += 64
            await asyncio.sleep(0)
            while ws.transport.get_write_buffer_size() > HIGH_WATER:
                await asyncio.sleep(0.0005)  # websockets offers no drain event to broadcast()'s callers

    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_queue=None) as server:
        port_w.send(next(iter(server.sockets)).getsockname()[1])
        serve_control(ctl, lambda: (time.process_time(), sent), done.set)
        await done.wait()


def raw_firehose_server(port_w: Any, ctl: Any, frames_file: str) -> None:
    _quiet()
    asyncio.run(_raw_firehose_main(port_w, ctl, frames_file))


class _RawFirehose(asyncio.Protocol):
    """A raw asyncio transport: the handshake by hand, then the pre-joined chunks, flow-controlled."""

    def __init__(self, chunks: list[bytes], counts: list[int], state: dict[str, int]) -> None:
        self.chunks, self.counts, self.state = chunks, counts, state
        self.head = b""
        self.accepted = self.started = self.paused = False
        self.i = 0

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        from websockets.utils import accept_key

        if self.started:
            return
        self.head += data
        if not self.accepted:
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in self.head[:end].split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            self.t.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
            )
            self.accepted = True
            self.head = self.head[end + 4 :]
        if self.head:  # the subscribe frame: start
            self.started = True
            self.write_more()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        # Written on the next loop turn, not inside asyncio's _write_ready (see Connection.resume_writing).
        self.paused = False
        asyncio.get_running_loop().call_soon(self.write_more)

    def write_more(self) -> None:
        while not self.paused and not self.t.is_closing():
            self.t.write(self.chunks[self.i])
            self.state["sent"] += self.counts[self.i]
            self.i = (self.i + 1) % len(self.chunks)


async def _raw_firehose_main(port_w: Any, ctl: Any, frames_file: str) -> None:
    """The practical limit: an asyncio transport writing the same pre-joined bytes, flow-controlled."""
    frames = _read_frames(frames_file)
    chunks, counts = [], []
    buf: list[bytes] = []
    for w in frames:
        buf.append(w)
        if sum(map(len, buf)) >= CHUNK:
            chunks.append(b"".join(buf))
            counts.append(len(buf))
            buf = []
    if buf:
        chunks.append(b"".join(buf))
        counts.append(len(buf))
    state = {"sent": 0}
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _RawFirehose(chunks, counts, state), "127.0.0.1", 0)
    port_w.send(server.sockets[0].getsockname()[1])
    serve_control(ctl, lambda: (time.process_time(), state["sent"]), done.set)
    await done.wait()
    server.close()


def _read_frames(path: str) -> list[bytes]:
    data = Path(path).read_bytes()
    out, i = [], 0
    while i < len(data):
        n = data[i + 1] & 0x7F
        h = 2 if n < 126 else 4
        if n == 126:
            n = int.from_bytes(data[i + 2 : i + 4], "big")
        out.append(data[i : i + h + n])
        i += h + n
    return out


def replay_server(port_w: Any, ctl: Any, capture: str) -> None:
    _quiet()
    asyncio.run(_replay_main(port_w, ctl, capture))


async def _replay_main(port_w: Any, ctl: Any, capture: str) -> None:
    from infoway_mock.mockserver.config import ServerConfig
    from infoway_mock.mockserver.replay import ReplayFeed, load
    from infoway_mock.mockserver.server import MockServer

    srv = MockServer(ServerConfig(port=0, strict=True).with_overrides(max_connections=0))
    srv.use_feed(ReplayFeed(load(capture), loop=True))
    done = asyncio.Event()
    async with srv:
        port_w.send(srv.port)
        serve_control(ctl, lambda: (time.process_time(), srv.metrics.frames_sent[10002]), done.set)
        await done.wait()


# -- the measurements -----------------------------------------------------------------------------------


async def _rtts(port: int, n: int) -> list[float]:
    import websockets

    url = f"ws://127.0.0.1:{port}/ws?business=crypto&apikey=demo"
    async with websockets.connect(url, compression=None) as ws:
        await ws.recv()
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            await ws.send(f'{{"code":10010,"trace":"h{i}","ack":1}}')
            await ws.recv()
            out.append(time.perf_counter() - t0)
    return out


def run_proxy(repetitions: int = 5, window: float = 1.5, pings: int = 50) -> list[dict[str, Any]]:
    """Delivered pushes/s and heartbeat round trips, direct vs through a recording proxy."""
    rates: dict[str, list[float]] = {"direct": [], "proxy": []}
    rtt: dict[str, list[float]] = {"direct": [], "proxy": []}
    cpu: dict[str, list[float]] = {"proxy": [], "mock": []}  # CPU microseconds per frame, proxied runs
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repetitions):
            with ServerProcess(mock_upstream) as up:
                # A fresh upstream per round: its pump state is the same for both figures of the round.
                with ServerProcess(proxy_server, up.port, f"{tmp}/capture{rep}.jsonl") as px:

                    def direct() -> float:
                        rates["direct"].append(asyncio.run(_rate(up.port, window, 0.5)))
                        return rates["direct"][-1]

                    def proxied() -> float:
                        (pc0, pf0), (uc0, uf0) = px.stats(), up.stats()
                        rates["proxy"].append(asyncio.run(_rate(px.port, window, 0.5)))
                        (pc1, pf1), (uc1, uf1) = px.stats(), up.stats()
                        cpu["proxy"].append((pc1 - pc0) / max(pf1 - pf0, 1) * 1e6)
                        cpu["mock"].append((uc1 - uc0) / max(uf1 - uf0, 1) * 1e6)
                        return rates["proxy"][-1]

                    # ABBA, and BAAB the next round: the machine is shared, and a drift in its load over
                    # a round then weighs on both figures alike.
                    order = [direct, proxied, proxied, direct]
                    for measure in order if rep % 2 == 0 else order[::-1]:
                        measure()
                Path(f"{tmp}/capture{rep}.jsonl").unlink(missing_ok=True)
        with (
            ServerProcess(idle_upstream) as up,
            ServerProcess(proxy_server, up.port, f"{tmp}/rtt.jsonl") as px,
        ):
            # Heartbeat round trips, one at a time, alternated in small runs.
            for _ in range(repetitions * 4):
                rtt["direct"] += asyncio.run(_rtts(up.port, pings))
                rtt["proxy"] += asyncio.run(_rtts(px.port, pings))
    d, p = statistics.median(rates["direct"]), statistics.median(rates["proxy"])
    rows = [ratio_row("proxy: delivered pushes/s (recording)", p, d, "proxy / direct", rates)]
    pc, mc = statistics.median(cpu["proxy"]), statistics.median(cpu["mock"])
    row = ratio_row(
        "proxy: CPU per frame, us (parse, forward, record)", pc, mc, "proxy / the mock pushing it", cpu
    )
    row["ratio_value"] = None  # informational: where the proxy's share of the machine goes
    rows.append(row)
    for q, name in ((50, "p50"), (99, "p99")):
        pd = statistics.quantiles(rtt["direct"], n=100)[q - 1] * 1e6
        pp = statistics.quantiles(rtt["proxy"], n=100)[q - 1] * 1e6
        row = ratio_row(f"proxy: heartbeat round trip {name}, us", pp, pd, "proxy / direct", {})
        row["added_us"] = round(pp - pd, 1)
        row["unit"] = f"proxy / direct (adds {pp - pd:.0f} us)"
        row["ratio_value"] = None  # informational: latency, not a throughput ratio
        rows.append(row)
    return rows


def run_firehose(repetitions: int = 5, window: float = 1.5) -> list[dict[str, Any]]:
    results: dict[str, list[float]] = {"firehose": [], "bare": [], "raw": []}
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = f"{tmp}/frames.bin"
        Path(frames_file).write_bytes(b"".join(firehose_frames()))
        servers = {
            "firehose": (firehose_server, ()),
            "bare": (bare_firehose_server, (frames_file,)),
            "raw": (raw_firehose_server, (frames_file,)),
        }

        def case(name: str) -> Any:
            def go() -> float:
                target, args = servers[name]
                with ServerProcess(target, *args) as sp:
                    results[name].append(asyncio.run(_rate(sp.port, window, 0.6)))
                return results[name][-1]

            return go

        alternate({name: case(name) for name in servers}, repetitions)
    f, b, r = (statistics.median(results[k]) for k in ("firehose", "bare", "raw"))
    return [
        ratio_row(
            "firehose, 1 connection: frames/s vs bare websockets", f, b, "firehose / bare websockets", results
        ),
        ratio_row(
            "firehose, 1 connection: frames/s vs raw transport",
            f,
            r,
            "firehose / raw asyncio transport",
            results,
        ),
    ]


def _capture(path: Path, seconds: float = 3.0, gap: float = 0.0123) -> list[float]:
    """A capture of one connection: a push every `gap` s for `seconds`; returns the recorded offsets."""
    from infoway_mock.mockserver.fanout import text_frame
    from infoway_mock.schemas.capture import CaptureWriter

    w = CaptureWriter(path, source="proxy", tool="bench")
    w.event("open", 0.0, conn=1, path="/ws", query={"business": "crypto"}, status=101)
    w.message(1, "send", SUBSCRIBE.decode(), 0.01)
    offsets = []
    t = 0.02
    i = 0
    while t < seconds:
        trade = {"s": SYMBOL, "p": "63039.5", "v": "0.01", "vw": "630.395", "t": 1786775227483 + i, "td": 1}
        w.wires(1, "recv", [text_frame(orjson.dumps({"code": 10002, "data": trade}))], t)
        offsets.append(t - 0.01)
        t += gap
        i += 1
    w.close()
    return offsets


async def _offsets(port: int, n: int, recorded: float) -> list[float]:
    """Arrival time of each push after the subscribe went out (the episode's anchor), as read."""
    counter = await _connect(port)
    t0 = time.perf_counter()
    counter.stamps = []
    try:
        await asyncio.sleep(recorded + 0.5)  # the recorded span itself, plus slack
    finally:
        counter.transport.abort()  # type: ignore[union-attr]
    got: list[float] = []
    for at, frames in counter.stamps:
        got += [at - t0] * (frames - 2 - len(got))  # frames 1 and 2: the session's welcome and ack
    return got[:n]


def run_replay(repetitions: int = 5) -> list[dict[str, Any]]:
    medians, p99s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.jsonl"
        offsets = _capture(path)
        for _ in range(repetitions):
            with ServerProcess(replay_server, str(path)) as sp:
                arrived = asyncio.run(_offsets(sp.port, len(offsets), offsets[-1]))
            errors = [abs(a - o) for a, o in zip(arrived, offsets, strict=True)]
            medians.append(statistics.median(errors) * 1e3)
            p99s.append(statistics.quantiles(errors, n=100)[98] * 1e3)
    rows = []
    for name, vals in (("median", medians), ("p99", p99s)):
        m = statistics.median(vals)
        rows.append(
            {
                "benchmark": f"replay at recorded speed: offset error {name}, ms",
                "candidate": f"{m:.2f}",
                "baseline": "",
                "ratio": "n/a",
                "unit": f"ms ({len(offsets)} pushes 12.3 ms apart, arrival vs recorded offset)",
                "candidate_value": m,
                "baseline_value": None,
                "ratio_value": None,
                "values": {"ms": vals},
            }
        )
    return rows


def run(repetitions: int = 5) -> list[dict[str, Any]]:
    return [*run_proxy(repetitions), *run_firehose(repetitions), *run_replay(repetitions)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--only", choices=["proxy", "firehose", "replay"])
    a = ap.parse_args()
    fn = {"proxy": run_proxy, "firehose": run_firehose, "replay": run_replay}.get(a.only or "", run)
    print(format_table(fn(a.repetitions)))


if __name__ == "__main__":
    main()
