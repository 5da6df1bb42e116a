"""The capture format (schemas/json/capture.schema.json): written and read the same way by every recorder.

The proxy (mockserver) and the reference client's `--record` (client) both write captures, and may not
import each other, so the format lives here, beside its schema. A capture is JSON Lines: a header, then one
event per line with `t`, seconds since the header on a monotonic clock. Frames keep their exact text.

Writing is on the proxy's hot path (one line per frame at hundreds of thousands of frames a second), so a
frame line is formatted by hand around `orjson.dumps(text)` instead of dumping a dict (a third of the
cost), and lines reach the file in batches. The file is bounded (`max_bytes`): past it, events are counted
in the trailer's `unrecorded`, never dropped silently.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import Violation
from .masking import mask_text

MAGIC = "infoway"
VERSION = 1
SEND, RECV = "send", "recv"
SCHEMA = "capture.schema.json"
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: hours of a busy stream; a bound, so a forgotten proxy cannot fill a disk

# Header length of an unmasked frame by its second byte: 2, then 4 for a 16-bit length, 10 for a 64-bit one.
_HEADER = bytes([2] * 126 + [4, 10] + [2] * 128)
_CONTROL = bytes(range(32))  # bytes a JSON string must escape


def header_len(wire: bytes) -> int:
    """Length of the header of an unmasked WebSocket frame (server frames, as the proxy forwards them)."""
    n = wire[1] & 0x7F
    return 2 if n < 126 else 4 if n == 126 else 10


class CaptureWriter:
    """Appends a capture to `path`. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        path: str | Path,
        *,
        source: str,
        tool: str,
        upstream: str | None = None,
        note: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[bytes] | None = open(self.path, "wb", buffering=1 << 20)  # closed by close()
        self._clock = clock
        self._t0 = clock()
        started = wall()
        self.max_bytes = max_bytes
        self.bytes = 0
        self.unrecorded = 0
        self.frames = {SEND: 0, RECV: 0}
        header: dict[str, Any] = {
            "capture": MAGIC,
            "version": VERSION,
            "tool": tool,
            "source": source,
            "started": datetime.fromtimestamp(started, UTC).isoformat().replace("+00:00", "Z"),
            "started_ms": int(started * 1000),
        }
        if upstream is not None:
            header["upstream"] = mask_text(upstream)
        if note:
            header["note"] = note
        self._write([orjson.dumps(header) + b"\n"])

    def now(self) -> float:
        """Seconds since the capture started, on the recorder's monotonic clock."""
        return self._clock() - self._t0

    @property
    def closed(self) -> bool:
        return self._f is None

    def _write(self, lines: list[bytes], events: int | None = None) -> None:
        """Lines holding `events` events (default: one each), or none of them past the bound."""
        f = self._f
        if f is None:
            self.unrecorded += len(lines) if events is None else events
            return
        size = sum(map(len, lines))
        if self.bytes + size > self.max_bytes and self.bytes:
            self.unrecorded += len(lines) if events is None else events
            return
        self.bytes += size
        f.write(b"".join(lines))

    def event(self, ev: str, t: float | None = None, **fields: Any) -> None:
        """One event line (open, close, reset, http, fault); fields with a None value are left out."""
        line = {"ev": ev, "t": round(self.now() if t is None else t, 6)}
        line.update((k, v) for k, v in fields.items() if v is not None)
        self._write([orjson.dumps(line) + b"\n"])

    def wires(self, conn: int, direction: str, wires: list[bytes], t: float | None = None) -> None:
        """Complete unmasked frames as they go on the wire (the proxy's hot path): the header is skipped,
        text frames keep their text; anything else (binary, invalid UTF-8) is kept as base64."""
        stamp = b'{"ev":"frame","t":%.6f,"conn":%d,"dir":"%s",' % (
            self.now() if t is None else t,
            conn,
            direction.encode(),
        )
        lines = self._text_lines(stamp, wires)
        if lines is None:
            lines = [self._line(stamp, w) for w in wires]
        self.frames[direction] += len(wires)
        self._write(lines, len(wires))

    @staticmethod
    def _text_lines(stamp: bytes, wires: list[bytes]) -> list[bytes] | None:
        """The common case, a batch of text frames of JSON, escaped in bulk: the payloads joined with a
        NUL between them, checked (valid UTF-8, no control characters), escaped with two replaces and
        split into lines by the NULs, all at C speed: a quarter of the cost of escaping frame by frame.
        None when the batch needs the careful path (binary frames, control characters, bad UTF-8)."""
        payloads = [w[_HEADER[w[1]] :] for w in wires if w[0] == 0x81]
        if len(payloads) != len(wires) or not payloads:
            return None
        joined = b"\0".join(payloads)
        # Deleting every control byte must remove exactly the separators: no payload holds one.
        if len(joined.translate(None, _CONTROL)) != len(joined) - len(payloads) + 1:
            return None
        try:
            joined.decode()
        except UnicodeDecodeError:
            return None
        head = stamp + b'"text":"'
        escaped = joined.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return [head + escaped.replace(b"\0", b'"}\n' + head) + b'"}\n']

    @staticmethod
    def _line(stamp: bytes, wire: bytes) -> bytes:
        start = header_len(wire)
        if wire[0] & 0x0F == 1:
            try:
                text = str(memoryview(wire)[start:], "utf-8")
            except UnicodeDecodeError:
                pass
            else:
                return stamp + b'"text":' + orjson.dumps(text) + b"}\n"
        return stamp + b'"binary":"%s"}\n' % base64.b64encode(wire[start:])

    def message(self, conn: int, direction: str, data: str | bytes, t: float | None = None) -> None:
        """One whole message (text, or bytes for a binary one)."""
        fields: dict[str, Any] = {"conn": conn, "dir": direction}
        if isinstance(data, str):
            fields["text"] = data
        else:
            fields["binary"] = base64.b64encode(data).decode()
        self.frames[direction] += 1
        self.event("frame", t, **fields)

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self, **end: Any) -> None:
        """Write the trailer and close; idempotent."""
        if self._f is None:
            return
        fields = {"frames": dict(self.frames), **{k: v for k, v in end.items() if v is not None}}
        if self.unrecorded:
            fields["unrecorded"] = self.unrecorded
        line = orjson.dumps({"ev": "end", "t": round(self.now(), 6), **fields}) + b"\n"
        self._f.write(line)  # the trailer is written even past the bound: it says what was left out
        self._f.close()
        self._f = None


