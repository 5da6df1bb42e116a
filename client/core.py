"""The client's protocol core, sans I/O: frames in, events and frames out, timers as deadlines.

No sockets, tasks or clocks, in the mould of the mock's Session and websockets' Protocol: the asyncio
shell (client.py, connection.py) connects, reads, writes and sleeps, and tells the core what happened and
when. The core holds the subscription book, the pacer, heartbeat scheduling, liveness, the reconnect
policy, gap bookkeeping and decoding, so all of it is tested with explicit time and no server.

    core.connecting(now)                  an attempt starts
    core.opened(now, wall_ms)             the handshake succeeded: the desired set is queued for replay
    events = core.receive(messages, now)  text frames in -> pushes (and BadFrame reports), in order
    frames = core.frames_to_send(now)     the requests and heartbeat the pacer lets out now (JSON bytes)
    reason = core.check(now)              timers: a reason to end the session (dead peer, data idle)
    when = core.deadline()                the next time frames_to_send or check has work
    delay = core.closed(outcome, wall_ms) the session ended -> seconds until the next attempt (None: stop)
    core.take_notices()                   the lifecycle events any of the above produced
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from infoway_mock.schemas.codes import (
    ACK_CODES,
    CONNECTIONS_LIMIT,
    HEARTBEAT,
    HEARTBEAT_TIMEOUT,
    PUSH_TRADE,
    RATE_LIMIT,
    SUBSCRIBE_CODES,
    WELCOME,
    is_error,
)

from .config import ClientConfig
from .decode import PUSH_CODES, BadPush, decode_push, excerpt
from .errors import AuthError, GaveUp, InfowayError
from .events import (
    BadFrame,
    Connected,
    Disconnected,
    Gap,
    Kline,
    Push,
    Resubscribed,
    ServerError,
    Trade,
)
from .pacer import Pacer
from .policy import POLICIES, Outcome, PolicyConfig, slows_pacer
from .subscriptions import DEPTH, TRADE, SubscriptionBook, kline_channel

log = logging.getLogger("infoway.client")

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_new = object.__new__
_KLINE_PERIOD_S = {1: 60, 2: 300, 3: 900, 4: 1800, 5: 3600, 6: 7200, 7: 14400, 8: 86400, 9: 604800}
_CLOSES_AFTER = frozenset({RATE_LIMIT, HEARTBEAT_TIMEOUT, CONNECTIONS_LIMIT})  # error frames, then close
_EXCERPT = 200  # characters of a bad frame kept in its report
_LOG_FIRST_BAD = 5  # bad frames logged one by one per connection; past that, every 1000th


@dataclass(slots=True)
class _Link:
    """What one open connection holds: its number, its send queue and heartbeat schedule."""

    gen: int
    opened_at: float
    heartbeat_due: float
    outbox: deque[tuple[dict[str, Any], int]] = field(default_factory=deque)  # (request, attempt)
    heartbeat_last: bool = False  # the last frame sent was a heartbeat
    replaying: bool = False
    closing_error: int | None = None  # an error frame the server closes after (501, 512, 513)
    bad: int = 0


class ClientCore:
    """The protocol state of a reconnecting client, across its connections."""

    def __init__(
        self, config: ClientConfig | None = None, *, url: str = "", rng: random.Random | None = None
    ) -> None:
        cfg = self.config = (config or ClientConfig()).validate()
        self.url = url  # as shown in events and logs: with the key masked
        self.book = SubscriptionBook(max_codes=cfg.max_codes)
        self.pacer = Pacer(cfg.rate_limit, cfg.rate_window, cfg.headroom)
        policy = PolicyConfig(
            cfg.backoff_base,
            cfg.backoff_cap,
            cfg.healthy_after,
            cfg.long_backoff,
            cfg.probe_interval,
            cfg.probe_window,
        )
        self.policy = POLICIES[cfg.reconnect_policy](policy, rng)
        self.counts = {"trade": 0, "depth": 0, "kline": 0, "control": 0, "error": 0, "bad": 0}
        self.gaps: list[Gap] = []  # every gap reported so far, first_after filled in as pushes return
        self.attempts = 0  # connection attempts (handshakes tried), all told
        self.reconnects = 0
        self.fatal: InfowayError | None = None
        self.last_frame_at: float | None = None
        self.last_push_at = 0.0
        # Set when we send something the server answers (a heartbeat with ack, a subscribe); cleared by
        # any frame. Silence only proves a dead peer after such a frame: a quiet server with nothing to
        # answer, or our own pacer holding frames back, is not a dead one.
        self.reply_since: float | None = None
        self._now = 0.0
        self._link: _Link | None = None
        self._gen = 0
        self._notices: list[Any] = []
        self._offline_since: int | None = None  # wall ms of the last drop
        self._wall_offset = 0.0  # wall ms minus monotonic ms, taken when the connection opened
        self._last_push: dict[str, dict[str, int]] = {TRADE: {}, DEPTH: {}}  # channel -> symbol -> ms
        self._last_trade = self._last_push[TRADE]
        self._open_gaps: dict[tuple[str, str], int] = {}  # pair -> index in self.gaps
        self._kline_seen: dict[tuple[int, str], int] = {}  # (type, symbol) -> newest candle open (s)

    @property
    def is_open(self) -> bool:
        return self._link is not None

    def take_notices(self) -> list[Any]:
        """Lifecycle events (Connected, Disconnected, Resubscribed, ServerError) since the last call."""
        out, self._notices = self._notices, []
        return out

    # -- what the user wants -----------------------------------------------------------------------------

    def subscribe(self, channel: str, symbols: Iterable[str]) -> None:
        new = self.book.add(channel, symbols)
        # Offline, the desired set is replayed on connect; online, only the new symbols go out now.
        if new and self._link is not None:
            self._link.outbox.extend((f, 1) for f in self.book.subscribe_frames(channel, new))

    def unsubscribe(self, channel: str, symbols: Iterable[str] | None) -> None:
        wanted = None if symbols is None else list(symbols)
        gone = self.book.remove(channel, wanted)
        for s in gone:
            self._last_push.get(channel, {}).pop(s, None)
        if gone and self._link is not None:
            frames = self.book.unsubscribe_frames(channel, None if wanted is None else gone)
            self._link.outbox.extend((f, 1) for f in frames)

    # -- connection lifecycle ----------------------------------------------------------------------------

    def connecting(self, now: float) -> None:
        self.attempts += 1

    def opened(self, now: float, wall_ms: int) -> None:
        self._gen += 1
        self.pacer.reset()
        link = self._link = _Link(self._gen, now, now + self.heartbeat_every())
        self._wall_offset = wall_ms - now * 1000
        self.last_frame_at = self.last_push_at = now
        self.reply_since = None
        if self._offline_since is not None:
            self.reconnects += 1
        self._notices.append(Connected(self.url, self.policy.attempts))
        frames = self.book.replay_frames()
        link.outbox.extend((f, 1) for f in frames)
        link.replaying = bool(frames)

    def closed(self, outcome: Outcome, wall_ms: int) -> float | None:
        """The attempt or session ended: the delay before the next attempt, or None to stop (`fatal`)."""
        link, self._link = self._link, None
        o = outcome
        if link is not None:
            self.book.forget_connection(link.gen)
            self._offline_since = wall_ms
            o = replace(o, code=link.closing_error or o.code, lasted=max(0.0, o.at - link.opened_at))
            if o.lasted >= self.config.healthy_after:
                self.pacer.recover()
        if slows_pacer(o):
            self.pacer.slow_down()
        decision = self.policy.next(o)
        delay = decision.delay
        limit = self.config.max_attempts
        if delay is None:
            self.fatal = AuthError(o.code or 401, o.reason)
        elif limit is not None and self.policy.attempts >= limit:
            self.fatal = GaveUp(f"gave up after {self.policy.attempts} failed attempts: {o.reason}")
            delay = None
        reason = o.reason if self.fatal is None else str(self.fatal)
        self._notices.append(Disconnected(reason, o.code, delay))
        return delay

    # -- frames in ---------------------------------------------------------------------------------------

    def receive(self, messages: Iterable[bytes | str], now: float) -> list[Any]:
        """Decode a batch of text frames: the pushes, and a BadFrame for each frame that cannot be used,
        in the order received. Acks, errors and the welcome update state and notices."""
        self._now = now
        out: list[Any] = []
        append = out.append
        last_trade = self._last_trade
        trades = pushes = 0
        for message in messages:
            try:
                obj = _loads(message)
            except _JSONDecodeError:
                obj = message
            # Trades dominate the stream: their shape test is inlined and their path kept short.
            if type(obj) is dict and obj.get("code") == PUSH_TRADE:
                raw = obj.get("data")
                if type(raw) is dict:
                    s, t = raw.get("s"), raw.get("t")
                    if type(s) is str and type(t) is int:
                        last_trade[s] = t
                        ev = _new(Trade)  # Trade(raw) without a Python-level __init__ call
                        ev.raw = raw
                        append(ev)
                        trades += 1
                        continue
            pushes += self._other(obj, message, out)
        self.counts["trade"] += trades
        self.last_frame_at = now
        self.reply_since = None
        if trades or pushes:
            self.last_push_at = now
            if self._open_gaps:
                self._close_gaps(out)
        return out

    def receive_binary(self, data: bytes, now: float) -> list[Any]:
        """The protocol has no binary frames: each one is reported and skipped."""
        self.last_frame_at = now
        self.reply_since = None
        out: list[Any] = []
        self._bad("binary frame", data, out)
        return out

    def _other(self, obj: Any, message: bytes | str, out: list[Any]) -> int:
        """Everything but a well-formed trade; returns the number of pushes appended (0 or 1)."""
        if type(obj) is not dict:
            self._not_an_object(obj, message, out)
            return 0
        code = obj.get("code")
        if code in PUSH_CODES and "traceId" not in obj:
            return self._push(code, obj, message, out)
        if "traceId" in obj or is_error(code):
            self._server_error(obj)
        elif code in ACK_CODES:
            self._ack(obj)
        elif code == WELCOME:
            self.counts["control"] += 1
        else:
            self._bad(f"unknown code {code!r}", message, out)
        return 0

    def _push(self, code: int, obj: dict[str, Any], message: bytes | str, out: list[Any]) -> int:
        try:
            ev, channel, market_ms = decode_push(code, obj.get("data"))
        except BadPush as e:
            self._bad(str(e), message, out)
            return 0
        raw = ev.raw
        self._last_push.setdefault(channel, {})[raw["s"]] = market_ms
        if type(ev) is Kline:
            key = (raw["ty"], raw["s"])
            self._kline_seen[key] = max(self._kline_seen.get(key, 0), market_ms // 1000)
        self.counts[ev.kind] += 1
        out.append(ev)
        return 1

    def _not_an_object(self, obj: Any, message: bytes | str, out: list[Any]) -> None:
        if obj is not message:
            self._bad("JSON but not an object", message, out)
            return
        if excerpt(message, 8).lstrip()[:1] in ("{", "["):
            self._bad("broken JSON", message, out)
        else:
            self.counts["control"] += 1  # plain text, e.g. the stock banner: tolerated

    def _server_error(self, obj: dict[str, Any]) -> None:
        code = obj.get("code")
        number = code if type(code) is int else 0
        self.counts["error"] += 1
        if number in _CLOSES_AFTER and self._link is not None:
            self._link.closing_error = number
        self._notices.append(ServerError(number, str(obj.get("msg", "")), str(obj.get("traceId", ""))))

    def _ack(self, obj: dict[str, Any]) -> None:
        self.counts["control"] += 1
        link = self._link
        if link is None or self.book.ack(str(obj.get("trace", "")), link.gen) is None:
            return  # a heartbeat ack, or a stale one from an older connection
        if link.replaying and not self.book.awaiting(link.gen):
            link.replaying = False
            self._resubscribed()

    def _bad(self, reason: str, message: bytes | str, out: list[Any]) -> None:
        self.counts["bad"] += 1
        text = excerpt(message, _EXCERPT)
        out.append(BadFrame(reason, text))
        n = self.counts["bad"]
        if n <= _LOG_FIRST_BAD or n % 1000 == 0:
            log.warning("bad frame #%d skipped (%s): %s", n, reason, text)

    # -- frames out --------------------------------------------------------------------------------------

    def frames_to_send(self, now: float) -> list[bytes]:
        """The frames that may go out now, in order. At most one heartbeat ever waits (a late one is sent
        once, not once per missed interval); when a heartbeat and requests both wait they alternate, so
        neither starves the other under the pacer's budget."""
        link = self._link
        out: list[bytes] = []
        if link is None:
            return out
        while (link.outbox or now >= link.heartbeat_due) and self.pacer.delay(now) <= 0:
            if now >= link.heartbeat_due and (not link.outbox or not link.heartbeat_last):
                link.heartbeat_due = now + self.heartbeat_every()
                link.heartbeat_last = True
                frame: dict[str, Any] = {"code": HEARTBEAT}
                if self.config.heartbeat_ack:
                    frame["ack"] = 1
                attempt = 1
            else:
                link.heartbeat_last = False
                frame, attempt = link.outbox.popleft()
            out.append(self._stamp(link, frame, attempt, now))
        return out

    def heartbeat_every(self) -> float:
        """The heartbeat interval, stretched if need be so heartbeats alone use at most three quarters of
        the pacer's budget: a short interval must not leave subscriptions without room."""
        p = self.pacer
        share = max(1, p.budget - max(1, p.budget // 4))
        return max(self.config.heartbeat_interval, (p.window + p.margin) / share)

    def _stamp(self, link: _Link, frame: dict[str, Any], attempt: int, now: float) -> bytes:
        code = frame["code"]
        trace = self.book.trace("hb" if code == HEARTBEAT else "req")
        frame = {"code": code, "trace": trace, **{k: v for k, v in frame.items() if k != "code"}}
        needs_ack = code in SUBSCRIBE_CODES
        if code != HEARTBEAT:
            self.book.sent(trace, frame, now, link.gen, needs_ack, attempt)
        if self.reply_since is None and (needs_ack or frame.get("ack") == 1):
            self.reply_since = now
        self.pacer.record(now)
        return orjson.dumps(frame)

    # -- timers ------------------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        """When frames_to_send or check next has something to do (None: offline, nothing to time)."""
        link = self._link
        if link is None:
            return None
        cfg = self.config
        send_at = float("-inf") if link.outbox else link.heartbeat_due
        times = [max(send_at, self.pacer.ready_at())]
        if self.reply_since is not None:
            times.append(self.reply_since + cfg.dead_after())
        if not cfg.heartbeat_ack and self.last_frame_at is not None:
            times.append(self.last_frame_at + cfg.dead_after())
        if cfg.data_idle_timeout and self.book.has_any():
            times.append(self.last_push_at + cfg.data_idle_timeout)
        oldest = self.book.oldest_unacked(link.gen)
        if oldest is not None:
            times.append(oldest + cfg.ack_timeout)
        return min(times)

    def check(self, now: float) -> str | None:
        """Run the timers due by `now`: a reason to end the session, or None. Unacked subscribes are sent
        again (max_request_attempts in all), then reported as a ServerError with code 0."""
        link = self._link
        if link is None:
            return None
        reason = self._dead(now)
        if reason is not None:
            return reason
        cfg = self.config
        for p in self.book.overdue(now, cfg.ack_timeout):
            self.book.pending.pop(p.trace, None)
            if p.attempts < cfg.max_request_attempts:
                link.outbox.append(({k: v for k, v in p.frame.items() if k != "trace"}, p.attempts + 1))
            else:
                msg = f"no ack for {p.frame} after {p.attempts} attempts"
                self._notices.append(ServerError(0, msg, p.trace))
        return None

    def _dead(self, now: float) -> str | None:
        cfg = self.config
        dead_after = cfg.dead_after()
        if self.reply_since is not None and now - self.reply_since >= dead_after:
            return f"dead peer: no reply for {now - self.reply_since:.1f}s"
        silent = now - (self.last_frame_at if self.last_frame_at is not None else now)
        if not cfg.heartbeat_ack and silent >= dead_after:
            return f"dead peer: no frame for {silent:.1f}s"
        idle = cfg.data_idle_timeout
        if idle and self.book.has_any() and now - self.last_push_at >= idle:
            return f"data idle: no push for {now - self.last_push_at:.1f}s"
        return None

    # -- gaps --------------------------------------------------------------------------------------------

    def _resubscribed(self) -> None:
        if self._offline_since is None:
            return  # the first connection: nothing was missed
        now_ms = int(self._wall_offset + self._now * 1000)
        gaps = []
        for pair in sorted(self.book.pairs()):
            last = self._last_push.get(pair[0], {}).get(pair[1])
            gap = Gap(pair[0], pair[1], self._offline_since, now_ms, last)
            self._open_gaps[pair] = len(self.gaps)
            self.gaps.append(gap)
            gaps.append(gap)
        self._notices.append(Resubscribed(gaps))

    def _close_gaps(self, events: list[Any]) -> None:
        open_gaps = self._open_gaps
        for ev in events:
            if isinstance(ev, Push):
                channel, market_ms = _channel_and_time(ev)
                i = open_gaps.pop((channel, ev.raw["s"]), None)
                if i is not None:
                    self.gaps[i] = replace(self.gaps[i], first_after=market_ms)

    def backfill_requests(self, gaps: Iterable[Gap]) -> list[tuple[int, str, int, int | None]]:
        """(kline type, symbol, candles to fetch, newest candle open seen) for each kline gap, taken when
        the gap is reported: live candles that arrive while the request runs must not hide the missed
        ones (they are newer than every closed candle the request returns)."""
        out = []
        for gap in gaps:
            if gap.channel.startswith("kline:"):
                ty = int(gap.channel.split(":")[1])
                period = _KLINE_PERIOD_S.get(ty, 86400 * 31)
                count = (gap.offline_to - gap.offline_from) // 1000 // period + 2
                out.append((ty, gap.symbol, count, self._kline_seen.get((ty, gap.symbol))))
        return out

    def merge_backfill(self, ty: int, symbol: str, rows: list[dict[str, Any]], seen: int | None) -> list[Any]:
        """REST rows (newest first) -> the candles from `seen` (the newest open time delivered before the
        drop) on, oldest first, each once."""
        out: list[Any] = []
        for row in reversed(rows):
            try:
                t = int(row["t"])
            except (KeyError, TypeError, ValueError):
                self._bad("backfill row without a numeric `t`", orjson.dumps(row), out)
                continue
            if seen is not None and t < seen:
                continue
            seen = t + 1  # never the same candle twice
            out.append(Kline({"s": symbol, "ty": ty, **row}, backfill=True))
        return out


def _channel_and_time(ev: Any) -> tuple[str, int]:
    raw = ev.raw
    if type(ev) is Kline:
        return kline_channel(raw["ty"]), int(raw["t"]) * 1000
    return (TRADE if type(ev) is Trade else DEPTH), raw["t"]
