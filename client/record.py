"""`infoway-client stream --record FILE`: what this client received, as a capture (`source: client`).

The same format as `infoway-mock proxy --record` (schemas/json/capture.schema.json), so `serve --replay`
plays it back and `python -m infoway_mock.schemas check` validates it. A client sees decoded events, not
frames, so the capture is rebuilt from them:

- Connected is an open (101); a refused handshake an open with its HTTP status;
- pushes are re-encoded from their `raw` dict (the same members in the same order; the wire's whitespace
  and number spelling are not kept), server errors become error frames, kline backfills are left out;
- Disconnected is the end: a close with its code (and the error before it: 513) or, without a close
  frame, a reset (the client cannot tell a TCP reset from an EOF: both are recorded `rst`); the client's
  own watchdog giving up on a silent server is a reset `by: client`.

The requests the client sent are not in it, so a replay starts each connection's clock at its open.
Times are when the event left the client's queue, which a prompt consumer (the CLI) sees at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from infoway_mock.schemas.capture import CaptureWriter
from infoway_mock.schemas.codes import LEGACY_TRADE_PUSH, PUSH_DEPTH, PUSH_KLINE, PUSH_TRADE
from infoway_mock.schemas.masking import mask_query

from .events import Connected, Depth, Disconnected, Kline, ServerError, Trade

TOOL = "infoway-client 0.1.0"
# WebSocket close codes (RFC 6455 7.4), not Infoway message codes: below them, a code is an error frame's.
CLOSE_CODES = range(1000, 5000)
_CLOSED = re.compile(r"closed (\d{4})\b\s*(.*)")
_HTTP = re.compile(r"HTTP (\d{3})")


class Recorder:
    """Feed it every event the client hands out (`recorder.event(ev)`), then `close()`."""

    def __init__(self, path: str | Path, url: str) -> None:
        u = urlsplit(url)
        self.path = u.path or "/ws"
        self.query = mask_query(dict(parse_qsl(u.query)))
        self.writer = CaptureWriter(path, source="client", tool=TOOL, upstream=url)
        self.conn: int | None = None  # the open connection's number
        self._ids = 0

    def event(self, ev: Any) -> None:
        w = self.writer
        if isinstance(ev, Trade | Depth | Kline):
            if self.conn is None or getattr(ev, "backfill", False):
                return  # a kline backfill came over REST, not on the socket
            w.message(self.conn, "recv", orjson.dumps({"code": _code(ev), "data": ev.raw}).decode())
        elif isinstance(ev, Connected):
            self._end("client", None)  # a connection the client replaced without saying how it ended
            self.conn = self._next()
            w.event("open", conn=self.conn, path=self.path, query=self.query, status=101)
        elif isinstance(ev, ServerError):
            if self.conn is not None and ev.code:  # code 0: the client's own notice, not a frame
                frame = {"traceId": ev.trace, "code": ev.code, "msg": ev.msg}
                w.message(self.conn, "recv", orjson.dumps(frame).decode())
        elif isinstance(ev, Disconnected):
            self._disconnected(ev)

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    def _disconnected(self, ev: Disconnected) -> None:
        reason = ev.reason or ""
        if self.conn is None:  # the handshake itself failed
            status = _HTTP.search(reason)
            self.writer.event(
                "open",
                conn=self._next(),
                path=self.path,
                query=self.query,
                status=int(status.group(1)) if status else 0,
                reason=reason[:200],
            )
            return
        closed = _CLOSED.search(reason)
        if closed is not None:
            error = ev.code if ev.code is not None and ev.code not in CLOSE_CODES else None
            code = int(closed.group(1))
            self._end("server", code, closed.group(2).strip(), error)
        elif "dead peer" in reason or "idle" in reason:
            self.writer.event("reset", conn=self.conn, by="client", how="timeout")
            self.conn = None
        else:
            self.writer.event("reset", conn=self.conn, by="server", how="rst")
            self.conn = None

    def _end(self, by: str, code: int | None, reason: str = "", error: int | None = None) -> None:
        if self.conn is None:
            return
        if code is None or code not in CLOSE_CODES:
            self.writer.event("reset", conn=self.conn, by=by, how="eof")
        else:
            self.writer.event("close", conn=self.conn, by=by, code=code, reason=reason, error=error)
        self.conn = None

    def close(self) -> None:
        """The client stopped: its connection ends with its own close."""
        self._end("client", 1000)
        self.writer.close()

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _code(ev: Any) -> int:
    if isinstance(ev, Trade):
        return PUSH_TRADE if "vw" in ev.raw else LEGACY_TRADE_PUSH  # the tutorial's push has no turnover
    return PUSH_DEPTH if isinstance(ev, Depth) else PUSH_KLINE
