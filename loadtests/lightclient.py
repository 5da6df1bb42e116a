"""A WebSocket load client light enough to hold thousands of subscribed connections per process.

A full client library spends most of its time per frame in its own machinery (assembling messages,
decoding UTF-8, waking a task); a load generator that only needs to count pushes can do with a plain
asyncio Protocol that reads frame headers and skips payloads. Client frames are masked with the all-zero
key, which RFC 6455 allows and which makes masking a copy.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import orjson

_LEN16 = struct.Struct("!H").unpack_from
_LEN64 = struct.Struct("!Q").unpack_from


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n)
    return head + b"\x00\x00\x00\x00" + payload


def upgrade_request(host: str, path: str) -> bytes:
    """The HTTP/1.1 request that opens a WebSocket at `path` (with its query), a fresh random key."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class LightClient(asyncio.Protocol):
    """One connection: handshake, then count every server frame by opcode; answers a close."""

    def __init__(self, host: str, path: str, opened: asyncio.Future[int]) -> None:
        self.host, self.path = host, path
        self.opened = opened  # resolves with the handshake's HTTP status
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshaken = False
        self.frames = 0
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(upgrade_request(self.host, self.path))

    def send(self, obj: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(orjson.dumps(obj)))

    def data_received(self, data: bytes) -> None:  # noqa: C901 (the frame parser of the load client, inlined)
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(bytes(buf[9:12]))
            del buf[: end + 4]
            self.handshaken = True
            if not self.opened.done():
                self.opened.set_result(status)
            if status != 101:
                self.transport.close()  # type: ignore[union-attr]
                return
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            head = 2
            if b1 == 126:
                if n - pos < 4:
                    break
                b1, head = _LEN16(buf, pos + 2)[0], 4
            elif b1 == 127:
                if n - pos < 10:
                    break
                b1, head = _LEN64(buf, pos + 2)[0], 10
            if n - pos < head + b1:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 0x8:
                self.close_code = _LEN16(buf, pos + head)[0] if b1 >= 2 else 1005
                self.transport.write(client_frame(bytes(buf[pos + head : pos + head + min(b1, 2)]), 0x8))  # type: ignore[union-attr]
            elif opcode in (0x1, 0x2):
                self.frames += 1
            pos += head + b1
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(host: str, port: int, path: str, timeout: float = 30.0) -> LightClient:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[int] = loop.create_future()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: LightClient(f"{host}:{port}", path, opened), host, port), timeout
    )
    status = await asyncio.wait_for(opened, timeout)
    if status != 101:
        raise ConnectionRefusedError(f"handshake refused with HTTP {status}")
    return proto
