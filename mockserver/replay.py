"""Serve a capture again, disconnects included: `infoway-mock serve --replay FILE [--speed X] [--loop]`.

A capture is cut into episodes, one per recorded WebSocket connection that opened (pure: `Timeline`).
Each connection a client opens to the replaying mock plays the next episode of its socket and business,
in the order they were recorded, so a client that reconnected three times in production replays through
the same three connections, each with its own pushes, silences and ending. An episode's clock starts when
its first subscribe arrives (the recorded one's at the recorded subscribe), so the client's own connect
and subscribe delays shift nothing; what came before the recorded subscribe is played relative to the
open. At each recorded time the client gets:

- the pushes recorded then, for what it is subscribed to (hub membership at that moment);
- the frames the server sent of its own accord (error frames that answer no request, e.g. 513, and
  anything that is not a push or a reply), exactly as recorded;
- the recorded end: a close frame with the recorded code and reason, or a reset; and when the recorded
  client's next handshakes were refused (a restart), the same refusal for the same time.

Replies (welcome, acks, heartbeat acks, error frames answering a request) are not replayed: the mock's
session answers the client's own requests, as always. A client's own close is not replayed either. What a
client subscribes to that the capture lacks is acked and stays silent; the contract report says so.

Pacing is one timer per connection, armed at its next recorded time (items due within `SLACK` go out in
one write). `--speed X` divides every offset by X. `--speed max` (and the firehose) send everything in
large pre-joined writes, waiting for the client to drain between them (Connection.on_drain), each frame
checked against the contract once, when the capture is loaded or the market rendered, never per send.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import logging
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import orjson

from infoway_mock import schemas
from infoway_mock.schemas import capture as capture_format
from infoway_mock.schemas.codes import (
    ACK_CODES,
    LEGACY_TRADE_PUSH,
    PUSH_DEPTH,
    PUSH_KLINE,
    PUSH_NEWS,
    PUSH_TRADE,
    SUB_DEPTH,
    SUB_KLINE,
    SUB_NEWS,
    SUB_TRADE,
    WELCOME,
)

from .fanout import text_frame
from .outbox import binary_frame
from .wire import end_after_flush

log = logging.getLogger("infoway.mock")

PUSH, RAW, CLOSE, RESET, REFUSE = range(5)
SLACK = 0.001  # items due within this of each other go out in one write (the loop's timers have ~1 ms)
# asyncio's timers fire 0-1 ms late (epoll waits whole milliseconds, rounded up): armed this much early,
# a push goes out within half a millisecond of its offset either way, instead of 0-1 ms late.
EARLY = 0.0005
CHUNK = 256 * 1024  # bytes per write at --speed max
HIGH_WATER = 1024 * 1024  # --speed max: wait for the client to drain above this (kept under the outbox bound)
MAX_NOTES = 1000  # report entries kept (connections, missing subscriptions, disconnects); counts go on
_SUBSCRIBES = frozenset({SUB_TRADE, SUB_DEPTH, SUB_KLINE, SUB_NEWS})
_BANNER = "You have permission to subscribe to all market data"
# Hub channel kinds (session.Channel[0]) to the hub's maps, for the push filter.
_CHANNELS = {"trade": "trades", "depth": "depth", "kline": "klines", "news": "news"}


# -- the pure part: a capture cut into episodes ----------------------------------------------------------


@dataclass(slots=True)
class Item:
    """One thing to do at an offset: `at` is seconds after the episode's anchor (negative: before it,
    played relative to the open), before the speed-up."""

    at: float
    kind: int
    wire: bytes = b""  # PUSH/RAW: the frame as it goes out
    code: int = 0  # PUSH/RAW: the frame code (for the metrics); CLOSE: close code; REFUSE: HTTP status
    channel: str = ""  # PUSH: trade | depth | kline | news
    key: Any = None  # PUSH: the hub key (symbol, (symbol, kline type), language)
    reason: str = ""  # CLOSE
    seconds: float = 0.0  # REFUSE: how long


@dataclass(frozen=True)
class EpisodeIndex:
    by_key: dict[tuple[str, Any], list[int]]  # item indices of each key's pushes, in order
    others: list[int]  # item indices of everything that is not a push
    wires: list[bytes]
    codes: list[int]


@dataclass
class Episode:
    conn: int  # the connection's id in the capture
    path: str
    business: str
    opened: float  # capture time of the open
    anchor: float  # capture time the offsets count from: the first subscribe, else the open
    on_subscribe: bool  # the episode starts at the client's first subscribe (else at its open)
    items: list[Item] = field(default_factory=list)
    end: float = 0.0  # seconds after the anchor when the recorded connection ended (or the capture did)
    ended_by: str | None = None  # server | proxy | client | None (still open when the capture ended)
    _index: EpisodeIndex | None = field(default=None, repr=False, compare=False)

    @property
    def lead(self) -> float:
        return self.anchor - self.opened

    @property
    def span(self) -> float:
        """How long one pass lasts after the anchor (what --loop repeats); never 0, so a loop cannot spin."""
        last = max((i.at for i in self.items), default=0.0)
        return max(self.end, last, 0.001)

    def keys(self) -> set[tuple[str, Any]]:
        """(channel, hub key) of every push."""
        return set(self.index().by_key)

    def index(self) -> EpisodeIndex:
        """The items by key, built once (a firehose episode holds millions of items)."""
        if self._index is None:
            by_key: dict[tuple[str, Any], list[int]] = {}
            others = []
            for n, item in enumerate(self.items):
                if item.kind == PUSH:
                    k = (item.channel, item.key)
                    got = by_key.get(k)
                    if got is None:
                        by_key[k] = [n]
                    else:
                        got.append(n)
                else:
                    others.append(n)
            wires = [i.wire for i in self.items]
            self._index = EpisodeIndex(by_key, others, wires, [i.code for i in self.items])
        return self._index


@dataclass
class Timeline:
    path: str
    header: dict[str, Any]
    episodes: dict[tuple[str, str], list[Episode]]  # (path, business) -> in the order they opened
    violations: list[str] = field(default_factory=list)  # recorded frames that break the contract
    refused_first: list[tuple[float, int]] = field(default_factory=list)  # refusals before any open
    template: bool = False  # the firehose: every connection plays the one episode
    duration: float = 0.0  # the capture's length, seconds

    def for_socket(self, path: str, business: str) -> list[Episode]:
        """The episodes a connection of this socket and business plays, in order (the firehose's one
        template episode plays to every market-data connection)."""
        if self.template:
            return next(iter(self.episodes.values())) if path == "/ws" else []
        return self.episodes.get((path, business), [])

    def covered(self, path: str, business: str) -> set[tuple[str, Any]]:
        out: set[tuple[str, Any]] = set()
        for ep in self.for_socket(path, business):
            out |= ep.keys()
        return out

    def symbols(self) -> dict[str, str]:
        """Symbol -> business, for every symbol the capture streams (REST knows them too)."""
        out = {}
        for (path, business), eps in self.episodes.items():
            if path == "/ws" and not self.template:
                for ep in eps:
                    for channel, key in ep.keys():
                        out[key[0] if channel == "kline" else key] = business
        return out


def push_key(obj: Any) -> tuple[str, Any] | None:
    """(channel, hub key) of a push frame, or None if it is not a well-formed push."""
    if not isinstance(obj, dict) or "traceId" in obj:
        return None
    code, data = obj.get("code"), obj.get("data")
    if not isinstance(data, dict):
        return None
    if code in (PUSH_TRADE, LEGACY_TRADE_PUSH) and isinstance(data.get("s"), str):
        return "trade", data["s"]
    if code == PUSH_DEPTH and isinstance(data.get("s"), str):
        return "depth", data["s"]
    if code == PUSH_KLINE and isinstance(data.get("s"), str) and type(data.get("ty")) is int:
        return "kline", (data["s"], data["ty"])
    if code == PUSH_NEWS and isinstance(data.get("lang"), str):
        return "news", data["lang"]
    return None


def _trace(obj: Any) -> str | None:
    return obj.get("trace") if isinstance(obj, dict) and isinstance(obj.get("trace"), str) else None


def build_timeline(cap: capture_format.Capture, *, check: bool = True) -> Timeline:
    """Cut a capture into episodes. Every recorded server frame is checked against the contract once,
    here (violations are reported, and the frames still replayed as recorded: that is what was sent)."""
    opens: dict[int, dict[str, Any]] = {}
    events: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    attempts: list[tuple[float, str, str, int]] = []  # (t, path, business, status) of every handshake
    duration = 0.0
    for index, ev in enumerate(cap.events):
        duration = max(duration, ev.get("t", 0.0))
        kind = ev.get("ev")
        if kind == "open":
            business = ev.get("query", {}).get("business", "")
            attempts.append((ev["t"], ev["path"], business, ev["status"]))
            if ev["status"] == 101:
                opens[ev["conn"]] = ev
                events[ev["conn"]] = []
        elif kind in ("frame", "close", "reset") and ev.get("conn") in events:
            events[ev["conn"]].append((index, ev))
    timeline = Timeline(cap.path, cap.header, {}, duration=duration)
    for conn, opened in sorted(opens.items(), key=lambda kv: (kv[1]["t"], kv[0])):
        ep = _episode(conn, opened, events[conn], duration, timeline.violations if check else None)
        timeline.episodes.setdefault((ep.path, ep.business), []).append(ep)
        _add_refusal(ep, attempts, duration)
    first_open = min((o["t"] for o in opens.values()), default=math.inf)
    timeline.refused_first = [(t, s) for t, _, _, s in attempts if s != 101 and t < first_open]
    return timeline


def _episode(
    conn: int,
    opened: dict[str, Any],
    evs: list[tuple[int, dict[str, Any]]],
    duration: float,
    violations: list[str] | None,
) -> Episode:
    path = opened["path"]
    socket = "news" if path == "/news" else "ws"
    traces: set[str] = set()
    anchor = None
    for _, ev in evs:
        if ev["ev"] == "frame" and ev["dir"] == "send" and "text" in ev:
            try:
                obj = orjson.loads(ev["text"])
            except orjson.JSONDecodeError:
                continue
            trace = _trace(obj)
            if trace is not None:
                traces.add(trace)
            if anchor is None and isinstance(obj, dict) and obj.get("code") in _SUBSCRIBES:
                anchor = ev["t"]
    ep = Episode(
        conn,
        path,
        opened.get("query", {}).get("business", ""),
        opened["t"],
        opened["t"] if anchor is None else anchor,
        anchor is not None,
    )
    end = duration
    for index, ev in evs:
        at = ev["t"] - ep.anchor
        if ev["ev"] == "frame":
            if ev["dir"] == "recv":
                item = _recv_item(ev, at, traces, socket, index + 2, violations)
                if item is not None:
                    ep.items.append(item)
            continue
        end = ev["t"]
        ep.ended_by = ev["by"]
        if ev["by"] == "client":
            break  # the client's own doing: the replayed client decides for itself
        if ev["ev"] == "close":
            ep.items.append(Item(at, CLOSE, code=ev["code"], reason=ev.get("reason", "")))
        else:
            ep.items.append(Item(at, RESET, reason=ev["how"]))
        break
    ep.end = end - ep.anchor
    ep.items.sort(key=lambda i: i.at)  # stable: frames recorded together keep their order
    return ep


def _recv_item(
    ev: dict[str, Any], at: float, traces: set[str], socket: str, line: int, violations: list[str] | None
) -> Item | None:
    data = capture_format.frame_data(ev)
    if isinstance(data, bytes):
        return Item(at, RAW, binary_frame(data), code=-1)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None if data == _BANNER else Item(at, RAW, text_frame(data.encode()), code=-1)
    if violations is not None:
        try:
            schemas.validate_server_frame(obj, fast=True, socket=socket)
        except schemas.ContractError as e:
            if len(violations) < 100:
                violations.append(f"line {line}: {e.violations[0]}")
    wire = text_frame(data.encode())
    key = push_key(obj)
    code = obj.get("code") if isinstance(obj, dict) and type(obj.get("code")) is int else -1
    if key is not None:
        return Item(at, PUSH, wire, code=code, channel=key[0], key=key[1])
    if isinstance(obj, dict):
        if "traceId" in obj:
            # An error frame answering one of the recorded client's requests is the session's to give.
            return None if obj.get("traceId") in traces else Item(at, RAW, wire, code=code)
        if code == WELCOME or (code in ACK_CODES and "trace" in obj):
            return None
    return Item(at, RAW, wire, code=code)


def _add_refusal(ep: Episode, attempts: list[tuple[float, str, str, int]], duration: float) -> None:
    """If the handshakes after this connection ended were refused for a while (a restart, an outage),
    refuse the same way for the same time after the replayed end."""
    if ep.ended_by is None:
        return
    ended = ep.anchor + ep.end
    later = [(t, s) for t, p, b, s in attempts if t >= ended and p == ep.path and b == ep.business]
    refused = []
    for t, status in later:
        if status == 101:
            until = t
            break
        refused.append(status)
    else:
        until = duration
    if refused and refused[0] >= 400:
        ep.items.append(Item(ep.end, REFUSE, code=refused[0], seconds=max(until - ended, 0.001)))


# -- the scenario of a capture ----------------------------------------------------------------------------


def scenario_from_timeline(timeline: Timeline, name: str) -> dict[str, Any]:
    """A scenario document (scenario.schema.json) of the capture's disconnects and refusals, at the times
    they happened (seconds from the first open), aimed at every connection: to combine with the seeded
    market. Faults recorded by the proxy come as they were injected (without their target)."""
    cap = capture_format.read(timeline.path, validate=False) if timeline.path else None
    steps: list[dict[str, Any]] = []
    start = min(
        (ep.opened for eps in timeline.episodes.values() for ep in eps),
        default=0.0,
    )
    for eps in timeline.episodes.values():
        for ep in eps:
            if ep.ended_by not in ("server", "proxy"):
                continue
            at = round(max(0.0, ep.anchor + ep.end - start), 3)
            ending = next(i for i in ep.items if i.kind in (CLOSE, RESET))
            error = _preceding_error(ep, ending)
            if ending.kind == RESET:
                steps.append({"at": at, "fault": {"kind": "reset"}})
            elif error is not None and 1000 <= ending.code:
                steps.append(
                    {
                        "at": at,
                        "fault": {"kind": "error", "code": error[0], "msg": error[1], "then_close": True},
                    }
                )
            else:
                steps.append(
                    {"at": at, "fault": {"kind": "close", "code": ending.code, "reason": ending.reason}}
                )
            for item in ep.items:
                if item.kind == REFUSE:
                    fault = {"kind": "refuse", "code": item.code, "seconds": round(item.seconds, 3)}
                    steps.append({"at": at, "fault": fault})
    if cap is not None:
        for ev in cap.events:
            if ev.get("ev") == "fault":
                fault = {k: v for k, v in ev["fault"].items() if k not in ("conn", "key")}
                if fault.get("kind") not in ("close", "reset", "error"):  # those show as disconnects
                    steps.append({"at": round(max(0.0, ev["t"] - start), 3), "fault": fault})
    steps.sort(key=lambda s: s["at"])
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "capture"
    doc: dict[str, Any] = {
        "name": slug if slug[0].isalnum() else f"c-{slug}",
        "description": f"The disconnects and faults of {Path(timeline.path).name}, "
        f"recorded {timeline.header.get('started', '?')}.",
        "duration": round(max(timeline.duration - start, 0.001), 3),
        "timeline": steps,
    }
    return doc


def _preceding_error(ep: Episode, ending: Item) -> tuple[int, str] | None:
    """The error frame sent just before a close (513 heartbeat timeout, 501 rate limit...)."""
    before = [i for i in ep.items if i.kind == RAW and i.at <= ending.at]
    if not before:
        return None
    try:
        obj = orjson.loads(before[-1].wire[_header_len(before[-1].wire) :])
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and "traceId" in obj and type(obj.get("code")) is int:
        return obj["code"], str(obj.get("msg") or "")
    return None


def _header_len(wire: bytes) -> int:
    return capture_format.header_len(wire)


# -- REST from the replayed state -----------------------------------------------------------------------


class ReplayMarket:
    """What the REST service reads (the Market's read side), from the pushes replayed so far: the last
    trade and book of each symbol, and the candles seen, newest first."""

    def __init__(self) -> None:
        self.now_ms = 0
        self._trades: dict[str, bytes] = {}
        self._depth: dict[str, bytes] = {}
        self._klines: dict[tuple[str, int], dict[int, bytes]] = {}

    def saw(self, item: Item) -> None:
        if item.channel == "trade":
            self._trades[item.key] = item.wire
        elif item.channel == "depth":
            self._depth[item.key] = item.wire
        elif item.channel == "kline":
            data = _data(item.wire)
            try:
                self._klines.setdefault(item.key, {})[int(data["t"])] = item.wire
            except (KeyError, TypeError, ValueError):
                return
        else:
            return
        if item.channel != "kline":
            t = _data(item.wire).get("t")
            if type(t) is int and t > self.now_ms:
                self.now_ms = t

    def last_trade(self, symbol: str) -> dict[str, Any] | None:
        wire = self._trades.get(symbol)
        return None if wire is None else _data(wire)

    def is_open(self, symbol: str, now_ms: int) -> bool:
        return symbol in self._depth

    def depth(self, symbol: str, now_ms: int) -> dict[str, Any]:
        return _data(self._depth[symbol])

    def closed_klines(self, symbol: str, ty: int, n: int, now_ms: int) -> list[dict[str, Any]]:
        """The candles replayed so far (the one in progress included), newest first, as REST rows."""
        seen = self._klines.get((symbol, ty), {})
        rows = []
        for t in sorted(seen, reverse=True)[:n]:
            d = _data(seen[t])
            rows.append(
                {
                    "t": str(d["t"]),
                    **{k: d[k] for k in ("o", "h", "l", "c", "v", "vw") if k in d},
                    "pc": d.get("pfr", "0.00%"),
                    "pca": d.get("pca", "0"),
                }
            )
        return rows


def _data(wire: bytes) -> dict[str, Any]:
    obj = orjson.loads(wire[_header_len(wire) :])
    return obj.get("data", {}) if isinstance(obj, dict) else {}


class ReplayCatalogue:
    """The mock's catalogue, plus every symbol the capture streams (a live symbol the mock does not
    know is still served by REST from the replayed state)."""

    def __init__(self, base: Any, extra: Mapping[str, str]) -> None:
        self._base = base
        self._extra = {s: SimpleNamespace(symbol=s, business=b) for s, b in extra.items()}

    def get(self, symbol: str) -> Any:
        return self._base.get(symbol) or self._extra.get(symbol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


# -- the shell: playing episodes to connections -----------------------------------------------------------


class Feed(Protocol):
    """A source of pushes in place of the seeded market's pump (MockServer.use_feed): told of every
    open, subscription and close; REST reads its `market`."""

    market: Any

    def bind(self, ports: FeedPorts) -> None: ...
    def opened(self, conn: Any) -> None: ...
    def subscribed(self, conn: Any, channel: tuple[str, int], symbols: Iterable[str]) -> None: ...
    def closed(self, conn: Any) -> None: ...
    def catalogue(self, base: Any) -> Any: ...
    def streams(self, symbol: str) -> bool: ...
    def report(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...


@dataclass
class FeedPorts:
    """What a feed may use of the server (given by MockServer.use_feed)."""

    hub: Any  # read only: who is subscribed to what, right now
    send: Callable[[Any, list[bytes], Mapping[int, int]], None]  # the outbox's one write path
    apply_fault: Callable[[Any], Any]  # the fault engine (refusals)
    close_timeout: float
    settle: float  # --speed max waits this long after the first subscribe (every subscribe sent at once)
    max_send_buffer: int


class _Play:
    __slots__ = ("base", "conn", "done", "episode", "frames", "idle", "index", "open_base", "plan", "timer")

    def __init__(self, conn: Any, episode: Episode | None, now: float) -> None:
        self.conn = conn
        self.episode = episode
        self.open_base = now  # loop time of the open
        self.base: float | None = None  # loop time of the anchor, once known
        self.index = 0
        self.timer: asyncio.Handle | None = None
        self.done = episode is None
        self.plan: list[Any] | None = None  # --speed max: the writes left
        self.frames = False  # --speed max: whether a pass of the plan writes any frame to this connection
        self.idle = False  # --speed max --loop: a pass had nothing for this connection; wait for a subscribe


class ReplayFeed:
    """Plays a Timeline to the connections of a MockServer (see the module docstring)."""

    def __init__(self, timeline: Timeline, *, speed: float = 1.0, loop: bool = False) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be above 0 (or max), not {speed}")
        self.timeline = timeline
        self.speed = speed
        self.burst = math.isinf(speed)
        self.loop = loop
        for eps in timeline.episodes.values():
            for ep in eps:
                ep.index()  # paid once at start, not at a client's first subscribe
        self.market = ReplayMarket()
        self.ports: FeedPorts | None = None
        self._maps: dict[str, dict[Any, Any]] = {}
        self._plays: dict[Any, _Play] = {}
        self._next: Counter[tuple[str, str]] = Counter()
        # --speed max: per (episode, subscription set), the pass's steps and whether any writes frames.
        self._plans: dict[tuple[int, frozenset[tuple[str, Any]]], tuple[list[Any], bool]] = {}
        self.missing: list[dict[str, Any]] = []  # the first MAX_NOTES; missing_count counts them all
        self.missing_count = 0
        self.unmatched: list[dict[str, Any]] = []
        self.played: list[dict[str, Any]] = []  # connections and their episodes, for the report
        self.disconnects: list[dict[str, Any]] = []

    def bind(self, ports: FeedPorts) -> None:
        self.ports = ports
        self._maps = {kind: getattr(ports.hub, attr) for kind, attr in _CHANNELS.items()}
        # An episode's clock starts when the session has handled the first subscribe; compiling the
        # contract's validators on that request would start it ~6 ms late (measured): compile them now.
        from infoway_mock.schemas.registry import TABLES
        from infoway_mock.schemas.validate import fast_validator

        for table in TABLES.values():
            for name in table.values():
                fast_validator(name)

    def catalogue(self, base: Any) -> Any:
        return ReplayCatalogue(base, self.timeline.symbols())

    def streams(self, symbol: str) -> bool:
        return True  # anything may be subscribed: what the capture lacks is acked, silent, and reported

    # -- what the server tells the feed ----------------------------------------------------------------

    def opened(self, conn: Any) -> None:
        path = "/news" if conn.kind == "news" else "/ws"
        key = (path, conn.business if path == "/ws" else "")
        episodes = self.timeline.for_socket(*key)
        n = self._next[key]
        self._next[key] += 1
        episode = None
        if self.timeline.template and episodes:
            episode = episodes[0]
        elif n < len(episodes):
            episode = episodes[n]
        elif episodes and self.loop:
            episode = episodes[n % len(episodes)]
        if episode is None and len(self.unmatched) < MAX_NOTES:
            self.unmatched.append(
                {"conn": conn.conn_id, "business": key[1] or "news", "recorded": len(episodes)}
            )
        now = asyncio.get_running_loop().time()
        play = self._plays[conn] = _Play(conn, episode, now)
        if len(self.played) < MAX_NOTES:
            self.played.append(
                {
                    "conn": conn.conn_id,
                    "episode": None if episode is None else episode.conn,
                    "business": key[1],
                }
            )
        if episode is not None and not episode.on_subscribe:
            self._start(play, now)
        elif episode is not None:
            self._arm(play)  # what came before the recorded subscribe plays from the open

    def subscribed(self, conn: Any, channel: tuple[str, int], symbols: Iterable[str]) -> None:
        play = self._plays.get(conn)
        if play is None:
            return
        kind, ty = channel
        if kind in _CHANNELS:
            path = "/news" if conn.kind == "news" else "/ws"
            covered = self.timeline.covered(path, conn.business if path == "/ws" else "")
            for s in sorted(symbols):
                key = (s, ty) if kind == "kline" else s
                if (kind, key) not in covered:
                    self.missing_count += 1
                    if len(self.missing) < MAX_NOTES:
                        entry = {"conn": conn.conn_id, "channel": kind, "symbol": s, "type": ty or None}
                        self.missing.append(entry)
        if play.base is None and play.episode is not None:
            self._start(play, asyncio.get_running_loop().time())
        elif play.idle and not play.done:
            play.idle = False
            play.timer = asyncio.get_running_loop().call_soon(self._burst_start, play)

    def closed(self, conn: Any) -> None:
        play = self._plays.pop(conn, None)
        if play is not None:
            play.done = True
            if play.timer is not None:
                play.timer.cancel()
            conn.on_drain = None

    def stop(self) -> None:
        for conn in list(self._plays):
            self.closed(conn)

    # -- pacing ----------------------------------------------------------------------------------------

    def _start(self, play: _Play, now: float) -> None:
        if self.burst:
            assert self.ports is not None
            play.base = now
            loop = asyncio.get_running_loop()
            play.timer = loop.call_later(self.ports.settle, self._burst_start, play)
            return
        play.base = now
        self._arm(play)

    def _due(self, play: _Play, item: Item) -> float | None:
        ep = play.episode
        assert ep is not None
        if item.at < 0 and ep.on_subscribe:
            return play.open_base + (item.at + ep.lead) / self.speed
        if play.base is None or self.burst:
            return None  # waits for the first subscribe; at --speed max the burst plays the rest
        return play.base + item.at / self.speed

    def _arm(self, play: _Play) -> None:
        if play.done or play.episode is None:
            return
        items = play.episode.items
        if play.index >= len(items):
            self._finished(play)
            return
        due = self._due(play, items[play.index])
        if due is None:
            return  # waits for the first subscribe
        play.timer = asyncio.get_running_loop().call_at(due - EARLY, self._fire, play)

    def _fire(self, play: _Play) -> None:
        play.timer = None
        if play.done:
            return
        ep = play.episode
        assert ep is not None and self.ports is not None
        loop = asyncio.get_running_loop()
        horizon = loop.time() + SLACK
        conn = play.conn
        maps = self._maps
        saw = self.market.saw
        wires: list[bytes] = []
        counts: Counter[int] = Counter()
        items = ep.items
        while play.index < len(items):
            item = items[play.index]
            due = self._due(play, item)
            if due is None or due > horizon:
                break
            play.index += 1
            kind = item.kind
            if kind == PUSH:
                saw(item)
                subs = maps[item.channel].get(item.key)
                if subs is not None and conn in subs:
                    wires.append(item.wire)
                    counts[item.code] += 1
            elif kind == RAW:
                wires.append(item.wire)
                counts[item.code] += 1
            else:
                if wires:
                    self.ports.send(conn, wires, counts)
                    wires, counts = [], Counter()
                if self._act(play, item):
                    return
        if wires:
            self.ports.send(conn, wires, counts)
        self._arm(play)

    def _finished(self, play: _Play) -> None:
        """The end of an episode that the recording did not end: silence, or (--loop) the pass again."""
        ep = play.episode
        if not self.loop or ep is None or play.base is None:
            play.done = True
            return
        first = _first_anchored(ep)
        if first >= len(ep.items):
            play.done = True  # nothing after the anchor to repeat
            return
        play.base += ep.span / self.speed
        play.index = first
        self._arm(play)

    def _act(self, play: _Play, item: Item) -> bool:
        """A recorded end or refusal; True when the connection is over."""
        assert self.ports is not None
        conn = play.conn
        if item.kind == REFUSE:
            from .faults import MAX_SECONDS, Fault

            seconds = min(max(item.seconds / self.speed, 0.001), MAX_SECONDS)  # within the fault's bounds
            self.ports.apply_fault(Fault("refuse", code=min(item.code, 599), seconds=seconds))
            self._note_disconnect({"conn": conn.conn_id, "refuse": item.code, "seconds": item.seconds})
            return False
        play.done = True
        if item.kind == CLOSE:
            self._note_disconnect({"conn": conn.conn_id, "close": item.code, "reason": item.reason})
            if item.code in (1005, 1006) or not (1000 <= item.code <= 4999):
                end_after_flush(conn.transport, reset=False, timeout=self.ports.close_timeout)
            else:
                conn.close(item.code, item.reason)
        else:
            self._note_disconnect({"conn": conn.conn_id, "reset": item.reason})
            end_after_flush(conn.transport, reset=item.reason != "eof", timeout=self.ports.close_timeout)
        # The refusal that followed the recorded end comes with it, even though this connection is over.
        for later in play.episode.items[play.index :] if play.episode else []:
            if later.kind == REFUSE:
                self._act(play, later)
        return True

    def _note_disconnect(self, entry: dict[str, Any]) -> None:
        if len(self.disconnects) < MAX_NOTES:
            self.disconnects.append(entry)

    # -- --speed max: pre-joined bursts ----------------------------------------------------------------

    def _burst_start(self, play: _Play) -> None:
        play.timer = None
        if play.done or play.episode is None:
            return
        hub_keys = frozenset(
            (kind, key) for kind, key in play.episode.keys() if play.conn in (self._maps[kind].get(key) or ())
        )
        plan_key = (id(play.episode), hub_keys)
        cached = self._plans.get(plan_key)
        if cached is None:
            steps = self._plan(play.episode, hub_keys)
            cached = self._plans[plan_key] = (steps, any(not isinstance(step, Item) for step in steps))
        plan, play.frames = cached
        play.plan = list(plan)
        play.plan.reverse()  # popped from the end
        self._burst(play)

    def _plan(self, ep: Episode, keys: frozenset[tuple[str, Any]]) -> list[Any]:
        """The episode (from its anchor) as writes for one subscription set: (chunk, counts, the pushes
        REST learns from) and end items. Built once per subscription set from the episode's index with
        C-level steps (a sort that merges each key's run, joins, cumulative sizes), not a Python loop per
        frame: a firehose of 800k frames plans in about 0.1 s instead of 1 s."""
        assert self.ports is not None
        limit = max(1024, min(CHUNK, self.ports.max_send_buffer // 4))
        ix = ep.index()
        items = ep.items
        start = _first_anchored(ep)
        chosen = [ix.by_key[k] for k in keys if k in ix.by_key]
        selected = sorted(itertools.chain(ix.others, *chosen))  # runs already in order: timsort merges them
        selected = selected[bisect.bisect_left(selected, start) :]
        ends = [bisect.bisect_left(selected, i) for i in ix.others if i >= start and items[i].kind > RAW]
        steps: list[Any] = []
        a = 0
        for p in [*ends, len(selected)]:
            self._chunks(ep, keys, selected[a:p], limit, steps)
            if p < len(selected):
                steps.append(items[selected[p]])  # an end or a refusal, between the writes around it
            a = p + 1
        return steps

    @staticmethod
    def _chunks(
        ep: Episode, keys: frozenset[tuple[str, Any]], seg: list[int], limit: int, steps: list[Any]
    ) -> None:
        ix = ep.index()
        wires = list(map(ix.wires.__getitem__, seg))
        cum = list(itertools.accumulate(map(len, wires)))
        lo = 0
        while lo < len(seg):
            base = cum[lo - 1] if lo else 0
            hi = min(bisect.bisect_left(cum, base + limit, lo) + 1, len(seg))
            part = seg[lo:hi]
            counts = Counter(map(ix.codes.__getitem__, part))
            steps.append((b"".join(wires[lo:hi]), counts, _seen(ep, keys, part[0], part[-1])))
            lo = hi

    def _burst(self, play: _Play) -> None:
        assert self.ports is not None
        conn = play.conn
        conn.on_drain = None
        plan = play.plan
        high = min(HIGH_WATER, self.ports.max_send_buffer // 2)
        transport = conn.transport
        if transport is not None:
            transport.set_write_buffer_limits(high=high)
        while plan and not play.done:
            if not conn.ws_open:
                return  # closing: nothing can be written any more, and `closed` ends the play
            if conn.buffered() > high:
                conn.on_drain = lambda: self._burst(play)  # asyncio tells us once it has drained
                return
            step = plan.pop()
            if isinstance(step, Item):
                if self._act(play, step):
                    return
                continue
            data, counts, seen = step
            for item in seen:
                self.market.saw(item)
            self.ports.send(conn, [data], counts)
        if not plan and not play.done:
            if not (self.loop and play.episode is not None):
                play.done = True
            elif not play.frames:
                play.idle = True  # a pass with no frames for this connection: looping it would spin
            else:
                # The whole pass again, from the event loop rather than from here: a pass the socket
                # takes at once (a small capture, a connection going away) must not recurse or starve
                # the other connections.
                play.timer = asyncio.get_running_loop().call_soon(self._burst_start, play)

    # -- the report ------------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        tl = self.timeline
        notes = []
        if self.missing_count > len(self.missing):
            notes.append(
                f"replay: {self.missing_count} subscriptions the capture lacks (the first {MAX_NOTES} below)"
            )
        for m in self.missing:
            what = f"{m['channel']}{':' + str(m['type']) if m['type'] else ''}/{m['symbol']}"
            notes.append(
                f"replay: conn {m['conn']} subscribed {what}, which the capture lacks: acked, silent"
            )
        for u in self.unmatched:
            notes.append(
                f"replay: conn {u['conn']} ({u['business']}) has no counterpart in the capture "
                f"({u['recorded']} recorded): silent"
            )
        if tl.violations:
            notes.append(
                f"replay: {len(tl.violations)} recorded frame(s) break the contract, replayed as recorded "
                f"(first: {tl.violations[0]})"
            )
        if tl.refused_first:
            notes.append(
                f"replay: {len(tl.refused_first)} handshake(s) refused before the first open: not replayed"
            )
        return {
            "replay": {
                "capture": tl.path,
                "source": tl.header.get("source"),
                "recorded": tl.header.get("started"),
                "speed": "max" if self.burst else self.speed,
                "loop": self.loop,
                "episodes": {f"{p} {b}".strip(): len(e) for (p, b), e in tl.episodes.items()},
                "connections": self.played,
                "disconnects": self.disconnects,
                "missing": self.missing,
                "unmatched": self.unmatched,
                "capture_violations": tl.violations[:20],
            },
            "notes": notes,
        }


def _seen(ep: Episode, keys: frozenset[tuple[str, Any]], first: int, last: int) -> list[Item]:
    """What REST learns from the items first..last (indices) of a burst: the newest push of each key, and
    every candle (REST keeps their history)."""
    ix = ep.index()
    out = []
    for k in keys:
        run = ix.by_key.get(k)
        if not run:
            continue
        lo, hi = bisect.bisect_left(run, first), bisect.bisect_right(run, last)
        if lo == hi:
            continue
        if k[0] == "kline":
            out += [ep.items[n] for n in run[lo:hi]]
        else:
            out.append(ep.items[run[hi - 1]])
    return out


def _first_anchored(ep: Episode) -> int:
    """Index of the first item played from the anchor (the ones before play from the open)."""
    if not ep.on_subscribe:
        return 0
    return next((i for i, item in enumerate(ep.items) if item.at >= 0), len(ep.items))


def load(path: str | Path, *, check: bool = True) -> Timeline:
    """Read and cut a capture (raises capture.CaptureError with the line of a bad one)."""
    return build_timeline(capture_format.read(path), check=check)


def describe(feed: ReplayFeed) -> str:
    """One line for `serve` to print at start."""
    tl = feed.timeline
    speed = "max" if feed.burst else f"{feed.speed:g}x"
    loop = ", looping" if feed.loop else ""
    if tl.template:
        h = tl.header
        return (
            f"firehose: {h['seconds']:g} s of market, {h['frames']} frames ({h['bytes'] >> 20} MiB), "
            f"speed {speed}{loop}"
        )
    eps = ", ".join(f"{len(e)} {b or 'news'}" for (_, b), e in tl.episodes.items())
    return f"replaying {tl.path}: {eps or 'no'} connection(s) recorded, speed {speed}{loop}"


# -- the command: scenario from-capture ----------------------------------------------------------------


def add_command(sub: Any) -> None:
    """`infoway-mock scenario from-capture FILE` (registered in cli.build_parser)."""
    s = sub.add_parser("scenario", help="make scenario files (from-capture)")
    kinds = s.add_subparsers(dest="scenario_command", required=True, metavar="COMMAND")
    f = kinds.add_parser(
        "from-capture",
        help="a scenario of a capture's disconnects and faults, to combine with the seeded market",
        description="Writes the capture's closes, resets, error-then-close (513...), refusals after a drop "
        "and proxy-injected faults as a scenario (schemas/json/scenario.schema.json) at the times they "
        "happened; play it with `serve --scenario FILE`.",
    )
    f.add_argument("file", help="a capture (proxy --record, client --record)")
    f.add_argument("-o", "--output", help="where to write it (.yaml or .json; default: FILE.scenario.yaml)")
    f.set_defaults(run=_from_capture)


def _from_capture(args: Any) -> int:
    from . import scenario as scenario_mod

    timeline = load(args.file, check=False)
    doc = scenario_from_timeline(timeline, Path(args.file).stem)
    if not doc["timeline"]:
        print(f"{args.file}: no disconnects or faults recorded: no scenario to write", file=sys.stderr)
        return 1
    schemas.validate_document(doc, "scenario.schema.json", source="the scenario of " + args.file)
    scenario_mod.parse(doc)  # every fault through the registry, as `serve --scenario` will
    out = Path(args.output) if args.output else Path(args.file).with_suffix(".scenario.yaml")
    if out.suffix in (".yaml", ".yml"):
        import yaml

        out.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    else:
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(doc['timeline'])} fault(s) over {doc['duration']:g} s", flush=True)
    return 0
