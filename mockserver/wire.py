"""WebSocket frames from a server, split on the wire without a protocol object: the proxy's hot path.

The proxy forwards server frames to its client unchanged. Server frames are unmasked, so a complete
unfragmented data frame is already exactly what the client must receive: the reader hands back the frame's
own bytes (header included) to be written as they are, and the header length so the recorder can read the
text. websockets' sans-I/O parser would rebuild every frame through a generator and a Frame object (about
4 us a frame against under 1 us here, measured), a third of the proxy's budget at the rates the
benchmark asks for. Only this direction is hand-parsed: the handshake goes through h11 and frames the
proxy sends upstream are built and masked by websockets (`client_frame`).

Pure: bytes in, frames out; protocol errors raise `WireError` with the close code to answer with.
"""

from __future__ import annotations

import asyncio
import struct

from websockets.frames import Close, Frame, Opcode

from .connection import reset_on_close
from .fanout import text_frame
from .outbox import binary_frame

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_LEN16 = struct.Struct("!H").unpack_from
_LEN64 = struct.Struct("!Q").unpack_from


class WireError(Exception):
    """A frame breaks RFC 6455 (or a bound): close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameReader:
    """Splits a byte stream of server frames. `feed` returns complete messages as (opcode, wire, header
    length): data messages whole (a fragmented one joined and re-framed as one frame, the only change
    the proxy makes to a message), control frames as they come, in stream order."""

    __slots__ = ("_frag_op", "_frag_size", "_frags", "_have", "_need", "_parts", "max_size")

    def __init__(self, max_size: int = 16 * 1024 * 1024) -> None:
        self.max_size = max_size
        # The start of a frame still incomplete, in pieces, joined once `_need` bytes are there: a large
        # frame arriving in many reads is copied once, not once per read.
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0
        self._frags: list[bytes] = []
        self._frag_op = 0
        self._frag_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes, int]]:  # noqa: C901, PLR0915 (the proxy's hot loop, inlined on purpose)
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            buf = b"".join(self._parts)
            self._parts, self._have = [], 0
        else:
            buf = data
        out: list[tuple[int, bytes, int]] = []
        n = len(buf)
        i = 0
        need = 2
        max_size = self.max_size
        while n - i >= 2:
            b0 = buf[i]
            b1 = buf[i + 1]
            length = b1 & 0x7F
            if length < 126:
                start = i + 2
            elif length == 126:
                if n - i < 4:
                    need = 4
                    break
                length = _LEN16(buf, i + 2)[0]
                start = i + 4
            else:
                if n - i < 10:
                    need = 10
                    break
                length = _LEN64(buf, i + 2)[0]
                start = i + 10
            if b1 & 0x80:
                raise WireError(1002, "a server frame must not be masked")
            if b0 & 0x70:
                raise WireError(1002, "reserved bits set (no extension was negotiated)")
            if length > max_size:
                raise WireError(1009, f"frame of {length} bytes is over the limit of {max_size}")
            end = start + length
            if end > n:
                need = end - i
                break
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode & 0x8:  # control frames: never fragmented, at most 125 bytes
                if not fin or length > 125:
                    raise WireError(1002, "a control frame must be whole and at most 125 bytes")
                if opcode not in (CLOSE, PING, PONG):
                    raise WireError(1002, f"unknown control opcode {opcode:#x}")
                out.append((opcode, buf[i:end], start - i))
            elif opcode in (TEXT, BINARY):
                if self._frags:
                    raise WireError(1002, "a new message began inside a fragmented one")
                if fin:
                    out.append((opcode, buf[i:end], start - i))
                else:
                    self._frag_op, self._frags, self._frag_size = opcode, [buf[start:end]], length
            elif opcode == CONT:
                if not self._frags:
                    raise WireError(1002, "a continuation frame without a message to continue")
                self._frag_size += length
                if self._frag_size > max_size:
                    raise WireError(1009, f"message over the limit of {max_size} bytes")
                self._frags.append(buf[start:end])
                if fin:
                    payload = b"".join(self._frags)
                    self._frags = []
                    wire = text_frame(payload) if self._frag_op == TEXT else binary_frame(payload)
                    out.append((self._frag_op, wire, len(wire) - len(payload)))
            else:
                raise WireError(1002, f"unknown data opcode {opcode:#x}")
            i = end
        if i < n:
            self._parts, self._have, self._need = [buf[i:]], n - i, need
        return out

    @property
    def buffered(self) -> int:
        return self._have + self._frag_size * bool(self._frags)


def close_payload(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close frame's payload; an empty one is 1005 (no status), as RFC 6455 says."""
    if not payload:
        return 1005, ""
    try:
        close = Close.parse(payload)
    except Exception as e:  # websockets raises ProtocolError or UnicodeDecodeError on a bad close frame
        raise WireError(1002, f"bad close frame: {e}") from None
    return close.code, close.reason


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 5.3), built by websockets (its C extension masks)."""
    return Frame(Opcode(opcode), payload).serialize(mask=True)


def client_close(code: int | None, reason: str = "") -> bytes:
    payload = b"" if code is None or code == 1005 else Close(code, reason).serialize()
    return client_frame(CLOSE, payload)


def end_after_flush(transport: asyncio.Transport | None, *, reset: bool, timeout: float) -> None:
    """End a connection without a close frame once what was written to it has been sent: with a TCP reset
    (SO_LINGER 0) or a plain EOF. Used where a disconnect is reproduced (the proxy passing on a server's
    reset, a replayed one), so the frames before it arrive as they did. A peer that does not read is
    aborted after `timeout`."""
    if transport is None or transport.is_closing():
        return
    if reset:
        reset_on_close(transport)
    transport.close()  # asyncio sends what it holds, then closes the socket (an RST with linger 0)
    asyncio.get_running_loop().call_later(timeout, transport.abort)
