"""Fan-out of pushes: each frame encoded once, written to every subscriber in one batch per pump.

Server-to-client WebSocket frames are unmasked and (with compression off, as here) identical for
every connection, so a push is framed once and the same bytes go to all subscribers. During a pump
the frames for each connection are collected and handed to its transport in one `writelines`, so a
connection costs one syscall per pump instead of one per frame. websockets' `broadcast()` instead
re-serialises the frame per connection and writes each one separately.

Only connections whose WebSocket is OPEN receive pushes, as with `broadcast()`: once a close frame has
gone out, nothing more may follow it. The batch hands each connection's frames to `write` (the outbox's
one write path, which also enforces the send-buffer bound) when the pump step ends.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack


# Headers of short frames, prebuilt: most pushes are under 126 bytes, and hot loops index this directly.
SHORT_HEADERS = [bytes((0x81, n)) for n in range(126)]


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked FIN text frame (RFC 6455 section 5.2) carrying `payload` (UTF-8)."""
    n = len(payload)
    if n < 126:
        return SHORT_HEADERS[n] + payload
    if n < 65536:
        return _LEN16(0x81, 126, n) + payload
    return _LEN64(0x81, 127, n) + payload


class Batch:
    """Frames queued per connection during one pump, written when the pump ends."""

    __slots__ = ("pending", "write")

    def __init__(self, write: Callable[[Any, list[bytes]], None]) -> None:
        self.pending: dict[Any, list[bytes]] = {}
        self.write = write

    def add(self, conns: Any, frame: bytes) -> None:
        pending = self.pending
        for conn in conns:
            chunks = pending.get(conn)
            if chunks is None:
                if not conn.ws_open:
                    continue
                chunks = pending[conn] = []
            chunks.append(frame)

    def add_many(self, conns: Any, frames: list[bytes]) -> None:
        """Several frames, in order, for the same connections (a run of trades of one symbol).

        add's loop again with extend for append: a shared helper would cost a call per connection
        per frame, on the path the fan-out benchmark measures."""
        pending = self.pending
        for conn in conns:
            chunks = pending.get(conn)
            if chunks is None:
                if not conn.ws_open:
                    continue
                chunks = pending[conn] = []
            chunks.extend(frames)

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        write = self.write
        for conn, chunks in pending.items():
            write(conn, chunks)
