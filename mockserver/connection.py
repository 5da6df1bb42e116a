"""One TCP connection of the mock's listener: HTTP/1.1 until a WebSocket upgrade, then WebSocket frames.

Only I/O lives here. HTTP is parsed by h11 (sans-I/O): persistent connections, pipelined requests answered
in order, request bodies (the SDK's POST v2 batch_kline), bounded heads and bodies. A WebSocket upgrade is
handed to websockets' sans-I/O `ServerProtocol` (frames in, frames out, pings and the close handshake
handled there). What to answer is the host's business (the `Host` protocol below: the server), so this
module knows nothing about Infoway.

Every byte reaches the socket through `_write`/`_writelines` here; Infoway frames reach them only through
the server's `Outbox` (`write_frames`), so each frame is checked and counted once, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import h11
from websockets.datastructures import Headers
from websockets.frames import Opcode
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.protocol import State
from websockets.server import ServerProtocol

log = logging.getLogger("infoway.mock")

_OPEN = State.OPEN
_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # as sent: path and query
    path: str
    query: dict[str, str]  # the last value of each name, as most servers read it
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    peer: str  # "host:port"
    upgrade: bool  # a WebSocket upgrade request

    @property
    def peer_host(self) -> str:
        return self.peer.rsplit(":", 1)[0].strip("[]")


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after this response


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    426: "Upgrade Required",
    427: "Too Many Connections",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    499: "Client Closed Request",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    524: "A Timeout Occurred",
}


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Refused" if status >= 400 else "OK")


class Host(Protocol):
    """What a connection asks of the server. Synchronous: nothing here may wait for I/O, except that
    `http_request` and `upgrade` may return an awaitable of their answer (the proxy asks its upstream
    first); the connection then stops reading until the answer is given, so requests stay in order."""

    def http_request(
        self, conn: Connection, request: HttpRequest
    ) -> HttpResponse | Awaitable[HttpResponse]: ...

    def upgrade(
        self, conn: Connection, request: HttpRequest
    ) -> HttpResponse | Awaitable[HttpResponse | None] | None:
        """None accepts the WebSocket (the host has set conn.kind and the rest); else the refusal."""

    def ws_opened(self, conn: Connection) -> None: ...

    def ws_message(self, conn: Connection, data: str | bytes) -> None: ...

    def connection_lost(self, conn: Connection) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_message: int = 64 * 1024  # WebSocket messages (frames and fragments together); 1009 above
    max_http_head: int = 16 * 1024  # request line and headers; 431 above
    max_http_body: int = 64 * 1024  # request body; 413 above
    http_idle_timeout: float = 30.0  # an HTTP connection that sends nothing this long is closed
    close_timeout: float = 2.0  # after our close frame, the peer has this long to answer, then abort
    max_send_buffer: int = 4 * 1024 * 1024  # HTTP responses: stop reading while this much is unsent


def reset_on_close(transport: asyncio.BaseTransport) -> None:
    """Make the transport's next close or abort send a TCP reset (SO_LINGER 0) instead of a FIN: a crashed
    peer, a dropped NAT, or a recorded reset reproduced."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Connection(asyncio.Protocol):
    """asyncio glue for one TCP connection. The server keeps its protocol state in `session`."""

    __slots__ = (
        "_body",
        "_body_size",
        "_close_timer",
        "_deferred",
        "_fragment_binary",
        "_fragments",
        "_handshaker",
        "_idle_timer",
        "_request",
        "business",
        "conn_id",
        "frames_out",
        "host",
        "http",
        "key",
        "kind",
        "limits",
        "loop",
        "on_drain",
        "peer",
        "reading_paused",
        "session",
        "slot_held",
        "transport",
        "ws",
    )

    def __init__(self, host: Host, limits: Limits, handshaker: ServerProtocol) -> None:
        self.host = host
        self.limits = limits
        self._handshaker = handshaker
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.http: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=limits.max_http_head
        )
        self.ws: ServerProtocol | None = None
        # Set by the host when it accepts a WebSocket.
        self.kind = "http"  # http | ws | news | control
        self.conn_id = 0
        self.key = ""
        self.business = ""
        self.slot_held = False
        self.session: Any = None
        self.peer = "?"
        self.reading_paused = False
        self.frames_out = 0  # WebSocket frames written (the console's frames out, the report's push rate)
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._fragments: list[bytes] = []
        self._fragment_binary = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._deferred: asyncio.Task[Any] | None = None  # an answer the host gives later (see Host)
        # Called when a WebSocket's send buffer has drained below the low-water mark after asyncio paused
        # writing: how a writer of large bursts (the firehose) waits for the client without polling.
        self.on_drain: Callable[[], None] | None = None

    # -- asyncio callbacks -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
            self.peer = f"{host}:{peer[1]}"
        # asyncio calls pause_writing above this; HTTP then stops reading until the client catches up.
        transport.set_write_buffer_limits(high=self.limits.max_send_buffer)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._ws_received(data)
        elif self.http is not None:
            self._arm_idle()
            self._http_received(data)

    def eof_received(self) -> bool | None:
        if self.ws is not None:
            self.ws.receive_eof()
            self._flush_protocol()
        return None  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._close_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._idle_timer = None
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        if self.ws is not None:
            self.ws.receive_eof()  # idempotent; the protocol state becomes CLOSED
        self.host.connection_lost(self)

    def pause_writing(self) -> None:
        # Only HTTP relies on flow control; WebSocket clients over the bound are dropped by the outbox.
        if self.ws is None and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.ws is None:
            if self.transport is not None and not self.reading_paused and self._deferred is None:
                self.transport.resume_reading()
        elif self.on_drain is not None:
            # Not from inside this callback: asyncio (3.11, 3.12) calls resume_writing from _write_ready, and
            # if a write made here fails at once (the peer reset), it schedules connection_lost and then
            # _write_ready calls it again directly; the second call raised AttributeError on a None
            # protocol, printed as a traceback (seen once per full `make bench`, in the firehose part).
            self.loop.call_soon(self._drained)

    def _drained(self) -> None:
        on_drain = self.on_drain  # read now: the writer may have cleared it since
        if on_drain is not None:
            on_drain()

    # -- WebSocket ---------------------------------------------------------------------------------------

    @property
    def ws_open(self) -> bool:
        """True while Infoway frames may still be written (no close frame sent or received)."""
        ws, transport = self.ws, self.transport
        return ws is not None and ws.state is _OPEN and transport is not None and not transport.is_closing()

    def write_frames(self, frames: list[bytes]) -> None:
        """Pre-framed WebSocket frames (server frames are unmasked, so identical for every peer)."""
        if self.ws_open:
            self.frames_out += len(frames)
            self.transport.writelines(frames)  # type: ignore[union-attr]

    def buffered(self) -> int:
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake; the peer has limits.close_timeout to answer, then it is aborted."""
        ws = self.ws
        if ws is None or ws.state is not _OPEN:
            return
        ws.send_close(code, truncate_reason(reason))
        self._flush_protocol()
        self._arm_close_timer()

    def abort(self, reset: bool = False) -> None:
        """Drop the connection now. reset=True sends an RST (SO_LINGER 0): a crashed peer, a dropped NAT."""
        transport = self.transport
        if transport is None:
            return
        if reset:
            reset_on_close(transport)
        transport.abort()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def _ws_received(self, data: bytes) -> None:
        ws = self.ws
        assert ws is not None
        ws.receive_data(data)
        events = ws.events_received()
        self._flush_protocol()  # pongs and close replies go out in order with everything else
        for frame in events:
            if frame.opcode in _DATA_OPCODES:
                self._ws_frame(frame.opcode, frame.data, frame.fin)
        if ws.close_expected():
            self._arm_close_timer()

    def _ws_frame(self, opcode: Opcode, data: bytes, fin: bool) -> None:
        if opcode is not Opcode.CONT:
            self._fragment_binary = opcode is Opcode.BINARY
        if not fin:
            # The protocol enforces max_size across fragments, so this list is bounded too.
            self._fragments.append(data)
            return
        if self._fragments:
            self._fragments.append(data)
            data = b"".join(self._fragments)
            self._fragments = []
        if self._fragment_binary:
            self.host.ws_message(self, data)
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.ws.fail(1007, "invalid UTF-8 in a text frame")  # type: ignore[union-attr]
            self._flush_protocol()
            self._arm_close_timer()
            return
        self.host.ws_message(self, text)

    def _flush_protocol(self) -> None:
        ws, transport = self.ws, self.transport
        if ws is None or transport is None:
            return
        for data in ws.data_to_send():
            if data:
                if not transport.is_closing():
                    transport.write(data)
            elif transport.can_write_eof() and not transport.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    transport.write_eof()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self.transport is not None:
            self._close_timer = self.loop.call_later(self.limits.close_timeout, self.abort)

    # -- HTTP --------------------------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = self.loop.call_later(self.limits.http_idle_timeout, self._idle)

    def _idle(self) -> None:
        self._idle_timer = None
        if self.ws is None and self.transport is not None:
            self.transport.close()

    def _http_received(self, data: bytes) -> None:
        http = self.http
        assert http is not None
        http.receive_data(data)
        self._http_events()

    def _http_events(self) -> None:
        """Answer the requests h11 has whole, in order, until it needs data or an answer is deferred."""
        http = self.http
        assert http is not None
        while self.http is not None and self.transport is not None and not self.transport.is_closing():
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as e:
                status = 431 if "too long" in str(e).lower() else e.error_status_hint
                self._error_response(status, f"Bad request: {e}\n")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                # h11 bounds a head that arrives in pieces; one that arrives whole is bounded here.
                size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
                if size > self.limits.max_http_head:
                    self._error_response(431, f"Request head over {self.limits.max_http_head} bytes\n")
                    return
                self._request, self._body, self._body_size = event, [], 0
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size > self.limits.max_http_body:
                    self._error_response(413, f"Request body over {self.limits.max_http_body} bytes\n")
                    return
                self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if not self._complete_request():
                    return
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    def _complete_request(self) -> bool:
        """Answer the request just read; False once the connection has switched or is closing."""
        http, req = self.http, self._request
        assert http is not None and req is not None
        request = self._http_request(req)
        if request.upgrade and http.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            return self._upgrade(request)
        try:
            response = self.host.http_request(self, request)
        except Exception:
            response = _internal_error(request)
        if inspect.isawaitable(response):
            self._defer(response, request, lambda r: self._answer(request, r) and self._http_events())
            return False
        return self._answer(request, response)

    def _answer(self, request: HttpRequest, response: HttpResponse) -> bool:
        http = self.http
        if http is None or self.transport is None or self.transport.is_closing():
            return False
        self._send_response(response, head_only=request.method == "HEAD")
        if http.our_state is h11.MUST_CLOSE or response.close:
            self.transport.close()
            return False
        http.start_next_cycle()
        return True

    def _defer(self, answer: Awaitable[Any], request: HttpRequest, then: Callable[[Any], Any]) -> None:
        """Stop reading until the host's answer is ready, then go on with `then(answer)`."""
        assert self.transport is not None
        self.transport.pause_reading()

        async def wait() -> None:
            try:
                result = await answer
            except asyncio.CancelledError:
                raise
            except Exception:
                result = _internal_error(request)
            self._deferred = None
            if self.transport is None or self.transport.is_closing():
                return
            then(result)
            # `then` may have met the next pipelined request and deferred again: keep waiting for that one.
            transport = self.transport
            if self._deferred is None and transport is not None and not transport.is_closing():
                if not self.reading_paused:
                    transport.resume_reading()

        self._deferred = self.loop.create_task(wait())

    def _http_request(self, req: h11.Request) -> HttpRequest:
        target = req.target.decode("latin-1")
        url = urlsplit(target)
        headers: dict[str, str] = {}
        for name, value in req.headers:
            n, v = name.decode("latin-1"), value.decode("latin-1")
            headers[n] = f"{headers[n]}, {v}" if n in headers else v
        upgrade = "websocket" in headers.get("upgrade", "").lower()
        return HttpRequest(
            method=req.method.decode("latin-1"),
            target=target,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            body=b"".join(self._body),
            peer=self.peer,
            upgrade=upgrade,
        )

    def _upgrade(self, request: HttpRequest) -> bool:
        http = self.http
        assert http is not None and self.transport is not None
        # websockets validates the upgrade itself (key, version, headers) and says why it refuses.
        ws_request = WsRequest(request.target, Headers(list(request.headers.items())))
        accepted: WsResponse = self._handshaker.accept(ws_request)
        if accepted.status_code != 101:
            return self._switch(
                accepted, HttpResponse(accepted.status_code, accepted.body, "text/plain; charset=utf-8")
            )
        try:
            refusal = self.host.upgrade(self, request)
        except Exception:
            refusal = _internal_error(request)
        if inspect.isawaitable(refusal):
            self._defer(refusal, request, lambda r: self._switch(accepted, r))
            return False
        return self._switch(accepted, refusal)

    def _switch(self, accepted: WsResponse, refusal: HttpResponse | None) -> bool:
        """Refuse the upgrade, or switch to WebSocket (the trailing bytes are its first frames)."""
        http = self.http
        if http is None or self.transport is None or self.transport.is_closing():
            return False
        if refusal is not None:
            refusal.close = True
            self._send_response(refusal)
            self.transport.close()
            return False
        accepted.headers["Server"] = "infoway-mock"
        trailing, _ = http.trailing_data
        self.http = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._write(accepted.serialize())
        self.ws = ServerProtocol(state=_OPEN, max_size=self.limits.max_message, logger=_ws_log)
        self.host.ws_opened(self)
        if trailing:
            self._ws_received(bytes(trailing))
        return False

    def _error_response(self, status: int, text: str) -> None:
        self._send_response(HttpResponse(status, text.encode(), "text/plain; charset=utf-8", close=True))
        if self.transport is not None:
            self.transport.close()

    def _send_response(self, resp: HttpResponse, head_only: bool = False) -> None:
        http = self.http
        if http is None or self.transport is None:
            return
        headers = [
            ("Server", "infoway-mock"),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", resp.content_type),
            ("Content-Length", str(len(resp.body))),
            *resp.headers,
        ]
        if resp.close:
            headers.append(("Connection", "close"))
        try:
            out = [
                http.send(
                    h11.Response(status_code=resp.status, headers=headers, reason=reason_phrase(resp.status))
                )
            ]
            if resp.body and not head_only:
                out.append(http.send(h11.Data(data=resp.body)))
            out.append(http.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            # h11 refuses to answer in this state (e.g. the request line never parsed): just close.
            self.transport.close()
            return
        self._writelines([b for b in out if b])

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _writelines(self, chunks: list[bytes]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(chunks)


_ws_log = logging.getLogger("websockets.server.infoway")


def _internal_error(request: HttpRequest) -> HttpResponse:
    log.exception("internal error answering %s %s", request.method, request.path)
    return HttpResponse(500, b'{"code":500,"message":"Internal Server Error"}', close=True)


def truncate_reason(reason: str, limit: int = 123) -> str:
    """A close reason fits in 123 bytes of UTF-8 (RFC 6455 5.5): cut on a character boundary."""
    data = reason.encode()
    if len(data) <= limit:
        return reason
    return data[:limit].decode("utf-8", "ignore")
