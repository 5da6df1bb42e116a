"""`infoway-mock conformance`: the contract checks against any Infoway server, the live one included.

The mock encodes what we believe the live service does (PROTOCOL.md, captured 2026-08-15). This runner asks
a server the same questions over the wire and prints, check by check, what was expected, what came back,
the verdict, and where the expectation comes from:

- `capture`:    frames captured from the live service (PROTOCOL.md): a FAIL reads "the server changed";
- `vendor doc`: the vendor's docs (docs.infoway.io) where nothing was captured;
- `vendor SDK`: the vendor's Python SDK `infoway-sdk` 0.4.1 (its code tables, paths, request shapes);
- `tutorial`:   the vendor's tutorial (its gateway status table);
- `our choice`: an OPEN item or an undocumented shape the mock had to pick: a FAIL reads "we guessed".

It is a client of any server: websockets for the socket, urllib for REST, the schemas for shapes; it never
touches the mock's internals, so the same run says the same thing about the mock and about the live service.

Safe by default: one WebSocket at a time, at most `max_frames_per_minute` (30) frames a minute across the
whole run (half the live limit), heartbeats every 20 s, no WebSocket pings (they might count), a handful of
REST calls. `--destructive` adds the limit probes (501 after the rate limit, 513 after the heartbeat
timeout, HTTP 427 past the plan's connections): for servers you own, never the live one with a key you value.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from infoway_mock import schemas
from infoway_mock.schemas.codes import (
    HEARTBEAT,
    HEARTBEAT_ACK,
    HEARTBEAT_TIMEOUT,
    NOT_JSON,
    PARAM_ERROR,
    PARAM_LOST,
    PUSH_DEPTH,
    PUSH_KLINE,
    PUSH_TRADE,
    RATE_LIMIT,
    SUB_DEPTH,
    SUB_DEPTH_ACK,
    SUB_KLINE,
    SUB_KLINE_ACK,
    SUB_TRADE,
    SUB_TRADE_ACK,
    UNSUB_ACK,
    UNSUB_DEPTH,
    UNSUB_KLINE,
    UNSUB_TRADE,
    WELCOME,
    is_error,
)

from .config import BUILTIN_PLANS, mask_key

# -- sources and verdicts ----------------------------------------------------------------------------------
CAPTURE, DOC, SDK, TUTORIAL, CHOICE = "capture", "vendor doc", "vendor SDK", "tutorial", "our choice"
SOURCES = {
    CAPTURE: "frames captured from the live service on 2026-08-15 (PROTOCOL.md): a FAIL means the server "
    "differs from what was seen live",
    DOC: "the vendor's docs, not captured: a FAIL means the server differs from its documentation",
    SDK: "the vendor's Python SDK infoway-sdk 0.4.1 (code tables, paths, request shapes)",
    TUTORIAL: "the vendor's tutorial (its table of gateway statuses)",
    CHOICE: "an OPEN or undocumented item the mock had to choose: a FAIL means we guessed otherwise",
}
PASS, FAIL, SKIP = "pass", "fail", "skip"

WELCOME_FRAME = {"code": WELCOME, "msg": "ws connect success"}
STOCK_BANNER = "You have permission to subscribe to all market data"
BAD_KEY = "conformance-invalid-key"

# Two symbols per business (the second subscribe adds one) and the reference-data type and market to ask
# for: the vendor's own examples.
DEFAULT_SYMBOLS: dict[str, tuple[str, str, str, str]] = {
    "crypto": ("BTCUSDT", "ETHUSDT", "CRYPTO", "US"),
    "stock": ("AAPL.US", "TSLA.US", "STOCK_US", "US"),
    "common": ("XAUUSD", "XAGUSD", "METAL", "US"),
    "japan": ("7203.JP", "6758.JP", "STOCK_JP", "JP"),
    "india": ("RELIANCE.IN", "TCS.IN", "STOCK_IN", "IN"),
    "korea": ("005930.KS", "000660.KS", "STOCK_KS", "KS"),
    "taiwan": ("2330.TW", "2317.TW", "STOCK_TW", "TW"),
}
LIVE_RATE_LIMIT = 60  # frames a minute per connection on the live service; safe mode stays below it


class Unreachable(Exception):
    """The target did not accept a TCP connection: nothing can be checked."""


@dataclass
class Result:
    check: str
    expected: str
    observed: str
    verdict: str
    source: str
    detail: str = ""  # the long form (a whole frame, every violation), JSON only

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "expected": self.expected,
            "observed": self.observed,
            "verdict": self.verdict,
            "source": self.source,
            "detail": self.detail,
        }


_DEFAULT_KEY: Any = object()


@dataclass(frozen=True)
class Target:
    """A server under test: its WebSocket endpoint (no query), its REST base, and a valid API key."""

    ws_base: str
    http_base: str
    api_key: str

    @classmethod
    def parse(cls, url: str, api_key: str, rest_url: str | None = None) -> Target:
        """`wss://data.infoway.io`, `ws://127.0.0.1:8765/ws`, `https://...`: the path defaults to /ws and a
        query in the URL is dropped (business and key are options). REST is the same host over http(s)
        unless `rest_url` says otherwise."""
        u = urllib.parse.urlsplit(url.strip())
        scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(u.scheme.lower())
        if scheme is None or not u.hostname:
            raise ValueError(
                f"{url!r} is not a server URL: give ws://, wss://, http:// or https:// and a host"
            )
        path = u.path.rstrip("/") or "/ws"
        http_base = (rest_url or f"{'https' if scheme == 'wss' else 'http'}://{u.netloc}").rstrip("/")
        if not urllib.parse.urlsplit(http_base).hostname:
            raise ValueError(f"{rest_url!r} is not a REST base URL (e.g. https://data.infoway.io)")
        return cls(f"{scheme}://{u.netloc}{path}", http_base, api_key)

    def ws_url(self, business: str = "crypto", key: str | None = _DEFAULT_KEY) -> str:
        """The market-data socket of a business; `key=None` leaves the key out (`apiKey` header or none)."""
        key = self.api_key if key is _DEFAULT_KEY else key
        q = urllib.parse.urlencode({"business": business} | ({"apikey": key} if key is not None else {}))
        return f"{self.ws_base}?{q}"

    url = ws_url

    @property
    def http_url(self) -> str:
        return self.http_base

    @property
    def address(self) -> tuple[str, int]:
        u = urllib.parse.urlsplit(self.ws_base)
        assert u.hostname is not None
        return u.hostname, u.port or (443 if u.scheme == "wss" else 80)

    def describe(self) -> dict[str, str]:
        return {"ws": self.ws_base, "rest": self.http_base, "api_key": mask_key(self.api_key)}


@dataclass
class Options:
    business: str = "crypto"
    symbols: tuple[str, str] | None = None  # None: DEFAULT_SYMBOLS[business]
    banner: bool = True  # check the stock banner (a short stock connection when the business is not stock)
    rest: bool = True
    destructive: bool = False
    # Timing. Short values are for test servers; the defaults suit the live service.
    push_seconds: float = 5.0  # longest wait for pushes of each kind
    min_pushes: int = 3  # pushes of each kind that end the push window early
    quiet_seconds: float = 2.0  # silence expected after the unsubscribes and after a heartbeat without ack
    settle_seconds: float = 0.5  # pushes this soon after an unsubscribe ack may have been in flight
    reply_timeout: float = 5.0  # longest wait for an ack, an error frame, a handshake, a REST answer
    heartbeat_interval: float = 20.0  # keep-alive 10010 on the long connection (the docs: every 30 s)
    max_frames_per_minute: int = 30  # across the run's connections (the live limit is 60 per connection)
    max_stored_frames: int = 50_000  # per connection; more are counted, not kept
    # Destructive probes.
    rate_limit: int = LIVE_RATE_LIMIT  # the server's frames per window: the probe sends one more
    heartbeat_timeout: float = 60.0  # the server's: 513 is expected after this much silence
    max_connections: int | None = None  # the plan's connections per key (None: from `plan`)
    plan: str = "pro"
    expect_close_code: int = 1008  # close code after 501/513: OPEN live; the mock's default

    def pair(self) -> tuple[str, str]:
        if self.symbols is not None:
            return self.symbols
        if self.business not in DEFAULT_SYMBOLS:
            raise ValueError(f"no default symbols for business {self.business!r}: give --symbols A,B")
        first, second, _, _ = DEFAULT_SYMBOLS[self.business]
        return first, second

    def connections(self) -> int:
        return (
            self.max_connections
            if self.max_connections is not None
            else BUILTIN_PLANS[self.plan].max_connections
        )


class Pacer:
    """At most `limit` frames in any `window` seconds over all of a run's connections (time is given)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        if limit < 1:
            raise ValueError("the frame budget must be at least 1 a window")
        self.limit = limit
        self.window = window
        self._sent: deque[float] = deque()
        self.total = 0
        self.peak = 0  # the most frames seen in one window

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame may go (0: now)."""
        self._expire(now)
        if len(self._sent) < self.limit:
            return 0.0
        return self._sent[0] + self.window - now

    def record(self, now: float) -> None:
        self._expire(now)
        self._sent.append(now)
        self.total += 1
        self.peak = max(self.peak, len(self._sent))


@dataclass(slots=True)
class Frame:
    at: float  # monotonic arrival time
    raw: str | bytes
    obj: Any  # the parsed JSON, or None for a frame that is not JSON


def _parse(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _compact(obj: Any, limit: int = 160) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Conn:
    """One WebSocket of the run: every frame received is kept (up to a bound, then counted) with its arrival
    time, so checks can look back over what came; sends go through the run's pacer."""

    def __init__(self, ws: websockets.ClientConnection, runner: Runner) -> None:
        self.ws = ws
        self.runner = runner
        self.frames: list[Frame] = []
        self.dropped = 0  # frames past max_stored_frames: counted, not kept
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        limit = self.runner.opts.max_stored_frames
        try:
            async for raw in self.ws:
                if len(self.frames) < limit:
                    self.frames.append(Frame(time.monotonic(), raw, _parse(raw)))
                else:
                    self.dropped += 1
                self._wake()
        except ConnectionClosed as e:
            self._closed_by(e)
        finally:
            if not self.closed:
                self.closed = True
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
            self._wake()

    def _closed_by(self, e: ConnectionClosed) -> None:
        self.closed = True
        if e.rcvd is not None:
            self.close_code, self.close_reason = e.rcvd.code, e.rcvd.reason
        else:
            self.close_code = None  # no close frame: the TCP connection just ended

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def mark(self) -> int:
        return len(self.frames)

    def close_text(self) -> str:
        if not self.closed:
            return "open"
        if self.close_code is None:
            return "closed without a close frame"
        return f"closed by the server with code {self.close_code}" + (
            f" ({self.close_reason!r})" if self.close_reason else ""
        )

    async def send(self, frame: Any, *, paced: bool = True) -> bool:
        """Send one frame (a dict as JSON, a str as is); False when the connection is closed."""
        text = frame if isinstance(frame, str | bytes) else json.dumps(frame, ensure_ascii=False)
        if self.closed:
            return False
        if paced:
            await self.runner.pace()
        else:
            self.runner.probe_frames += 1
        try:
            await self.ws.send(text)
        except ConnectionClosed as e:
            self._closed_by(e)
            return False
        return True

    async def until(self, cond: Callable[[], bool], timeout: float) -> bool:
        """Wait until cond() holds (re-checked on each frame and at the close), at most `timeout` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            left = deadline - loop.time()
            if self.closed or left <= 0:
                return cond()
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                pass
        return True

    async def find(self, pred: Callable[[Any], bool], timeout: float, start: int = 0) -> Frame | None:
        """The first frame from index `start` whose parsed object matches pred, within `timeout` s."""
        found: list[Frame] = []
        scanned = start

        def cond() -> bool:
            nonlocal scanned
            while scanned < len(self.frames):
                f = self.frames[scanned]
                scanned += 1
                if pred(f.obj if f.obj is not None else f.raw):
                    found.append(f)
                    return True
            return False

        await self.until(cond, timeout)
        return found[0] if found else None

    def objects(self, start: int = 0, end: int | None = None) -> list[Any]:
        return [f.obj for f in self.frames[start:end] if isinstance(f.obj, dict)]

    async def close(self) -> None:
        try:
            await self.ws.close()
        except Exception:  # a close that fails has nothing more to tell the run
            pass
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass


def _violation(obj: Any, check: Callable[[Any], None]) -> str | None:
    try:
        check(obj)
    except schemas.ContractError as e:
        return str(e.violations[0])
    return None


def _server_violation(obj: Any) -> str | None:
    return _violation(obj, schemas.validate_server_frame)


def _doc_violation(obj: Any, name: str) -> str | None:
    return _violation(obj, lambda o: schemas.validate_document(o, name))


def _ack_text(code: int, trace: str) -> str:
    return f'{{"code":{code},"trace":"{trace}","msg":"ok"}}'


@dataclass
class Report:
    target: dict[str, str]
    mode: str
    started: str
    duration_s: float
    frames_sent: int
    peak_frames_per_minute: int
    probe_frames: int
    rest_calls: int
    results: list[Result] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return FAIL if any(r.verdict == FAIL for r in self.results) else PASS

    def counts(self) -> dict[str, int]:
        return {v: sum(r.verdict == v for r in self.results) for v in (PASS, FAIL, SKIP)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "frames_sent": self.frames_sent,
            "peak_frames_per_minute": self.peak_frames_per_minute,
            "probe_frames": self.probe_frames,
            "rest_calls": self.rest_calls,
            "verdict": self.verdict,
            "counts": self.counts(),
            "sources": SOURCES,
            "results": [r.to_dict() for r in self.results],
        }

    def table(self, widths: tuple[int, ...] = (26, 44, 44, 7, 10)) -> str:
        head = ("check", "expected", "observed", "verdict", "source")
        rows = [head, *((r.check, r.expected, r.observed, r.verdict.upper(), r.source) for r in self.results)]
        lines: list[str] = []
        for i, row in enumerate(rows):
            cells = [
                textwrap.wrap(str(c), w, break_on_hyphens=False) or [""]
                for c, w in zip(row, widths, strict=True)
            ]
            for parts in itertools.zip_longest(*cells, fillvalue=""):
                lines.append("  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        c = self.counts()
        lines += [
            "",
            f"{len(self.results)} checks: {c[PASS]} pass, {c[FAIL]} fail, {c[SKIP]} skip "
            f"({self.mode} mode, {self.duration_s:.1f} s, {self.frames_sent} frames sent, at most "
            f"{self.peak_frames_per_minute} in a minute"
            + (f", plus {self.probe_frames} probe frames" if self.probe_frames else "")
            + f", {self.rest_calls} REST calls)",
            f"verdict: {self.verdict.upper()}",
        ]
        failed = {r.source for r in self.results if r.verdict == FAIL}
        lines += [f"  {k}: {v}" for k, v in SOURCES.items() if k in failed]
        return "\n".join(lines)


class Runner:
    """Runs the battery against one target; every check appends one Result."""

    def __init__(self, target: Target, opts: Options) -> None:
        self.target = target
        self.opts = opts
        self.results: list[Result] = []
        self.pacer = Pacer(opts.max_frames_per_minute)
        self.rest_pacer = Pacer(opts.max_frames_per_minute)
        self.probe_frames = 0
        self.rest_calls = 0
        self.first, self.second = opts.pair()

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def add(
        self, check: str, expected: str, observed: str, ok: bool | None, source: str, detail: str = ""
    ) -> None:
        verdict = SKIP if ok is None else PASS if ok else FAIL
        self.results.append(Result(check, expected, observed, verdict, source, detail))

    async def pace(self) -> None:
        await self._wait_for(self.pacer)

    @staticmethod
    async def _wait_for(pacer: Pacer) -> None:
        while (wait := pacer.delay(time.monotonic())) > 0:
            await asyncio.sleep(wait)  # the frame budget itself, not a wait for an event
        pacer.record(time.monotonic())

    async def _guard(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """One phase; a runner error (or a server that breaks an assumption) becomes a FAIL, not a crash."""
        try:
            await step()
        except (Unreachable, asyncio.CancelledError):
            raise
        except Exception as e:
            self.add(f"runner.{name}", "the phase runs to the end", f"{type(e).__name__}: {e}", False, CHOICE)

    # -- the run -------------------------------------------------------------------------------------------

    async def run(self) -> Report:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        t0 = time.monotonic()
        await self._reachable()
        await self._guard("handshake", self.handshake_refusals)
        if self.opts.banner and self.opts.business != "stock":
            await self._guard("banner", self.banner)
        await self._guard("header_key", self.key_in_header)
        await self._guard("stream", self.stream)
        if self.opts.rest:
            await self._guard("rest", self.rest)
        if self.opts.destructive:
            await self._guard("rate_probe", self.rate_probe)
            await self._guard("heartbeat_probe", self.heartbeat_probe)
            await self._guard("connections_probe", self.connections_probe)
        return Report(
            self.target.describe(),
            "destructive" if self.opts.destructive else "safe",
            started,
            time.monotonic() - t0,
            self.pacer.total,
            self.pacer.peak,
            self.probe_frames,
            self.rest_calls,
            self.results,
        )

    async def _reachable(self) -> None:
        host, port = self.target.address

        def probe() -> None:
            with socket.create_connection((host, port), timeout=self.opts.reply_timeout):
                pass

        try:
            await asyncio.to_thread(probe)
        except OSError as e:
            raise Unreachable(f"cannot reach {host}:{port}: {e}") from None

    async def _connect(
        self, business: str, key: str | None = _DEFAULT_KEY, headers: dict[str, str] | None = None
    ) -> websockets.ClientConnection:
        return await websockets.connect(
            self.target.ws_url(business, key),
            additional_headers=headers,
            open_timeout=self.opts.reply_timeout,
            close_timeout=self.opts.reply_timeout,
            ping_interval=None,  # pings might count against the live frame budget; heartbeats are 10010
            max_size=4 * 1024 * 1024,
        )

    async def _open(
        self, business: str, key: str | None = _DEFAULT_KEY, headers: dict[str, str] | None = None
    ) -> tuple[Conn | None, list[Frame], Frame | None, str]:
        """Connect and wait for the welcome: (conn, frames before it, the welcome, why it failed)."""
        try:
            ws = await self._connect(business, key, headers)
        except InvalidStatus as e:
            return None, [], None, f"handshake refused: HTTP {e.response.status_code}"
        except (InvalidHandshake, OSError, TimeoutError) as e:
            return None, [], None, f"handshake failed: {type(e).__name__}: {e}"
        conn = Conn(ws, self)
        welcome = await conn.find(
            lambda o: isinstance(o, dict) and o.get("code") == WELCOME, self.opts.reply_timeout
        )
        before = conn.frames[: conn.frames.index(welcome)] if welcome is not None else list(conn.frames)
        why = (
            ""
            if welcome is not None
            else f"no welcome within {self.opts.reply_timeout:g} s ({conn.close_text()})"
        )
        return conn, before, welcome, why

    async def _refused(self, url: str) -> tuple[int | None, Any, bytes, str]:
        try:
            ws = await websockets.connect(url, open_timeout=self.opts.reply_timeout, ping_interval=None)
        except InvalidStatus as e:
            return e.response.status_code, e.response.headers, e.response.body or b"", ""
        except (InvalidHandshake, OSError, TimeoutError) as e:
            return None, {}, b"", f"{type(e).__name__}: {e}"
        await ws.close()
        return 101, {}, b"", "the WebSocket was opened"

    # -- handshake -----------------------------------------------------------------------------------------

    async def handshake_refusals(self) -> None:
        business = self.opts.business
        status, headers, _, why = await self._refused(self.target.ws_url(business, BAD_KEY))
        www, ctype = headers.get("WWW-Authenticate"), headers.get("Content-Type")
        self.add(
            "handshake.bad_key",
            'HTTP 401, WWW-Authenticate: apikey realm="key", Content-Type: text/plain; no WebSocket',
            f"HTTP {status}, WWW-Authenticate: {www}, Content-Type: {ctype}" + (f"; {why}" if why else ""),
            status == 401 and www == 'apikey realm="key"' and str(ctype or "").startswith("text/plain"),
            CAPTURE,
        )
        status, _, _, why = await self._refused(self.target.ws_url(business, None))
        self.add(
            "handshake.missing_key",
            "HTTP 401; no WebSocket",
            f"HTTP {status}" + (f"; {why}" if why else ""),
            status == 401,
            CAPTURE,
        )

    async def banner(self) -> None:
        conn, before, welcome, why = await self._open("stock")
        try:
            self._banner_result(before, welcome, why)
        finally:
            if conn is not None:
                await conn.close()

    def _banner_result(self, before: list[Frame], welcome: Frame | None, why: str) -> None:
        seen = [_compact(f.raw) for f in before]
        self.add(
            "handshake.stock_banner",
            f'on business=stock: text frame "{STOCK_BANNER}", then the welcome',
            (f"{seen} before the welcome" if seen else "nothing before the welcome")
            + (f"; {why}" if why else ""),
            welcome is not None and [f.raw for f in before] == [STOCK_BANNER],
            CAPTURE,
        )

    async def key_in_header(self) -> None:
        conn, _, welcome, why = await self._open(self.opts.business, None, {"apiKey": self.target.api_key})
        if conn is not None:
            await conn.close()
        self.add(
            "handshake.key_in_header",
            "the key in an apiKey header (none in the URL): welcome",
            "welcome" if welcome is not None else why,
            welcome is not None,
            DOC,
        )

    # -- the stream: one long connection -------------------------------------------------------------------

    async def stream(self) -> None:
        business = self.opts.business
        conn, before, welcome, why = await self._open(business)
        welcome_obj = welcome.obj if welcome is not None else None
        self.add(
            "handshake.welcome",
            f"{_compact(WELCOME_FRAME)} right after the upgrade",
            _compact(welcome_obj) if welcome is not None else why,
            welcome_obj == WELCOME_FRAME and _server_violation(welcome_obj) is None,
            CAPTURE,
        )
        if business == "stock" and self.opts.banner:
            self._banner_result(before, welcome, why)
        if conn is None or welcome is None:
            if conn is not None:
                await conn.close()
            self.add("stream", "a connection to run the stream checks on", why, None, CHOICE)
            return
        keepalive = asyncio.create_task(self._keepalive(conn))
        try:
            await self._stream_checks(conn)
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            await conn.close()

    async def _keepalive(self, conn: Conn) -> None:
        for n in itertools.count(1):
            await asyncio.sleep(
                self.opts.heartbeat_interval
            )  # the heartbeat cadence, not a wait for an event
            if not await conn.send({"code": HEARTBEAT, "trace": f"cf-keepalive-{n}"}):
                return

    def _gone(self, conn: Conn, checks: Iterable[tuple[str, str, str]]) -> bool:
        """When the server has closed the connection, the remaining checks on it are skipped, saying why."""
        if not conn.closed:
            return False
        for check, expected, source in checks:
            self.add(check, expected, f"not run: the connection was {conn.close_text()}", None, source)
        return True

    async def _request(
        self,
        conn: Conn,
        check: str,
        frame: dict[str, Any],
        ack: int,
        source: str,
        expected: str | None = None,
    ) -> Frame | None:
        """Send a request and judge the reply with its trace: exactly the ack, valid against its schema."""
        trace = frame["trace"]
        expected = expected or f"{frame['code']} -> {_ack_text(ack, trace)}"
        if self._gone(conn, [(check, expected, source)]):
            return None
        start = conn.mark()
        await conn.send(frame)
        reply = await conn.find(
            lambda o: isinstance(o, dict) and trace in (o.get("trace"), o.get("traceId")),
            self.opts.reply_timeout,
            start,
        )
        if reply is None:
            self.add(
                check,
                expected,
                f"no reply within {self.opts.reply_timeout:g} s ({conn.close_text()})",
                False,
                source,
            )
            return None
        obj = reply.obj
        bad = _server_violation(obj)
        ok = obj == {"code": ack, "trace": trace, "msg": "ok"} and bad is None
        self.add(check, expected, _compact(obj) + (f"; {bad}" if bad else ""), ok, source)
        return reply

    async def _stream_checks(self, conn: Conn) -> None:
        first = self.first
        await self._request(
            conn,
            "heartbeat.ack",
            {"code": HEARTBEAT, "trace": "cf-hb-ack", "ack": 1},
            HEARTBEAT_ACK,
            CAPTURE,
            f'10010 with "ack":1 -> {_ack_text(HEARTBEAT_ACK, "cf-hb-ack")}',
        )
        start = conn.mark()
        await self._request(
            conn,
            "subscribe.trade",
            {"code": SUB_TRADE, "trace": "cf-sub-trade", "data": {"codes": first}},
            SUB_TRADE_ACK,
            CAPTURE,
        )
        await self._request(
            conn,
            "subscribe.depth",
            {"code": SUB_DEPTH, "trace": "cf-sub-depth", "data": {"codes": first}},
            SUB_DEPTH_ACK,
            CAPTURE,
        )
        kline = {
            "code": SUB_KLINE,
            "trace": "cf-sub-kline",
            "data": {"arr": [{"type": 1, "codes": first}, {"type": 2, "codes": first}]},
        }
        await self._request(
            conn,
            "subscribe.kline",
            kline,
            SUB_KLINE_ACK,
            CAPTURE,
            f"10006 with 2 arr entries -> one {_ack_text(SUB_KLINE_ACK, 'cf-sub-kline')}",
        )
        await self._pushes(conn, start)
        await self._second_subscribe(conn)
        await self._errors(conn)
        await self._unsubscribe(conn)

    async def _pushes(self, conn: Conn, start: int) -> None:
        o, first = self.opts, self.first
        kinds = {PUSH_TRADE: "trade", PUSH_DEPTH: "depth", PUSH_KLINE: "kline"}

        def enough() -> bool:
            objs = conn.objects(start)
            n = {code: sum(x.get("code") == code for x in objs) for code in kinds}
            ktypes = {
                x["data"].get("ty")
                for x in objs
                if x.get("code") == PUSH_KLINE and isinstance(x.get("data"), dict)
            }
            return min(n.values()) >= o.min_pushes and {1, 2} <= ktypes

        checks = [(f"push.{name}", f"{code} pushes", CAPTURE) for code, name in kinds.items()]
        if self._gone(conn, checks):
            return
        began = time.monotonic()
        await conn.until(enough, o.push_seconds)
        window = f"{time.monotonic() - began:.1f} s"
        objs = conn.objects(start)
        for code, name in kinds.items():
            pushes = [x for x in objs if x.get("code") == code]
            bad = [v for x in pushes if (v := _server_violation(x))]
            symbols = sorted({str(x["data"].get("s")) for x in pushes if isinstance(x.get("data"), dict)})
            expected = f"{code} pushes for {first}, valid against server/{name}-push.json"
            extra = ""
            ok = bool(pushes) and not bad and symbols == [first]
            if code == PUSH_KLINE:
                types = sorted(
                    {x["data"].get("ty") for x in pushes if isinstance(x.get("data"), dict)}, key=str
                )
                expected += ", for types 1 and 2"
                extra = f", types {types}"
                ok = ok and types == [1, 2]
            observed = (
                f"{len(pushes)} in {window}, {len(bad)} invalid, symbols {symbols}{extra}"
                + (f"; first: {bad[0]}" if bad else "")
                + ("" if pushes else f" ({conn.close_text()}; a closed market streams nothing)")
            )
            self.add(f"push.{name}", expected, observed, ok, CAPTURE, "\n".join(bad[:20]))
        klines = [x for x in objs if x.get("code") == PUSH_KLINE and isinstance(x.get("data"), dict)]
        t_types = sorted({type(x["data"].get("t")).__name__ for x in klines})
        self.add(
            "push.kline_t_string",
            'kline "t" a string of epoch seconds (the docs say Long)',
            f"t is {', '.join(t_types)}" if klines else "no kline pushes",
            t_types == ["str"] if klines else None,
            CAPTURE,
        )
        acks = sum(1 for x in objs if x.get("code") == SUB_KLINE_ACK and x.get("trace") == "cf-sub-kline")
        self.add(
            "subscribe.kline_one_ack",
            "one 10007 for a subscribe with 2 arr entries",
            f"{acks} x 10007 in {window}",
            acks == 1,
            CAPTURE,
        )

    async def _second_subscribe(self, conn: Conn) -> None:
        o, first, second = self.opts, self.first, self.second
        check = "subscribe.second_adds"
        expected = f"a 2nd 10000 ({second}) adds to the 1st: trade pushes for {first} and {second}"
        reply = await self._request(
            conn,
            "subscribe.second_ack",
            {"code": SUB_TRADE, "trace": "cf-sub-trade-2", "data": {"codes": second}},
            SUB_TRADE_ACK,
            CAPTURE,
        )
        if reply is None:
            self.add(check, expected, "not run: no ack for the 2nd subscribe", None, CHOICE)
            return
        start = conn.frames.index(reply) + 1

        def symbols() -> set[str]:
            return {
                str(x["data"].get("s"))
                for x in conn.objects(start)
                if x.get("code") == PUSH_TRADE and isinstance(x.get("data"), dict)
            }

        await conn.until(lambda: {first, second} <= symbols(), o.push_seconds)
        seen = sorted(symbols())
        verdict = "adds" if seen == sorted({first, second}) else "replaces" if seen == [second] else "?"
        self.add(
            check,
            expected,
            f"pushes for {seen} in the {o.push_seconds:g} s after the ack ({verdict})",
            verdict == "adds",
            CHOICE,
        )

    async def _errors(self, conn: Conn) -> None:
        probes: list[tuple[str, Any, int, str | None, str, str]] = [
            (
                "error.not_json",
                "{oops",
                NOT_JSON,
                None,
                SDK,
                '"{oops" (not JSON) -> error frame 515: traceId, msg, no data',
            ),
            (
                "error.param_lost",
                {"code": SUB_TRADE, "trace": "cf-507"},
                PARAM_LOST,
                "Param lost：data",
                CAPTURE,
                "",
            ),
            (
                "error.unknown_code",
                {"code": 10042, "trace": "cf-506", "data": {}},
                PARAM_ERROR,
                "Param error：The code is out of range",
                CAPTURE,
                "",
            ),
        ]
        for check, frame, code, msg, source, expected in probes:
            trace = frame.get("trace", "") if isinstance(frame, dict) else ""
            want = {"traceId": trace, "code": code, "msg": msg}
            expected = expected or f"{_compact(frame)} -> {_compact(want)} (no data)"
            if self._gone(conn, [(check, expected, source)]):
                continue
            start = conn.mark()
            await conn.send(frame)
            reply = await conn.find(
                lambda x: isinstance(x, dict) and ("traceId" in x or is_error(x.get("code"))),
                self.opts.reply_timeout,
                start,
            )
            if reply is None:
                self.add(
                    check,
                    expected,
                    f"no error frame within {self.opts.reply_timeout:g} s ({conn.close_text()})",
                    False,
                    source,
                )
                continue
            obj = reply.obj
            bad = _server_violation(obj)
            ok = (
                obj.get("code") == code
                and obj.get("traceId") == trace
                and "data" not in obj
                and (msg is None or obj.get("msg") == msg)
                and bad is None
            )
            self.add(check, expected, _compact(obj) + (f"; {bad}" if bad else ""), ok, source)
        await self._request(
            conn,
            "error.connection_survives",
            {"code": HEARTBEAT, "trace": "cf-after-errors", "ack": 1},
            HEARTBEAT_ACK,
            CHOICE,
            "after the error frames the connection still serves: 10010 ack:1 -> 10011",
        )

    async def _unsubscribe(self, conn: Conn) -> None:
        o, first, second = self.opts, self.first, self.second
        trade = {"code": UNSUB_TRADE, "trace": "cf-unsub-trade", "data": {"codes": f"{first},{second}"}}
        depth = {"code": UNSUB_DEPTH, "trace": "cf-unsub-depth", "data": {"codes": first}}
        kline = {
            "code": UNSUB_KLINE,
            "trace": "cf-unsub-kline",
            "data": {"codes": first, "klineTypes": "1,2"},
        }
        await self._request(
            conn,
            "unsubscribe.trade",
            trade,
            UNSUB_ACK,
            DOC,
            f"11000 -> {_ack_text(UNSUB_ACK, 'cf-unsub-trade')} (captures saw none in 2 s)",
        )
        await self._request(conn, "unsubscribe.depth", depth, UNSUB_ACK, CAPTURE)
        await self._request(
            conn,
            "unsubscribe.kline",
            kline,
            UNSUB_ACK,
            DOC,
            f'11002 with klineTypes "1,2" -> {_ack_text(UNSUB_ACK, "cf-unsub-kline")}',
        )
        silence = (
            f"no pushes in the {o.quiet_seconds:g} s after the unsubscribes "
            f"({o.settle_seconds:g} s allowed in flight)"
        )
        no_ack = f"10010 without ack: no reply within {o.quiet_seconds:g} s"
        if self._gone(conn, [("unsubscribe.silence", silence, DOC), ("heartbeat.no_ack", no_ack, CAPTURE)]):
            return
        await conn.until(lambda: False, o.settle_seconds)  # pushes already in flight when the acks left
        start = conn.mark()
        await conn.send({"code": HEARTBEAT, "trace": "cf-hb-no-ack"})
        await conn.until(lambda: False, o.quiet_seconds)
        objs = conn.objects(start)
        pushes = [x for x in objs if x.get("code") in (PUSH_TRADE, PUSH_DEPTH, PUSH_KLINE)]
        by_code = {c: sum(x.get("code") == c for x in pushes) for c in sorted({x["code"] for x in pushes})}
        self.add(
            "unsubscribe.silence",
            silence,
            f"{len(pushes)} pushes {by_code}" if pushes else "none",
            not pushes and not conn.closed,
            DOC,
        )
        replies = [x for x in objs if "cf-hb-no-ack" in (x.get("trace"), x.get("traceId"))]
        self.add(
            "heartbeat.no_ack",
            no_ack,
            _compact(replies[0]) if replies else f"no reply ({conn.close_text()})",
            not replies and not conn.closed,
            CAPTURE,
        )

    # -- REST ----------------------------------------------------------------------------------------------

    async def _http(
        self, method: str, path: str, key: str | None = _DEFAULT_KEY, body: bytes | None = None
    ) -> tuple[int | None, bytes, str]:
        """(status, body, error text): urllib in a thread, one call at a time, paced like the frames."""
        await self._wait_for(self.rest_pacer)
        self.rest_calls += 1
        key = self.target.api_key if key is _DEFAULT_KEY else key
        headers = {"Accept": "application/json"} | ({"apiKey": key} if key is not None else {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.target.http_base + path, data=body, headers=headers, method=method)

        def call() -> tuple[int | None, bytes, str]:
            try:
                with urllib.request.urlopen(req, timeout=self.opts.reply_timeout) as resp:
                    return resp.status, resp.read(), ""
            except urllib.error.HTTPError as e:
                return e.code, e.read(), ""
            except (urllib.error.URLError, OSError) as e:
                return None, b"", f"{type(e).__name__}: {e}"

        return await asyncio.to_thread(call)

    async def _rest_envelope(
        self, method: str, path: str, envelope: str, body: dict[str, Any] | None = None
    ) -> tuple[int | None, dict[str, Any] | None, list[str]]:
        """One call: (HTTP status, the envelope if the body is a JSON object, what is wrong so far: the
        status, the body, the envelope against its schema, a `ret` other than 200)."""
        status, raw, err = await self._http(
            method, path, body=None if body is None else json.dumps(body).encode()
        )
        env = _parse(raw)
        if status != 200:
            return status, None, [f"HTTP {status}" + (f" {err}" if err else "")]
        if not isinstance(env, dict):
            return status, None, [f"body is not a JSON object: {_compact(raw.decode('utf-8', 'replace'))}"]
        problems = []
        if v := _doc_violation(env, envelope):
            problems.append(f"envelope: {v}")
        if env.get("ret") != 200:
            problems.append(f"ret {env.get('ret')} {env.get('msg')!r}")
        return status, env, problems

    async def _rest_rows(
        self,
        check: str,
        path: str,
        row_schema: str,
        source: str,
        expect: str = "",
        judge: Callable[[list[Any]], str | None] | None = None,
        method: str = "GET",
        body: dict[str, Any] | None = None,
    ) -> None:
        """HTTP 200 with the envelope (ret 200), every row valid against `row_schema`, and `judge`'s rule."""
        status, env, problems = await self._rest_envelope(method, path, "rest/envelope.json", body)
        expected = f"{method} {path}: HTTP 200, ret 200, rows valid against {row_schema}" + (
            f", {expect}" if expect else ""
        )
        rows: list[Any] = []
        if env is not None:
            rows = env.get("data") if isinstance(env.get("data"), list) else []
            bad = [v for row in rows if (v := _doc_violation(row, row_schema))]
            if bad:
                problems.append(f"{len(bad)} invalid rows, first: {bad[0]}")
            if not problems and judge is not None and (why := judge(rows)):
                problems.append(why)
        observed = f"HTTP {status}, {len(rows)} rows" + (f"; {'; '.join(problems)}" if problems else "")
        self.add(check, expected, observed, not problems, source)

    async def _rest_object(self, check: str, path: str, data_schema: str, source: str) -> None:
        """HTTP 200 with the one-object envelope (ret 200) and `data` valid against `data_schema`."""
        status, env, problems = await self._rest_envelope("GET", path, "rest/object-envelope.json")
        expected = f"GET {path}: HTTP 200, ret 200, data valid against {data_schema}"
        if env is not None and env.get("ret") == 200 and (v := _doc_violation(env.get("data"), data_schema)):
            problems.append(f"data: {v}")
        observed = f"HTTP {status}" + (f"; {'; '.join(problems)}" if problems else "")
        self.add(check, expected, observed, not problems, source)

    async def rest(self) -> None:
        b, first = self.opts.business, self.first
        sym_type, market = DEFAULT_SYMBOLS.get(b, ("", "", "CRYPTO", "US"))[2:]

        def only_first(rows: list[Any]) -> str | None:
            got = sorted({r.get("s") for r in rows})
            return None if got == [first] else f"symbols {got}, not [{first!r}]"

        def bars(rows: list[Any]) -> str | None:
            if why := only_first(rows):
                return why
            ts = [int(x["t"]) for x in rows[0]["respList"]]
            if not 1 <= len(ts) <= 10:
                return f"{len(ts)} bars"
            return None if ts == sorted(ts, reverse=True) else "bars are not newest first"

        def has_first(rows: list[Any]) -> str | None:
            return None if any(r.get("symbol") == first for r in rows) else f"{first} is not listed"

        def some(rows: list[Any]) -> str | None:
            return None if rows else "no rows"

        await self._rest_rows(
            "rest.batch_trade",
            f"/{b}/batch_trade/{first}",
            "rest/trade-row.json",
            CAPTURE,
            f"one row for {first}",
            only_first,
        )
        await self._rest_rows(
            "rest.batch_depth",
            f"/{b}/batch_depth/{first}",
            "rest/depth-row.json",
            CAPTURE,
            f"one row for {first}",
            only_first,
        )
        await self._rest_rows(
            "rest.batch_kline",
            f"/{b}/batch_kline/1/10/{first}",
            "rest/kline-row.json",
            CAPTURE,
            "1..10 bars newest first",
            bars,
        )
        await self._rest_rows(
            "rest.v2_batch_kline",
            f"/{b}/v2/batch_kline",
            "rest/kline-row.json",
            SDK,
            "1..10 bars newest first",
            bars,
            "POST",
            {"klineType": 1, "klineNum": 10, "codes": first},
        )
        await self._rest_rows(
            "rest.symbols",
            f"/common/basic/symbols?type={sym_type}",
            "rest/symbol-row.json",
            DOC,
            f"{first} listed",
            has_first,
        )
        await self._rest_rows(
            "rest.symbols_info",
            f"/common/basic/symbols/info?type={sym_type}&symbols={first}",
            "rest/symbol-info-row.json",
            CHOICE,
            f"a row for {first}",
            has_first,
        )
        await self._rest_rows(
            "rest.markets", "/common/basic/markets", "rest/market-row.json", CHOICE, "rows", some
        )
        today = datetime.now(UTC).date()
        begin, end = (today - timedelta(days=13)).strftime("%Y%m%d"), today.strftime("%Y%m%d")
        await self._rest_rows(
            "rest.trading_days",
            f"/common/basic/markets/trading_days?market={market}&beginDay={begin}&endDay={end}",
            "rest/trading-day-row.json",
            CHOICE,
            "rows (two weeks hold trading days)",
            some,
        )
        await self._rest_rows(
            "rest.trading_schedule",
            "/common/basic/markets/trading_schedule?type=FOREX",
            "rest/trading-schedule-row.json",
            DOC,
            "rows",
            some,
        )
        await self._rest_object("rest.package_info", "/package/info", "rest/package-info.json", SDK)
        await self._rest_errors()

    async def _rest_errors(self) -> None:
        b, first = self.opts.business, self.first
        status, raw, err = await self._http("GET", f"/{b}/batch_trade/{first}", key=BAD_KEY)
        body = _parse(raw)
        self.add(
            "rest.bad_key",
            'HTTP 401 {"code":401,"message":"Token invalid"}',
            f"HTTP {status} {_compact(raw.decode('utf-8', 'replace')) if raw else err}",
            status == 401 and body == {"code": 401, "message": "Token invalid"},
            CAPTURE,
        )
        status, raw, err = await self._http("GET", "/common/basic/symbols")
        body = _parse(raw)
        bad = _doc_violation(body, "rest/problem.json") if isinstance(body, dict) else "not a JSON object"
        self.add(
            "rest.missing_type",
            "GET /common/basic/symbols without type: HTTP 400, an RFC 7807 problem",
            f"HTTP {status} {_compact(raw.decode('utf-8', 'replace')) if raw else err}"
            + (f"; {bad}" if bad else ""),
            status == 400 and bad is None,
            SDK,
        )
        status, raw, err = await self._http("GET", "/stock/batch_trade/AAPL")
        body = _parse(raw)
        ret = body.get("ret") if isinstance(body, dict) else None
        self.add(
            "rest.no_suffix",
            "GET /stock/batch_trade/AAPL (no .US): HTTP 200, ret 500",
            f"HTTP {status}, ret {ret}" + (f"; {err}" if err else ""),
            status == 200 and ret == 500,
            CAPTURE,
        )

    # -- destructive probes --------------------------------------------------------------------------------

    def _close_result(self, check: str, conn: Conn, after: str) -> None:
        want = self.opts.expect_close_code
        self.add(
            check,
            f"after {after} the server closes with code {want}",
            conn.close_text() if conn.closed else f"still open {self.opts.reply_timeout:g} s later",
            conn.closed and conn.close_code == want,
            CHOICE,
        )

    async def rate_probe(self) -> None:
        o = self.opts
        n = o.rate_limit + 1
        expected = f"{n} frames at once -> 501 'Request frequency exceed the limit…', then a close"
        conn, _, welcome, why = await self._open(o.business)
        if conn is None or welcome is None:
            self.add("limit.rate_501", expected, why, False, DOC)
            return
        try:
            start = conn.mark()
            for i in range(n):
                if not await conn.send({"code": HEARTBEAT, "trace": f"cf-rate-{i}"}, paced=False):
                    break
            err = await conn.find(
                lambda x: isinstance(x, dict) and is_error(x.get("code")), o.reply_timeout, start
            )
            obj = err.obj if err is not None else None
            self.add(
                "limit.rate_501",
                expected,
                _compact(obj) if obj is not None else f"no error frame ({conn.close_text()})",
                obj is not None
                and obj.get("code") == RATE_LIMIT
                and str(obj.get("msg", "")).startswith("Request frequency exceed the limit")
                and _server_violation(obj) is None,
                DOC,
            )
            await conn.until(lambda: conn.closed, o.reply_timeout)
            self._close_result("limit.rate_501_close", conn, "501")
        finally:
            await conn.close()

    async def heartbeat_probe(self) -> None:
        o = self.opts
        expected = (
            f"silence -> 513 'Websocket heartbeat timeout' after {o.heartbeat_timeout:g} s, then a close"
        )
        conn, _, welcome, why = await self._open(o.business)
        if conn is None or welcome is None:
            self.add("limit.heartbeat_513", expected, why, False, DOC)
            return
        try:
            slack = max(2.0, 0.25 * o.heartbeat_timeout)
            err = await conn.find(
                lambda x: isinstance(x, dict) and is_error(x.get("code")),
                o.heartbeat_timeout + slack,
                conn.mark(),
            )
            obj = err.obj if err is not None else None
            after = err.at - welcome.at if err is not None else 0.0
            self.add(
                "limit.heartbeat_513",
                expected,
                f"{_compact(obj)} after {after:.1f} s"
                if obj is not None
                else f"no error frame in {o.heartbeat_timeout + slack:g} s ({conn.close_text()})",
                obj is not None
                and obj.get("code") == HEARTBEAT_TIMEOUT
                and obj.get("msg") == "Websocket heartbeat timeout"
                and after >= 0.9 * o.heartbeat_timeout
                and _server_violation(obj) is None,
                DOC,
            )
            await conn.until(lambda: conn.closed, o.reply_timeout)
            self._close_result("limit.heartbeat_513_close", conn, "513")
        finally:
            await conn.close()

    async def connections_probe(self) -> None:
        o = self.opts
        n = o.connections()
        expected = f"{n} connections open (the plan's), the next one is refused with HTTP 427"
        held: list[websockets.ClientConnection] = []
        observed = ""
        ok = False
        try:
            loop = asyncio.get_running_loop()
            # Slots of the connections this run just closed may take a moment to be released.
            deadline = loop.time() + o.reply_timeout
            while len(held) < n:
                try:
                    held.append(await self._connect(o.business))
                except InvalidStatus as e:
                    if e.response.status_code != 427 or loop.time() > deadline:
                        observed = f"connection {len(held) + 1} of {n} refused: HTTP {e.response.status_code}"
                        break
                    await asyncio.sleep(0.1)  # a slot still held by a closed connection: poll with a deadline
            if len(held) == n:
                try:
                    extra = await self._connect(o.business)
                except InvalidStatus as e:
                    status = e.response.status_code
                    observed, ok = f"{n} opened, then HTTP {status}", status == 427
                else:
                    observed = f"{n} opened, and connection {n + 1} was accepted too"
                    held.append(extra)
        except (InvalidHandshake, OSError, TimeoutError) as e:
            observed = f"{len(held)} opened, then {type(e).__name__}: {e}"
        finally:
            await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
        self.add("limit.connections_427", expected, observed, ok, TUTORIAL)


