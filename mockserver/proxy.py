"""`infoway-mock proxy`: a recording man-in-the-middle between any Infoway client and any Infoway server.

    client --> Connection (h11, websockets sans-I/O: the mock's own) --> Proxy (the Host) --> UpstreamLink
                                                                            |-- CaptureWriter: every frame
                                                                            |-- FaultEngine: /control

The listening side is the mock's connection layer, so the proxy speaks HTTP exactly as the mock does and
REST through the same port is forwarded too (the Host answers later: `Connection` waits for it). The
upstream side is one `UpstreamLink` per client WebSocket: h11 for the handshake, then server frames split
by `wire.FrameReader` and written to the client as the very bytes the server sent (fragmented messages
are joined into one frame: the only change made to a message). Client frames go upstream masked by
websockets. Pings are answered on each side by the proxy and not forwarded.

Everything is recorded in a capture (schemas/json/capture.schema.json): each frame with its direction,
connection and a monotonic time, and the connection events: the handshake status (refusals with their
body), close frames with code and reason from whichever side sent them (with the error frame that preceded
them, e.g. 513), abrupt ends (TCP reset or EOF), REST exchanges, and faults. API keys are masked.

The fault registry applies to proxied connections: the proxy serves `/control` itself (`infoway-mock fault
... --port PROXYPORT`) with a FaultEngine whose FaultContext acts on the client side of each proxied
connection, so a user can inject a close, stall, error frame or reset into a live stream.

Back-pressure is passed on, not absorbed: while a client's send buffer is over `max_send_buffer` the proxy
stops reading the server, so a slow client looks slow to the server, as it would without the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import logging
import random
import secrets
import signal
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11
import orjson
from websockets.server import ServerProtocol
from websockets.utils import accept_key, generate_key

from infoway_mock.schemas.capture import RECV, SEND, CaptureWriter
from infoway_mock.schemas.codes import ERRORS
from infoway_mock.schemas.masking import mask_key, mask_query, mask_target

from .config import ServerConfig
from .connection import Connection, HttpRequest, HttpResponse, Limits, reset_on_close
from .control import ControlChannel
from .fanout import text_frame
from .faults import FaultEngine
from .handshake import CONTROL_PATH, Accept, Gate, Refusals, Upgrade, presented_key
from .limits import QuotaBook
from .outbox import binary_frame
from .wire import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameReader,
    WireError,
    client_close,
    client_frame,
    close_payload,
    end_after_flush,
)

log = logging.getLogger("infoway.proxy")

TOOL = "infoway-mock 0.1.0"
# Hop-by-hop and handshake headers: each side of the proxy has its own.
_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "proxy-authorization",
        "proxy-connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",  # no compression on either side: frames pass unchanged
        "sec-websocket-accept",
        "sec-websocket-protocol",
    }
)
_OWN_RESPONSE_HEADERS = _HOP | {"content-type", "date", "server"}


@dataclass
class ProxyConfig:
    upstream: str  # ws://host:port, wss://data.infoway.io (the path and query come from each client)
    host: str = "127.0.0.1"
    port: int = 8766
    record: str | None = None  # capture file; None: proxy (and inject faults) without recording
    control_token: str | None = None  # None: a random one, printed at start
    seed: int = 42  # fault randomness (probabilities, trace ids)
    connect_timeout: float = 10.0  # upstream TCP connect + handshake, and a whole REST exchange
    close_timeout: float = 2.0  # a close frame the peer does not answer in this time: abort
    max_message: int = 16 * 1024 * 1024  # per WebSocket message, either way (1009 above)
    max_http_body: int = 16 * 1024 * 1024  # REST request and response bodies (413 / 502 above)
    max_send_buffer: int = 1024 * 1024  # client send buffer over this: stop reading the server
    http_idle_timeout: float = 30.0
    # REST connections to the upstream kept alive for the next request (0: a new one per request). Against
    # the live service each new one is a TCP and TLS handshake, which the proxy would add to every call.
    max_idle_upstream_http: int = 8
    max_capture_bytes: int = 1 << 30  # past it events are counted in the trailer, not written
    record_http_body: int = 1024 * 1024  # REST bodies kept in the capture (longer: truncated, marked)
    flush_interval: float = 0.5  # the capture reaches the disk at least this often


@dataclass(frozen=True)
class UpstreamAddr:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> UpstreamAddr:
        u = urlsplit(url)
        if u.scheme not in ("ws", "wss", "http", "https") or not u.hostname:
            raise ValueError(f"upstream must be a ws://, wss://, http:// or https:// URL, not {url!r}")
        secure = u.scheme in ("wss", "https")
        return cls("wss" if secure else "ws", u.hostname, u.port or (443 if secure else 80))

    @property
    def secure(self) -> bool:
        return self.scheme == "wss"

    @property
    def netloc(self) -> str:
        default = 443 if self.secure else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.secure else None


def _header_items(headers: dict[str, str], drop: frozenset[str]) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers.items() if n.lower() not in drop]


def _error_code(wire: bytes | None) -> int | None:
    """The code of an Infoway error frame ({"traceId", "code", "msg"}), else None."""
    if wire is None or wire[0] & 0x0F != TEXT:
        return None
    n = wire[1] & 0x7F
    start = 2 if n < 126 else 4 if n == 126 else 10
    try:
        obj = orjson.loads(wire[start:])
    except orjson.JSONDecodeError:
        return None
    code = obj.get("code") if isinstance(obj, dict) else None
    return code if "traceId" in obj and code in ERRORS else None


class ProxyConnection(Connection):
    """The mock's connection, remembering how TCP ended (a reset or an EOF) for the capture."""

    __slots__ = ("lost_exc",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lost_exc: BaseException | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_exc = exc
        super().connection_lost(exc)


class UpstreamLink(asyncio.Protocol):
    """The proxy's WebSocket to the server for one client connection."""

    def __init__(self, proxy: Proxy, conn_id: int, request: HttpRequest) -> None:
        self.proxy = proxy
        self.conn_id = conn_id
        self.request = request
        self.conn: Connection | None = None  # the client side, once its 101 has gone out
        self.transport: asyncio.Transport | None = None
        self.state = "connecting"  # -> open -> closing -> closed
        self.reader = FrameReader(proxy.config.max_message)
        self.pending: list[bytes] = []  # frames that came before the client side was attached
        self.pending_end: Callable[[], None] | None = None  # and how it ended, if it did that soon
        self.ended: str | None = None  # who ended it first: server, client or proxy (recorded once)
        self.last_wire: bytes | None = None  # the last frame the client got: was it an error frame?
        self.reading = True
        self._key = generate_key()
        self._http: h11.Connection | None = h11.Connection(h11.CLIENT)
        self._refused: h11.Response | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._handshake: asyncio.Future[tuple[int, list[tuple[str, str]], bytes] | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._close_timer: asyncio.TimerHandle | None = None

    # -- the handshake ---------------------------------------------------------------------------------

    async def open(self) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Connect and hand the client's upgrade on: None once the server accepted, else its refusal
        (status, headers, body). Raises OSError/TimeoutError when the server cannot be reached."""
        addr = self.proxy.upstream
        loop = asyncio.get_running_loop()
        ctx = addr.ssl_context()
        async with asyncio.timeout(self.proxy.config.connect_timeout):
            await loop.create_connection(
                lambda: self, addr.host, addr.port, ssl=ctx, server_hostname=addr.host if ctx else None
            )
            return await self._handshake

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        req = self.request
        headers = [
            ("Host", self.proxy.upstream.netloc),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self._key),
            ("Sec-WebSocket-Version", "13"),
            *_header_items(req.headers, _HOP),
        ]
        http = self._http
        assert http is not None
        transport.write(http.send(h11.Request(method="GET", target=req.target, headers=headers)))
        transport.write(http.send(h11.EndOfMessage()))

    def _handshake_data(self, data: bytes) -> None:
        http = self._http
        assert http is not None
        http.receive_data(data)
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as e:
                self._fail_handshake(ConnectionError(f"bad handshake answer from the server: {e}"))
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._switched(event, http)
                    return
                continue  # 100 Continue and the like
            if isinstance(event, h11.Response):
                self._refused = event
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size <= self.proxy.config.max_http_body:
                    self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._finish_refusal()
                return

    def _switched(self, event: h11.InformationalResponse, http: h11.Connection) -> None:
        got = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in event.headers}
        if got.get("sec-websocket-accept") != accept_key(self._key):
            self._fail_handshake(ConnectionError("the server's Sec-WebSocket-Accept is wrong"))
            return
        trailing, _ = http.trailing_data
        self._http = None
        self.state = "open"
        if not self._handshake.done():
            self._handshake.set_result(None)
        if trailing:
            self._frames(bytes(trailing))  # the server's first frames came with its 101

    def _finish_refusal(self) -> None:
        refused = self._refused
        if refused is None:
            self._fail_handshake(ConnectionError("the server closed the connection during the handshake"))
            return
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in refused.headers]
        if not self._handshake.done():
            self._handshake.set_result((refused.status_code, headers, b"".join(self._body)))
        self.state = "closed"
        if self.transport is not None:
            self.transport.close()

    def _fail_handshake(self, exc: BaseException) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(exc)
        self.state = "closed"
        if self.transport is not None:
            self.transport.abort()

    # -- frames ----------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state == "connecting":
            self._handshake_data(data)
        elif self.state in ("open", "closing"):
            self._frames(data)

    def _frames(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except WireError as e:
            self.proxy.upstream_broken(self, e)
            return
        out: list[bytes] = []
        for opcode, wire, start in frames:
            if opcode <= BINARY:
                out.append(wire)
                continue
            if out:
                self._down(out)
                out = []
            if opcode == CLOSE:
                self._close_received(wire[start:])
            elif opcode == PING and self.state == "open":
                self._write(client_frame(PONG, wire[start:]))
        if out:
            self._down(out)

    def _down(self, wires: list[bytes]) -> None:
        if self.conn is None:
            # The client's 101 goes out within a loop turn or two; should the server pour meanwhile, it
            # waits (back-pressure, as ever) rather than piling up here.
            self.pending.extend(wires)
            if sum(map(len, self.pending)) > self.proxy.config.max_send_buffer:
                self.pause()
        else:
            self.proxy.deliver(self.conn, wires)

    def attach(self, conn: Connection) -> None:
        """The client has its 101: pass on what the server said (and did) meanwhile, in order."""
        self.conn = conn
        if self.pending:
            pending, self.pending = self.pending, []
            self.proxy.deliver(conn, pending)
            if conn.buffered() <= self.proxy.config.max_send_buffer:
                self.resume()
        if self.pending_end is not None:
            end, self.pending_end = self.pending_end, None
            end()

    def _close_received(self, payload: bytes) -> None:
        try:
            code, reason = close_payload(payload)
        except WireError as e:
            self.proxy.upstream_broken(self, e)
            return
        if self.state == "open":
            self._write(client_close(code, reason))  # the echo the server waits for
            self.state = "closing"
            self._arm_close_timer()
            self._end(lambda: self.proxy.upstream_closed(self, code, reason))
        # closing: this answers the close we sent; the server now closes TCP

    def send(self, data: str | bytes) -> None:
        if self.state == "open":
            if isinstance(data, str):
                self._write(client_frame(TEXT, data.encode()))
            else:
                self._write(client_frame(BINARY, data))

    def close(self, code: int | None, reason: str = "") -> None:
        if self.state == "open":
            self._write(client_close(code, reason))
            self.state = "closing"
            self._arm_close_timer()
        elif self.state == "connecting":
            self.abort()

    def abort(self, reset: bool = False) -> None:
        self.state = "closed"
        transport = self.transport
        if transport is None:
            return
        if reset:
            reset_on_close(transport)
        transport.abort()

    def pause(self) -> None:
        if self.reading and self.transport is not None and not self.transport.is_closing():
            self.reading = False
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self.reading and self.transport is not None and not self.transport.is_closing():
            self.reading = True
            self.transport.resume_reading()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _arm_close_timer(self) -> None:
        if self._close_timer is None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.proxy.config.close_timeout, self.abort)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        was = self.state
        self.state = "closed"
        self.transport = None
        if was == "connecting":
            self._fail_handshake(exc or ConnectionError("the server closed the connection"))
            return
        if was == "open":  # no close frame either way: the server went away
            how = "rst" if isinstance(exc, ConnectionResetError) else "eof"
            self._end(lambda: self.proxy.upstream_lost(self, how))

    def _end(self, report: Callable[[], None]) -> None:
        if self.conn is None:
            self.pending_end = report  # the client's 101 is on its way: it learns after the frames before
        else:
            report()


class _ProxyFaultPort:
    """What fault kinds may do on the proxy: the same FaultContext as the mock's, acting on the client
    side of proxied connections."""

    error_close_code = 1008

    def __init__(self, proxy: Proxy, seed: int) -> None:
        self._proxy = proxy
        self.rng = random.Random(seed)

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, fn, *args)

    def send(self, conn: Connection, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, dict):
            wire = text_frame(orjson.dumps(frame))
        elif isinstance(frame, str):
            wire = text_frame(frame.encode())
        else:
            wire = binary_frame(frame)
        self._proxy.deliver(conn, [wire])

    def close(self, conn: Connection, code: int, reason: str) -> None:
        self._proxy.end_by_proxy(conn, "close", code, reason)

    def reset(self, conn: Connection) -> None:
        self._proxy.end_by_proxy(conn, "reset")

    def pause_reading(self, conn: Connection) -> None:
        conn.pause_reading()

    def resume_reading(self, conn: Connection) -> None:
        conn.resume_reading()

    def restart(self, down_for: float) -> None:
        self._proxy.spawn(self._proxy.restart(down_for))

    def trace_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def count_dropped(self, reason: str, n: int) -> None:
        self._proxy.dropped[reason] += n


@dataclass
class _HttpLink:
    """One HTTP/1.1 connection to the upstream for REST, kept alive between requests."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    answered: bool = False  # a byte of the answer to the current request arrived


class _StaleLink(Exception):
    """A kept-alive upstream connection failed before any answer: it was closed while idle."""


class Proxy:
    """`async with Proxy(ProxyConfig(upstream=...)) as p:`, then `p.ws_url()`; the capture closes on exit."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.upstream = UpstreamAddr.parse(config.upstream)
        self.port = config.port
        self.recorder: CaptureWriter | None = None
        self.conns: dict[int, Connection] = {}  # proxied WebSockets by id (the ids the capture uses)
        self._controls: set[Connection] = set()
        self.refusals = Refusals()
        self.control_token = config.control_token or secrets.token_hex(16)
        # Only /control is decided by a gate here; every other handshake is the server's to decide.
        self.gate = Gate(ServerConfig(), QuotaBook(), self.refusals, self.control_token, ())
        self.dropped: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()  # frames by direction
        self._http_idle: list[_HttpLink] = []  # kept-alive REST connections to the upstream
        self.faults = FaultEngine(
            _ProxyFaultPort(self, config.seed),
            connections=lambda: list(self.conns.values()),
            refusals=self.refusals,
            write=self._write,
            on_applied=self._fault_applied,
        )
        self.control = ControlChannel(self.faults, self.report, self._connection_rows)
        self._limits = Limits(
            max_message=config.max_message,
            max_http_body=config.max_http_body,
            http_idle_timeout=config.http_idle_timeout,
            close_timeout=config.close_timeout,
            max_send_buffer=config.max_send_buffer,
        )
        self._handshaker = ServerProtocol()
        self._ids = itertools.count(1)
        self._listener: asyncio.Server | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.config.record and self.recorder is None:
            self.recorder = CaptureWriter(
                self.config.record,
                source="proxy",
                tool=TOOL,
                upstream=str(self.upstream),
                max_bytes=self.config.max_capture_bytes,
            )
            self._schedule_flush()
        await self._listen()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: ProxyConnection(self, self._limits, self._handshaker),
            self.config.host,
            self.port,
            reuse_address=True,
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.faults.clear()
        await self._close_listener(code=1001, reason="proxy shutting down")
        for link in self._http_idle:
            link.writer.close()
        self._http_idle.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self.recorder is not None:
            self.recorder.close(dropped=dict(self.dropped) or None)

    async def _close_listener(self, code: int | None, reason: str = "") -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.close()
        conns = list(self.conns.values())
        for conn in conns:
            if code is None:
                self.end_by_proxy(conn, "reset")
            else:
                self.end_by_proxy(conn, "close", code, reason)
        for conn in list(self._controls):
            conn.abort()
        deadline = time.monotonic() + self.config.close_timeout + 1.0
        while time.monotonic() < deadline and any(
            c.transport is not None and not c.transport.is_closing() for c in conns
        ):
            await asyncio.sleep(0.01)  # polling with a deadline: transports give no awaitable
        for conn in conns:
            link: UpstreamLink | None = conn.session
            if link is not None and link.state != "closed":
                link.abort()  # the server side of a client that never answered our close
        await listener.wait_closed()

    async def restart(self, down_for: float) -> None:
        """The `restart` fault on the proxy: every proxied connection reset, the port closed meanwhile."""
        await self._close_listener(code=None)
        await asyncio.sleep(down_for)  # the down time itself
        await self._listen()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_flush(self) -> None:
        self._flush_timer = asyncio.get_running_loop().call_later(self.config.flush_interval, self._flush)

    def _flush(self) -> None:
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.flush()
            self._schedule_flush()

    def ws_url(self, business: str = "crypto", key: str | None = "demo") -> str:
        q = f"?business={business}" + (f"&apikey={key}" if key is not None else "")
        return f"ws://{self.config.host}:{self.port}/ws{q}"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # -- recording -------------------------------------------------------------------------------------

    def _event(self, ev: str, **fields: Any) -> None:
        if self.recorder is not None:
            self.recorder.event(ev, **fields)

    def _fault_applied(self, fault: Any) -> None:
        raw = fault.to_dict()
        if raw.get("key"):
            raw["key"] = mask_key(raw["key"])
        targets = [c.conn_id for c in self.conns.values() if self.faults._matches(fault, c)]
        self._event("fault", fault=raw, connections=targets)

    # -- the Host protocol: HTTP -----------------------------------------------------------------------

    def http_request(self, conn: Connection, req: HttpRequest) -> Any:
        return self._forward_http(req)

    async def _forward_http(self, req: HttpRequest) -> HttpResponse:
        cfg = self.config
        started = time.monotonic()
        t = self.recorder.now() if self.recorder is not None else 0.0
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                status, headers, body = await self._http_exchange(req)
        except TimeoutError:
            status, headers, body = 504, [], b"Gateway Timeout: the upstream did not answer in time\n"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        except (OSError, h11.ProtocolError, ValueError) as e:
            status, body = 502, f"Bad Gateway: {type(e).__name__}: {e}\n".encode()
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        content_type = next(
            (v for n, v in headers if n.lower() == "content-type"), "application/octet-stream"
        )
        if self.recorder is not None:
            keep = body[: cfg.record_http_body]
            fields: dict[str, Any] = {}
            try:
                fields["body"] = keep.decode()
            except UnicodeDecodeError:
                fields["body"], fields["body_base64"] = base64.b64encode(keep).decode(), True
            if req.body:
                fields["request_body"] = req.body[: cfg.record_http_body].decode("utf-8", "replace")
            self.recorder.event(
                "http",
                t,
                method=req.method,
                target=mask_target(req.target),
                status=status,
                content_type=content_type,
                truncated=True if len(body) > cfg.record_http_body else None,
                ms=round((time.monotonic() - started) * 1000, 3),
                **fields,
            )
        return HttpResponse(status, body, content_type, _header_items(dict(headers), _OWN_RESPONSE_HEADERS))

    async def _http_exchange(self, req: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        while self._http_idle:
            link = self._http_idle.pop()
            if link.reader.at_eof() or link.writer.is_closing():
                link.writer.close()  # the upstream closed it while it was idle
                continue
            try:
                return await self._exchange_on(link, req, pooled=True)
            except _StaleLink:
                # Closed by the upstream (its idle timeout) before a byte of the answer: the request is
                # sent again on a fresh connection. Infoway's REST only reads, so sending it twice is safe.
                continue
        return await self._exchange_on(await self._open_http(), req, pooled=False)

    async def _open_http(self) -> _HttpLink:
        addr = self.upstream
        ctx = addr.ssl_context()
        reader, writer = await asyncio.open_connection(
            addr.host, addr.port, ssl=ctx, server_hostname=addr.host if ctx else None
        )
        return _HttpLink(reader, writer, h11.Connection(h11.CLIENT))

    async def _exchange_on(
        self, link: _HttpLink, req: HttpRequest, *, pooled: bool
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One exchange on `link`; a pooled link that fails before any answer raises _StaleLink."""
        reusable = False
        try:
            status, headers, body = await self._send_and_read(link, req)
            http = link.http
            if http.our_state is h11.DONE and http.their_state is h11.DONE:
                http.start_next_cycle()
                reusable = (
                    len(self._http_idle) < self.config.max_idle_upstream_http and self._listener is not None
                )
            return status, headers, body
        except (OSError, h11.ProtocolError) as e:
            if pooled and not link.answered:
                raise _StaleLink from e
            raise
        finally:
            if reusable:
                self._http_idle.append(link)
            else:
                link.writer.close()

    async def _send_and_read(
        self, link: _HttpLink, req: HttpRequest
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        http, reader, writer = link.http, link.reader, link.writer
        link.answered = False
        headers = [("Host", self.upstream.netloc), *_header_items(req.headers, _HOP)]
        if req.body or req.method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(req.body))))
        writer.write(http.send(h11.Request(method=req.method, target=req.target, headers=headers)))
        if req.body:
            writer.write(http.send(h11.Data(data=req.body)))
        writer.write(http.send(h11.EndOfMessage()))
        response: h11.Response | None = None
        body: list[bytes] = []
        size = 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                link.answered = link.answered or bool(data)
                http.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.config.max_http_body:
                    raise ValueError(f"upstream response over {self.config.max_http_body} bytes")
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if response is None:
            raise ConnectionError("the upstream closed without answering")
        out = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in response.headers]
        return response.status_code, out, b"".join(body)

    # -- the Host protocol: WebSocket ------------------------------------------------------------------

    def upgrade(self, conn: Connection, req: HttpRequest) -> Any:
        if req.path == CONTROL_PATH:
            verdict = self.gate.decide(Upgrade(req.path, req.query, req.headers, req.peer_host), 0.0)
            if isinstance(verdict, Accept):
                conn.kind = "control"
                return None
            return HttpResponse(
                verdict.status, verdict.text.encode(), "text/plain; charset=utf-8", list(verdict.headers)
            )
        return self._open_upstream(conn, req)

    async def _open_upstream(self, conn: Connection, req: HttpRequest) -> HttpResponse | None:
        conn_id = next(self._ids)
        opened = dict(conn=conn_id, path=req.path, query=mask_query(req.query))
        key = presented_key(req.query, req.headers)
        refused = self.refusals.status_for(key, time.monotonic())
        if refused is not None:
            self._event("open", **opened, status=refused, reason="refused by a fault on the proxy")
            return HttpResponse(refused, f"{refused} refused by fault injection\n".encode(), "text/plain")
        link = UpstreamLink(self, conn_id, req)
        try:
            answer = await link.open()
        except (OSError, TimeoutError, ConnectionError) as e:
            why = f"{type(e).__name__}: {e}".strip().rstrip(":")
            self._event("open", **opened, status=502, reason=f"upstream unreachable: {why}")
            return HttpResponse(
                502, f"Bad Gateway: the upstream cannot be reached ({why})\n".encode(), "text/plain"
            )
        if answer is not None:
            status, headers, body = answer
            text = body[:65536].decode("utf-8", "replace")
            self._event("open", **opened, status=status, body=text)
            content_type = next((v for n, v in headers if n.lower() == "content-type"), "text/plain")
            return HttpResponse(
                status, body, content_type, _header_items(dict(headers), _OWN_RESPONSE_HEADERS)
            )
        self._event("open", **opened, status=101)
        conn.kind = "news" if req.path == "/news" else "ws"
        conn.conn_id, conn.key, conn.business = conn_id, key or "", req.query.get("business", "")
        conn.session = link
        return None

    def ws_opened(self, conn: Connection) -> None:
        if conn.kind == "control":
            self._controls.add(conn)
            return
        self.conns[conn.conn_id] = conn
        log.info("conn %d open %s key=%s", conn.conn_id, conn.business or conn.kind, mask_key(conn.key))
        conn.session.attach(conn)
        self.faults.on_open(conn)

    def ws_message(self, conn: Connection, data: str | bytes) -> None:
        if conn.kind == "control":
            conn.write_frames([text_frame(orjson.dumps(self.control.handle(data)))])
            return
        link: UpstreamLink = conn.session
        self.forwarded[SEND] += 1
        if self.recorder is not None:
            self.recorder.message(conn.conn_id, SEND, data)
        link.send(data)

    def connection_lost(self, conn: Connection) -> None:
        if conn.kind == "control":
            self._controls.discard(conn)
            return
        link: UpstreamLink | None = conn.session
        if link is None:
            return  # plain HTTP
        self.faults.on_close(conn)
        self.conns.pop(conn.conn_id, None)
        if link.ended is None:
            link.ended = "client"
            ws = conn.ws
            rcvd = ws.close_rcvd if ws is not None else None
            if rcvd is not None and ws is not None and ws.close_rcvd_then_sent:
                self._event("close", conn=conn.conn_id, by="client", code=rcvd.code, reason=rcvd.reason)
                link.close(rcvd.code, rcvd.reason)
            else:
                exc = getattr(conn, "lost_exc", None)
                how = "rst" if isinstance(exc, ConnectionResetError) else "eof"
                self._event("reset", conn=conn.conn_id, by="client", how=how)
                if how == "rst":
                    link.abort(reset=True)
                else:
                    link.close(1001, "")
        elif link.state in ("open", "connecting"):
            # The server or a fault ended it on the client side; the server side goes the same way.
            code = conn.ws.close_code if conn.ws is not None else None
            if code is None or code in (1005, 1006):
                link.abort(reset=True)
            else:
                link.close(code, "")
        log.info("conn %d closed (%s)", conn.conn_id, link.ended)

    # -- frames to the client, and how connections end -------------------------------------------------

    def deliver(self, conn: Connection, wires: list[bytes]) -> None:
        """Frames for the client: through the connection's fault shaper, if a fault shapes it."""
        shaped = self.faults.shaped
        shaper = shaped.get(conn) if shaped else None
        if shaper is None:
            self._write(conn, wires)
        else:
            shaper.deliver(wires)

    def _write(self, conn: Connection, wires: list[bytes]) -> None:
        """Where frames meet the client's socket, and the capture: what is recorded is what was sent."""
        if not conn.ws_open:
            self.dropped["client closing"] += len(wires)
            return
        conn.write_frames(wires)
        self.forwarded[RECV] += len(wires)
        if self.recorder is not None:
            self.recorder.wires(conn.conn_id, RECV, wires)
        link: UpstreamLink = conn.session
        link.last_wire = wires[-1]
        if conn.buffered() > self.config.max_send_buffer:
            link.pause()
            conn.on_drain = link.resume

    def upstream_closed(self, link: UpstreamLink, code: int, reason: str) -> None:
        conn = link.conn
        if link.ended is None:
            link.ended = "server"
            error = _error_code(link.last_wire)
            self._event("close", conn=link.conn_id, by="server", code=code, reason=reason, error=error)
        if conn is not None:
            # 1005 (no status) cannot be sent in a frame: the client gets a plain normal closure.
            conn.close(1000 if code == 1005 else code, reason)

    def upstream_lost(self, link: UpstreamLink, how: str) -> None:
        conn = link.conn
        if link.ended is None:
            link.ended = "server"
            self._event("reset", conn=link.conn_id, by="server", how=how)
        if conn is not None and conn.transport is not None:
            # What was forwarded reaches the client first (it had reached the proxy), then the same end.
            end_after_flush(conn.transport, reset=how == "rst", timeout=self.config.close_timeout)

    def upstream_broken(self, link: UpstreamLink, err: WireError) -> None:
        """The server sent something that is not RFC 6455: close it with the matching code, tell the
        client with 1011 (the proxy cannot forward what it cannot read)."""
        log.warning("conn %d: upstream protocol error: %s", link.conn_id, err.reason)
        link.close(err.code, err.reason[:120])
        if link.ended is None:
            link.ended = "proxy"
            self._event(
                "close", conn=link.conn_id, by="proxy", code=1011, reason=f"upstream: {err.reason}"[:120]
            )
        if link.conn is not None:
            link.conn.close(1011, "upstream protocol error")

    def end_by_proxy(self, conn: Connection, how: str, code: int = 1000, reason: str = "") -> None:
        """A fault (or the proxy stopping) ends a proxied connection on the client side."""
        link: UpstreamLink | None = conn.session
        if link is not None and link.ended is None:
            link.ended = "proxy"
            if how == "close":
                error = _error_code(link.last_wire)
                self._event("close", conn=conn.conn_id, by="proxy", code=code, reason=reason, error=error)
            else:
                self._event("reset", conn=conn.conn_id, by="proxy", how="rst")
        if how == "close":
            conn.close(code, reason)
        else:
            conn.abort(reset=True)

    # -- control ---------------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """For `infoway-mock report --port PROXYPORT`: the proxy judges no client (the server does)."""
        rec = self.recorder
        return {
            "clients": [],
            "verdict": "n/a",
            "proxy": {
                "upstream": str(self.upstream),
                "open_connections": len(self.conns),
                "frames": dict(self.forwarded),
                "dropped": dict(self.dropped),
                "capture": None if rec is None else str(rec.path),
                "capture_bytes": None if rec is None else rec.bytes,
                "unrecorded": None if rec is None else rec.unrecorded,
            },
        }

    def _connection_rows(self) -> list[dict[str, Any]]:
        return [
            {"id": c.conn_id, "key": mask_key(c.key), "business": c.business, "kind": c.kind, "peer": c.peer}
            for c in self.conns.values()
        ]


