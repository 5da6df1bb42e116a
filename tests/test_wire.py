"""The proxy's frame reader, pure: bytes in any cut, frames out exactly, RFC 6455 violations refused."""

from __future__ import annotations

import struct

import pytest
from websockets.frames import Close, Frame, Opcode

from infoway_mock.mockserver.fanout import text_frame
from infoway_mock.mockserver.wire import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    FrameReader,
    WireError,
    client_frame,
    close_payload,
)


def _server(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=False)


def _feed_bytewise(reader: FrameReader, data: bytes) -> list[tuple[int, bytes, int]]:
    out = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    return out


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_frames_of_every_length_come_out_as_their_own_bytes(size: int) -> None:
    payload = b"x" * size
    wire = text_frame(payload)
    stream = wire + wire
    for cut in (1, 2, 3, 9, len(wire) - 1, len(wire), len(wire) + 5):
        r = FrameReader()
        got = r.feed(stream[:cut]) + r.feed(stream[cut:])
        assert got == [(TEXT, wire, len(wire) - size)] * 2
        assert r.buffered == 0


def test_a_fragmented_message_is_joined_with_control_frames_in_between() -> None:
    data = (
        _server(Opcode.TEXT, b"hel", fin=False)
        + _server(Opcode.PING, b"p")
        + _server(Opcode.CONT, b"lo", fin=False)
        + _server(Opcode.CONT, b"!", fin=True)
        + _server(Opcode.BINARY, b"\x00")
    )
    got = _feed_bytewise(FrameReader(), data)
    assert [op for op, _, _ in got] == [PING, TEXT, BINARY]
    assert got[1][1] == text_frame(b"hello!")  # re-framed as one frame: the only change made
    assert got[0][1][got[0][2] :] == b"p"


def test_close_frames_carry_code_and_reason() -> None:
    ((op, wire, start),) = FrameReader().feed(_server(Opcode.CLOSE, Close(1008, "timeout").serialize()))
    assert op == CLOSE and close_payload(wire[start:]) == (1008, "timeout")
    assert close_payload(b"") == (1005, "")
    with pytest.raises(WireError):
        close_payload(b"\x03")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(TEXT, b"masked"), 1002),  # servers never mask
        (bytes((0xC1, 1)) + b"x", 1002),  # RSV1 without an extension
        (bytes((0x83, 0)), 1002),  # reserved opcode
        (bytes((0x09, 0)), 1002),  # a fragmented ping
        (_server(Opcode.CONT, b"x"), 1002),  # nothing to continue
        (bytes((0x81, 127)) + struct.pack("!Q", 1 << 40), 1009),  # over the bound, refused before buffering
    ],
)
def test_protocol_violations_are_refused_with_their_close_code(data: bytes, code: int) -> None:
    with pytest.raises(WireError) as e:
        FrameReader(max_size=1024).feed(data)
    assert e.value.code == code


def test_a_fragmented_message_over_the_bound_is_refused() -> None:
    r = FrameReader(max_size=10)
    r.feed(_server(Opcode.TEXT, b"123456", fin=False))
    with pytest.raises(WireError) as e:
        r.feed(_server(Opcode.CONT, b"789012", fin=True))
    assert e.value.code == 1009


def test_client_frames_are_masked() -> None:
    wire = client_frame(TEXT, b"hello")
    assert wire[1] & 0x80 and len(wire) == 2 + 4 + 5