async def run(target: Target, opts: Options) -> Report:
    """Run the battery against `target` (raises Unreachable when it takes no TCP connection)."""
    return await Runner(target, opts).run()


# -- command line ------------------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """`infoway-mock conformance`: registered by cli.build_parser."""
    c = sub.add_parser(
        "conformance",
        help="run the contract checks against any Infoway server (the live one, a gateway, a mock)",
        description="Checks a server against what the mock encodes and prints a table: check, expected, "
        "observed, verdict, source (capture = seen live; vendor doc / vendor SDK / tutorial = documented; "
        "our choice = an OPEN item the mock guessed). Safe by default: one connection at a time, at most "
        "--max-frames-per-minute frames a minute, no limit probes. Exit status: 0 all pass, 1 a check "
        "failed, 2 the server could not be reached or the arguments are wrong.",
    )
    c.add_argument(
        "--url",
        default=os.environ.get("INFOWAY_URL"),
        help="the server (ws://, wss://, http://, https://; path defaults to /ws) (default: env INFOWAY_URL)",
    )
    c.add_argument(
        "--api-key",
        default=os.environ.get("INFOWAY_API_KEY"),
        help="a valid API key (default: env INFOWAY_API_KEY)",
    )
    c.add_argument(
        "--business", default="crypto", help="business of the stream checks (default crypto: it streams 24/7)"
    )
    c.add_argument("--symbols", help="two symbols of that business, A,B (default: the vendor's examples)")
    c.add_argument("--rest-url", help="REST base URL (default: the same host over http(s))")
    c.add_argument("--no-rest", dest="rest", action="store_false", help="skip the REST checks")
    c.add_argument("--no-banner", dest="banner", action="store_false", help="skip the stock banner check")
    c.add_argument(
        "--json", dest="json_path", metavar="FILE", help="also write the results as JSON ('-': stdout)"
    )
    c.add_argument(
        "--destructive",
        action="store_true",
        help="add the limit probes (501, 513, 427): only for servers you own",
    )
    t = c.add_argument_group("timing and bounds")
    d = Options()
    t.add_argument(
        "--push-seconds",
        type=float,
        default=d.push_seconds,
        help=f"longest wait for pushes (default {d.push_seconds:g})",
    )
    t.add_argument(
        "--min-pushes",
        type=int,
        default=d.min_pushes,
        help=f"pushes of each kind that end the wait early (default {d.min_pushes})",
    )
    t.add_argument(
        "--quiet-seconds",
        type=float,
        default=d.quiet_seconds,
        help=f"silence expected after unsubscribing (default {d.quiet_seconds:g})",
    )
    t.add_argument(
        "--settle-seconds",
        type=float,
        default=d.settle_seconds,
        help=f"pushes in flight allowed after an unsubscribe ack (default {d.settle_seconds:g})",
    )
    t.add_argument(
        "--reply-timeout",
        type=float,
        default=d.reply_timeout,
        help=f"longest wait for a reply (default {d.reply_timeout:g})",
    )
    t.add_argument(
        "--heartbeat-interval",
        type=float,
        default=d.heartbeat_interval,
        help=f"keep-alive 10010 period (default {d.heartbeat_interval:g})",
    )
    t.add_argument(
        "--max-frames-per-minute",
        type=int,
        default=d.max_frames_per_minute,
        help=f"frame budget of the run (default {d.max_frames_per_minute}; above {LIVE_RATE_LIMIT} only "
        "with --destructive)",
    )
    p = c.add_argument_group("destructive probes (with --destructive)")
    p.add_argument(
        "--rate-limit",
        type=int,
        default=d.rate_limit,
        help=f"the server's frames per minute; the probe sends one more (default {d.rate_limit})",
    )
    p.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=d.heartbeat_timeout,
        help=f"the server's heartbeat timeout in s (default {d.heartbeat_timeout:g})",
    )
    p.add_argument(
        "--plan",
        choices=sorted(BUILTIN_PLANS),
        default=d.plan,
        help=f"the key's plan, for its connection limit (default {d.plan})",
    )
    p.add_argument("--max-connections", type=int, help="the key's connection limit (default: the plan's)")
    p.add_argument(
        "--expect-close-code",
        type=int,
        default=d.expect_close_code,
        help=f"close code expected after 501/513 (default {d.expect_close_code}, the mock's; OPEN live)",
    )
    c.set_defaults(run=command)


