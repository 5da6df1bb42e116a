"""Fault injection: each fault is one small value of one shape, applied by one engine (as Toxiproxy's toxics).

Three ways in share this engine: the Python API (`server.faults.apply(Fault(...))`), the control endpoint
(`infoway-mock fault ...`), and scenario files played on a timeline.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import socket
import struct
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import broadcast

if TYPE_CHECKING:
    from .server import InfowayConnection, MockServer

# One-shot faults act once on the connections they target; ongoing ones shape traffic until they expire.
ONE_SHOT = frozenset({"close", "reset", "error", "malformed", "restart", "refuse"})
ONGOING = frozenset({"stall", "stop_reading", "delay", "duplicate", "reorder"})
KINDS = ONE_SHOT | ONGOING

# The frames a `malformed` fault can send; each breaks the contract in a different way.
MALFORMED = {
    "json": '{"code":10002,"data":{"s":"BTCUSDT","p":',
    "types": '{"code":10002,"data":{"s":"BTCUSDT","p":63039.5,"v":"x","vw":null,"t":"soon","td":9}}',
    "unknown_code": '{"code":19999,"data":{}}',
    "binary": b"\x00\xffnot-a-text-frame",
}


@dataclass(frozen=True)
class Fault:
    """What to break, for whom, and how. Targets: one `conn`, every connection of a `key`, or all."""

    kind: str
    conn: int | None = None
    key: str | None = None
    code: int | None = None  # close code (close), error code (error), HTTP status (refuse)
    reason: str = ""  # close reason
    msg: str | None = None  # error frame message
    seconds: float | None = None  # how long an ongoing fault or a refusal lasts; down time for restart
    delay: float = 0.0  # delay: base delay of each push, seconds
    jitter: float = 0.0  # delay: +/- uniform jitter, seconds
    probability: float = 1.0  # duplicate / reorder: chance per push
    then_close: bool = False  # error: close the connection after the error frame
    variant: str = "json"  # malformed: json | types | unknown_code | binary

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(sorted(KINDS))}")
        if self.kind == "malformed" and self.variant not in MALFORMED:
            raise ValueError(
                f"unknown malformed variant {self.variant!r}; expected one of {', '.join(MALFORMED)}"
            )
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within 0..1")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fault:
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        defaults = Fault(kind=self.kind)
        return {k: v for k, v in asdict(self).items() if k == "kind" or v != getattr(defaults, k)}

    def describe(self) -> str:
        target = f"conn {self.conn}" if self.conn is not None else f"key {self.key}" if self.key else "all"
        extra = {k: v for k, v in self.to_dict().items() if k not in ("kind", "conn", "key")}
        return f"{self.kind} -> {target}" + (f" {extra}" if extra else "")


@dataclass
class Shaper:
    """How pushes to one connection are bent by the ongoing faults that target it."""

    stalled: bool = False
    delay: float = 0.0
    jitter: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    held: bytes | None = None
    dropped: int = 0


@dataclass
class Active:
    id: int
    fault: Fault
    timer: asyncio.TimerHandle | None = None
    conns: set[Any] = field(default_factory=set)


class FaultEngine:
    def __init__(self, server: MockServer, seed: int = 0) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.active: dict[int, Active] = {}
        self.shaped: dict[InfowayConnection, Shaper] = {}  # empty on the hot path unless a fault is on
        self._refusals: dict[int, tuple[int, str | None, float]] = {}  # id -> (status, key, until)
        self._ids = itertools.count(1)
        self.log: list[dict[str, Any]] = []

    # -- entry point -----------------------------------------------------------------------------------

    async def apply(self, fault: Fault) -> dict[str, Any]:
        """Apply a fault now; returns its id and the connection ids it hit."""
        srv = self.server
        fid = next(self._ids)
        targets = self._targets(fault)
        srv.metrics.faults_applied[fault.kind] += 1
        self.log.append({"id": fid, "at": srv.clock.monotonic(), **fault.to_dict()})
        ids = [c.infoway.conn_id for c in targets if c.infoway]
        if fault.kind == "restart":
            srv._spawn(srv.restart(down_for=fault.seconds or 1.0))
        elif fault.kind == "refuse":
            until = srv.clock.monotonic() + (fault.seconds if fault.seconds is not None else 1e9)
            self._refusals[fid] = (fault.code or 503, fault.key, until)
            self._expire_later(fid, fault.seconds)
        elif fault.kind in ONE_SHOT:
            for conn in targets:
                self._one_shot(fault, conn)
        else:
            active = Active(fid, fault)
            self.active[fid] = active
            for conn in targets:
                self._attach(active, conn)
            active.timer = self._expire_later(fid, fault.seconds)
        return {"id": fid, "kind": fault.kind, "connections": ids}

    def clear(self, fault_id: int | None = None) -> int:
        """End one ongoing fault (or all); returns how many were ended."""
        ids = list(self.active) + list(self._refusals) if fault_id is None else [fault_id]
        n = 0
        for fid in ids:
            if self._refusals.pop(fid, None) is not None:
                n += 1
            active = self.active.pop(fid, None)
            if active is None:
                continue
            n += 1
            if active.timer is not None:
                active.timer.cancel()
            for conn in list(active.conns):
                self._detach(active, conn)
        return n

    # -- hooks the server calls ------------------------------------------------------------------------

    def refusal(self, key: str | None) -> int | None:
        """HTTP status to refuse a handshake with, if a refuse fault is on for this key (or for all)."""
        if not self._refusals:
            return None
        now = self.server.clock.monotonic()
        for fid, (status, fkey, until) in list(self._refusals.items()):
            if now >= until:
                del self._refusals[fid]
            elif fkey is None or fkey == key:
                return status
        return None

    def on_open(self, conn: InfowayConnection) -> None:
        """A new connection joins the ongoing faults aimed at its key or at everyone."""
        for active in self.active.values():
            if active.fault.conn is None and self._matches(active.fault, conn):
                self._attach(active, conn)

    def on_close(self, conn: InfowayConnection) -> None:
        self.shaped.pop(conn, None)
        for active in self.active.values():
            active.conns.discard(conn)

    def push(self, conn: InfowayConnection, frame: bytes) -> None:
        shaper = self.shaped.get(conn)
        if shaper is None:
            broadcast([conn], frame, text=True)
            return
        if shaper.stalled:
            shaper.dropped += 1
            return
        frames = [frame]
        if shaper.reorder and self.rng.random() < shaper.reorder:
            if shaper.held is None:
                shaper.held = frame
                return
            frames = [frame, shaper.held]
            shaper.held = None
        elif shaper.held is not None:
            frames, shaper.held = [shaper.held, frame], None
        if shaper.duplicate and self.rng.random() < shaper.duplicate:
            frames = [f for f in frames for _ in (0, 1)]
        if shaper.delay or shaper.jitter:
            wait = max(0.0, shaper.delay + self.rng.uniform(-shaper.jitter, shaper.jitter))
            loop = asyncio.get_running_loop()
            for f in frames:
                loop.call_later(wait, functools.partial(broadcast, [conn], f, text=True))
        else:
            for f in frames:
                broadcast([conn], f, text=True)

    # -- internals -------------------------------------------------------------------------------------

    def _matches(self, fault: Fault, conn: InfowayConnection) -> bool:
        info = conn.infoway
        if info is None:
            return False
        if fault.conn is not None:
            return info.conn_id == fault.conn
        return fault.key is None or info.key == fault.key

    def _targets(self, fault: Fault) -> list[InfowayConnection]:
        return [conn for _, conn in list(self.server.sessions.values()) if self._matches(fault, conn)]

    def _one_shot(self, fault: Fault, conn: InfowayConnection) -> None:
        srv = self.server
        if fault.kind == "close":
            srv._spawn(conn.close(fault.code or 1011, fault.reason))
        elif fault.kind == "reset":
            reset(conn)
        elif fault.kind == "error":
            code = fault.code or 500
            frame = {
                "traceId": srv._trace_id(),
                "code": code,
                "msg": fault.msg or _ERROR_MESSAGES.get(code, "error"),
            }
            srv.metrics.errors_sent[code] += 1
            broadcast([conn], orjson.dumps(frame), text=True)
            if fault.then_close:
                srv._spawn(conn.close(srv.config.error_close_code, frame["msg"][:120]))
        elif fault.kind == "malformed":
            payload = MALFORMED[fault.variant]
            broadcast([conn], payload, text=isinstance(payload, str))

    def _attach(self, active: Active, conn: InfowayConnection) -> None:
        active.conns.add(conn)
        self._reshape(conn)
        if active.fault.kind in ("stall", "stop_reading") and conn.transport is not None:
            conn.transport.pause_reading()

    def _detach(self, active: Active, conn: InfowayConnection) -> None:
        active.conns.discard(conn)
        kind = active.fault.kind
        self._reshape(conn)
        if (
            kind in ("stall", "stop_reading")
            and conn.transport is not None
            and not self._reading_paused(conn)
        ):
            conn.transport.resume_reading()
            # The client could not be heard while we were deaf: don't punish it with a 513 on resume.
            entry = self.server.sessions.get(conn.infoway.conn_id) if conn.infoway else None
            if entry is not None:
                entry[0].last_heartbeat = self.server.clock.monotonic()

    def deaf(self, conn: InfowayConnection) -> bool:
        """True while a stall or stop_reading fault keeps the server from reading this connection."""
        return bool(self.active) and self._reading_paused(conn)

    def _reading_paused(self, conn: InfowayConnection) -> bool:
        return any(
            conn in a.conns and a.fault.kind in ("stall", "stop_reading") for a in self.active.values()
        )

    def _reshape(self, conn: InfowayConnection) -> None:
        faults = [a.fault for a in self.active.values() if conn in a.conns]
        if not faults:
            shaper = self.shaped.pop(conn, None)
            if shaper is not None and shaper.held is not None:
                broadcast([conn], shaper.held, text=True)
            return
        shaper = self.shaped.setdefault(conn, Shaper())
        shaper.stalled = any(f.kind == "stall" for f in faults)
        shaper.delay = max((f.delay for f in faults if f.kind == "delay"), default=0.0)
        shaper.jitter = max((f.jitter for f in faults if f.kind == "delay"), default=0.0)
        shaper.duplicate = max((f.probability for f in faults if f.kind == "duplicate"), default=0.0)
        shaper.reorder = max((f.probability for f in faults if f.kind == "reorder"), default=0.0)
        if not (shaper.stalled or shaper.delay or shaper.jitter or shaper.duplicate or shaper.reorder):
            # stop_reading alone leaves the outgoing stream untouched: keep it off the slow path.
            self.shaped.pop(conn, None)

    def _expire_later(self, fid: int, seconds: float | None) -> asyncio.TimerHandle | None:
        if seconds is None:
            return None
        return asyncio.get_running_loop().call_later(seconds, self.clear, fid)


_ERROR_MESSAGES = {
    500: "Server error",
    501: "Request frequency exceed the limit：60 times per minute",
    502: "Daily request limit reached",
    512: "WebSocket connections over the limit",
    513: "Websocket heartbeat timeout",
    524: "Origin timed out",
}


def reset(conn: InfowayConnection) -> None:
    """Abort with an RST, no close frame, no FIN: what a crashed peer or a dropped NAT entry looks like."""
    transport = conn.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
