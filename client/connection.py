"""One WebSocket connection: websockets' sans-I/O ClientProtocol on an asyncio transport.

websockets' asyncio connection hands messages over one `await recv()` at a time. Here every message one
read of the socket produced goes to the client in one call, straight from the transport's callback, and
the consumer is woken once per read. Pings are answered and the closing handshake is run by the protocol
object; this module moves bytes and reports how the connection ended.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.frames import CloseCode, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import OPEN
from websockets.uri import WebSocketURI

from .policy import CLOSED, DROPPED, LOCAL, Outcome

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE_TIMEOUT = 2.0  # seconds the server gets to close TCP after the closing handshake

OnMessages = Callable[[list[Any], bool], None]  # (payloads, binary)


class LostBeforeHandshake(ConnectionError):
    """The TCP connection went away before the server answered the upgrade."""


class Connection(asyncio.Protocol):
    """Bytes in -> messages to `on_messages`; `send_text` out; `ended` when TCP is gone."""

    def __init__(
        self,
        uri: WebSocketURI,
        on_messages: OnMessages,
        on_start: Callable[[], None],
        on_end: Callable[[], None],
        *,
        max_size: int,
        max_fragments: int,
        logger: logging.Logger,
    ) -> None:
        self.ws = ClientProtocol(uri, max_size=max_size, logger=logger)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.handshake: asyncio.Future[None] = loop.create_future()
        # Retrieved here: the opener may have given up waiting (timeout) before the answer came.
        self.handshake.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.ended: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.failure: str | None = None  # why we failed the connection (an unreadable message)
        self._on_messages = on_messages
        self._on_start = on_start
        self._on_end = on_end
        self._max_fragments = max_fragments
        self._fragments: list[Any] = []
        self._fragment_binary = False
        self._closer: asyncio.TimerHandle | None = None
        # Frames that came with or right after the handshake response, held until the client has taken
        # the connection as open (reading is paused meanwhile, so this stays a frame or two).
        self._held: list[Any] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._on_start()
        request = self.ws.connect()
        request.headers["User-Agent"] = f"infoway-client {USER_AGENT}"
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        if events and not self.handshake.done():
            events = self._opening(events)
        if events:
            if self._held is not None:
                self._held.extend(events)
            else:
                self._dispatch(events)
        if ws.parser_exc is not None and self.failure is None:
            self.failure = f"{type(ws.parser_exc).__name__}: {ws.parser_exc}"
        if ws.close_expected():
            self._close_soon()

    def _dispatch(self, events: list[Any]) -> None:
        messages: list[Any] = []
        append = messages.append
        for frame in events:
            if frame.opcode is TEXT and frame.fin:
                append(frame.data)
            else:
                self._odd_frame(frame, messages)
        if messages:
            self._on_messages(messages, False)

    def release(self) -> None:
        """The client has taken the connection as open: deliver what was held, and read on."""
        held, self._held = self._held or [], None
        if held:
            self._dispatch(held)
        self.resume()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()
        if self._closer is not None:
            self._closer.cancel()
        if not self.handshake.done():
            self.handshake.set_exception(LostBeforeHandshake(str(exc or "connection closed")))
        if not self.ended.done():
            self.ended.set_result(None)
        self._on_end()

    # -- frames ------------------------------------------------------------------------------------------

    def _opening(self, events: list[Any]) -> list[Any]:
        first = events[0]
        if type(first) is Response:
            exc = self.ws.handshake_exc
            if exc is None:
                self._held = []
                self.pause()
                self.handshake.set_result(None)
            else:
                self.handshake.set_exception(exc)
            return events[1:]
        return events

    def _odd_frame(self, frame: Any, messages: list[Any]) -> None:
        """Fragments, binary frames and control frames (the protocol object answers pings and closes)."""
        op = frame.opcode
        if op is BINARY and frame.fin:
            self._on_messages([frame.data], True)
        elif op is TEXT or op is BINARY:
            self._fragments, self._fragment_binary = [frame.data], op is BINARY
        elif op is CONT:
            self._fragments.append(frame.data)
            if len(self._fragments) > self._max_fragments:
                self.fail(CloseCode.MESSAGE_TOO_BIG, f"a message in over {self._max_fragments} fragments")
            elif frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                if self._fragment_binary:
                    self._on_messages([data], True)
                else:
                    messages.append(data)

    # -- out ---------------------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.ws.state is OPEN and self.transport is not None and not self.transport.is_closing()

    def send_text(self, payloads: list[bytes]) -> None:
        if not self.open:
            return  # the session is ending; the core replays what it must on the next connection
        for data in payloads:
            self.ws.send_text(data)
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        for chunk in self.ws.data_to_send():
            if transport is None or transport.is_closing():
                return
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def fail(self, code: int, reason: str) -> None:
        """Give up on the connection because of what the server sent: close frame, then TCP close."""
        self.failure = reason
        self.ws.fail(code, reason)
        self._flush()
        self.abort(graceful=True)

    def pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _close_soon(self) -> None:
        # The closing handshake is done or under way: the server should close TCP; make sure it goes.
        if self._closer is None and self.transport is not None:
            self._closer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def abort(self, graceful: bool = False) -> None:
        """Drop TCP now (a stalled peer would never answer a close); graceful flushes pending writes."""
        t = self.transport
        if t is not None and not t.is_closing():
            if graceful:
                t.close()
            else:
                t.abort()
        elif t is not None and not graceful:
            t.abort()

    async def close(self, code: int = 1000) -> None:
        """The closing handshake from our side, bounded by CLOSE_TIMEOUT."""
        if self.ws.state is OPEN:
            self.ws.send_close(code)
            self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self.ended), CLOSE_TIMEOUT)
        except TimeoutError:
            self.abort()

    def outcome(self, at: float, local_reason: str | None) -> Outcome:
        """How this session ended, for the reconnect policy."""
        if local_reason is not None:
            return Outcome(LOCAL, local_reason, at)
        if self.failure is not None:
            return Outcome(LOCAL, f"unreadable message from the server: {self.failure}", at, 1009)
        rcvd = self.ws.close_rcvd
        if rcvd is not None:
            return Outcome(CLOSED, f"closed {int(rcvd.code)} {rcvd.reason}".strip(), at, int(rcvd.code))
        return Outcome(DROPPED, "connection lost without a close frame", at)


async def open_connection(uri: WebSocketURI, factory: Callable[[], Connection], timeout: float) -> Connection:
    """TCP (TLS for wss), then the upgrade; raises OSError, TimeoutError, LostBeforeHandshake, or
    websockets' InvalidHandshake (InvalidStatus carries the HTTP response of a refusal)."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if uri.secure else None
    async with asyncio.timeout(timeout):
        transport, conn = await loop.create_connection(
            factory, uri.host, uri.port, ssl=context, server_hostname=uri.host if context else None
        )
        try:
            await conn.handshake
        except BaseException:
            transport.abort()
            raise
    return conn


__all__ = ["Connection", "InvalidHandshake", "LostBeforeHandshake", "open_connection"]