# -- the command ---------------------------------------------------------------------------------------


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:8766, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def add_command(sub: Any) -> None:
    """`infoway-mock proxy` (registered in cli.build_parser)."""
    p = sub.add_parser(
        "proxy",
        help="record a live stream: a WebSocket-aware proxy in front of any Infoway server",
        description="Forward every frame both ways unchanged and record it (with the handshakes, closes, "
        "resets and REST exchanges) in a capture that `serve --replay` plays back. Faults can be injected "
        "into proxied connections through the proxy's own control endpoint: `infoway-mock fault ... "
        "--port PORT --token TOKEN`.",
    )
    p.add_argument(
        "--upstream", required=True, help="the server, e.g. wss://data.infoway.io or ws://127.0.0.1:8765"
    )
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 8766), metavar="HOST:PORT")
    p.add_argument("--record", metavar="FILE", help="write the capture here (JSON Lines)")
    p.add_argument(
        "--control-token", help="token for the proxy's /control endpoint (default: random, printed)"
    )
    p.add_argument("--max-capture-bytes", type=int, default=1 << 30, help="bound of the capture file")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(run=_proxy_command)


def _proxy_command(args: argparse.Namespace) -> int:
    host, port = args.listen
    cfg = ProxyConfig(
        upstream=args.upstream,
        host=host,
        port=port,
        record=args.record,
        control_token=args.control_token,
        max_capture_bytes=args.max_capture_bytes,
    )
    asyncio.run(_run(cfg))
    return 0


async def _run(cfg: ProxyConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Proxy(cfg) as proxy:
        print(f"infoway-mock proxy {proxy.ws_url()} -> {proxy.upstream}", flush=True)
        print(f"  control ws://{cfg.host}:{proxy.port}/control  token {proxy.control_token}", flush=True)
        if cfg.record:
            print(f"  recording to {cfg.record}", flush=True)
        await stop.wait()
    rec = proxy.recorder
    if rec is not None:
        print(f"capture {rec.path}: {rec.frames[SEND]} frames sent, {rec.frames[RECV]} received", flush=True)