# -- reading -------------------------------------------------------------------------------------------------


class CaptureError(ValueError):
    """A capture that cannot be read: the message names the line."""


@dataclass
class Capture:
    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""

    @property
    def source(self) -> str:
        return self.header.get("source", "proxy")


def is_header(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("capture") == MAGIC


def iter_lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) per non-blank line; CaptureError on a line that is not JSON."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise CaptureError(f"line {number}: not JSON ({e})") from None


def read(path: str | Path, *, validate: bool = True) -> Capture:
    """Load a capture. With `validate`, every line is checked against the capture schema (not the frames
    inside: `python -m infoway_mock.schemas check` does that) and the first bad line is refused."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise CaptureError(f"{p}: cannot read ({e.strerror or e})") from None
    it = iter_lines(raw.splitlines())
    first = next(it, None)
    if first is None or not is_header(first[1]):
        raise CaptureError(f"{p}: not a capture (the first line is not a capture header)")
    header = first[1]
    if header.get("version") != VERSION:
        raise CaptureError(f"{p}: capture version {header.get('version')!r}; this reader knows {VERSION}")
    cap = Capture(header, path=str(p))
    if validate:
        check = line_checker()
        for number, obj in [first, *it]:
            found = check(obj)
            if found:
                raise CaptureError(f"{p}: line {number}: {found[0].path}: {found[0].message}")
            if obj is not header:
                cap.events.append(obj)
    else:
        cap.events.extend(obj for _, obj in it)
    return cap


def line_checker() -> Callable[[Any], list[Violation]]:
    """Violations of one capture line: the compiled validator first (a capture holds millions of lines),
    the full one only to explain a line that fails."""
    from .validate import fast_validator, schema_violations

    fast = fast_validator(SCHEMA)

    def check(obj: Any) -> list[Violation]:
        if fast.is_valid(obj):
            return []
        # The two validators agree on every schema (a test checks); should they not, the line still fails.
        return schema_violations(obj, SCHEMA) or [Violation("$", obj, "schema", "fails the capture schema")]

    return check


def frame_data(event: Mapping[str, Any]) -> str | bytes:
    """The message of a frame event: its text, or the bytes of a binary frame."""
    text = event.get("text")
    if text is not None:
        return text
    return base64.b64decode(event["binary"])