def options_from_args(args: argparse.Namespace) -> Options:
    symbols = None
    if args.symbols:
        parts = [s.strip() for s in args.symbols.split(",") if s.strip()]
        if len(parts) != 2 or parts[0] == parts[1]:
            raise ValueError(f"--symbols wants two different symbols A,B, not {args.symbols!r}")
        symbols = (parts[0], parts[1])
    if args.max_frames_per_minute > LIVE_RATE_LIMIT and not args.destructive:
        raise ValueError(
            f"--max-frames-per-minute above {LIVE_RATE_LIMIT} (the live limit) needs --destructive"
        )
    for name in ("push_seconds", "quiet_seconds", "reply_timeout", "heartbeat_interval", "heartbeat_timeout"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be above 0")
    if args.min_pushes < 1 or args.rate_limit < 1 or args.max_frames_per_minute < 1:
        raise ValueError("--min-pushes, --rate-limit and --max-frames-per-minute must be at least 1")
    opts = Options(
        business=args.business,
        symbols=symbols,
        banner=args.banner,
        rest=args.rest,
        destructive=args.destructive,
        push_seconds=args.push_seconds,
        min_pushes=args.min_pushes,
        quiet_seconds=args.quiet_seconds,
        settle_seconds=args.settle_seconds,
        reply_timeout=args.reply_timeout,
        heartbeat_interval=args.heartbeat_interval,
        max_frames_per_minute=args.max_frames_per_minute,
        rate_limit=args.rate_limit,
        heartbeat_timeout=args.heartbeat_timeout,
        max_connections=args.max_connections,
        plan=args.plan,
        expect_close_code=args.expect_close_code,
    )
    opts.pair()  # an unknown business without --symbols is a usage error before anything is sent
    return opts


def command(args: argparse.Namespace) -> int:
    if not args.url:
        raise ValueError("a server URL is needed (--url or INFOWAY_URL)")
    if not args.api_key:
        raise ValueError("an API key is needed (--api-key or INFOWAY_API_KEY)")
    target = Target.parse(args.url, args.api_key, args.rest_url)
    opts = options_from_args(args)
    try:
        report = asyncio.run(run(target, opts))
    except Unreachable as e:
        print(f"infoway-mock conformance: {e}", file=sys.stderr)
        return 2
    # With the JSON on stdout the table goes to stderr, so stdout stays one parseable document.
    print(report.table(), file=sys.stderr if args.json_path == "-" else sys.stdout)
    if args.json_path:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if args.json_path == "-":
            sys.stdout.write(text)
        else:
            path = Path(args.json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return 0 if report.verdict == PASS else 1
