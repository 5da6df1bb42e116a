"""Fault injection as a registry of kinds (the Toxiproxy model: one small class per kind, one interface).

Each kind declares its parameters as a JSON Schema fragment; the registry builds one schema from them,
and a fault is validated against it at every door alike: the Python API (`Fault("stall", seconds=5)`),
the control channel (`infoway-mock fault stall seconds=5`), and scenario files. A bad fault is refused
with the JSON path of the error; nothing half-valid ever reaches the engine, the pump or a socket.

One-shot kinds act once on the connections they target (close, reset, error, malformed, restart, refuse);
ongoing kinds bend every frame to their connections until they expire or are cleared (stall, stop_reading,
delay, duplicate, reorder). A new kind is one class here plus its test; the CLI and the schema follow.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

from infoway_mock import schemas
from infoway_mock.schemas.codes import ERRORS

# Close codes an endpoint may send (RFC 6455 7.4: 1004-1006 and 1015 are reserved, 1016-2999 unassigned).
SENDABLE_CLOSE_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
CLOSE_CODE_SCHEMA: dict[str, Any] = {
    "type": "integer",
    "minimum": 1000,
    "maximum": 4999,
    "description": "a close code an endpoint may send: 1000-1003, 1007-1014 or 3000-4999",
}


def sendable_close_code(code: int) -> bool:
    return code in SENDABLE_CLOSE_CODES or 3000 <= code <= 4999


MAX_SECONDS = 86_400.0

# The frames a `malformed` fault can send; each breaks the contract in a different way, on purpose.
MALFORMED: dict[str, str | bytes] = {
    "json": '{"code":10002,"data":{"s":"BTCUSDT","p":',
    "types": '{"code":10002,"data":{"s":"BTCUSDT","p":63039.5,"v":"x","vw":null,"t":"soon","td":9}}',
    "unknown_code": '{"code":19999,"data":{}}',
    "binary": b"\x00\xffnot-a-text-frame",
}


class FaultError(ValueError):
    """A fault that cannot be applied as asked; the message starts with the JSON path of the problem."""


class FaultContext(Protocol):
    """The narrow port the kinds act through (the server provides it; faults never see the server)."""

    rng: random.Random
    error_close_code: int

    def now(self) -> float: ...
    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle: ...
    def send(self, conn: Any, frame: dict[str, Any] | str | bytes) -> None: ...
    def close(self, conn: Any, code: int, reason: str) -> None: ...
    def reset(self, conn: Any) -> None: ...
    def pause_reading(self, conn: Any) -> None: ...
    def resume_reading(self, conn: Any) -> None: ...
    def restart(self, down_for: float) -> None: ...
    def trace_id(self) -> str: ...
    def count_dropped(self, reason: str, n: int) -> None: ...


# -- the kinds ---------------------------------------------------------------------------------------------

_SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS}
# The parameters several kinds share: an ongoing fault's duration, and a per-frame probability.
_UNTIL_CLEARED = {**_SECONDS, "description": "how long (default: until cleared)"}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0}


class Kind:
    """One kind of fault. Subclasses set `name`, `params` (JSON Schema per parameter) and `summary`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[dict[str, dict[str, Any]]] = {}
    defaults: ClassVar[dict[str, Any]] = {}  # from the params' "default"s, so they are written once
    targets: ClassVar[tuple[str, ...]] = ("conn", "key")  # besides "all", which every kind takes
    ongoing: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.defaults = {k: v["default"] for k, v in cls.params.items() if "default" in v}

    def __init__(self, **params: Any) -> None:
        self.p = {**self.defaults, **params}

    def check(self) -> None:
        """Checks a schema cannot express; raise FaultError("$.name: ...")."""

    def apply(self, ctx: FaultContext, conns: list[Any]) -> None:
        """One-shot kinds: act on these connections now."""

    @property
    def seconds(self) -> float | None:
        return self.p.get("seconds")


class Close(Kind):
    name = "close"
    summary = "close the connection with a close frame (code, reason)"
    params = {
        "code": {**CLOSE_CODE_SCHEMA, "default": 1011},
        "reason": {"type": "string", "default": "", "description": "at most 123 bytes of UTF-8"},
    }

    def check(self) -> None:
        if not sendable_close_code(self.p["code"]):
            raise FaultError(
                f"$.code: {self.p['code']} cannot be sent in a close frame (RFC 6455 7.4); "
                "use 1000-1003, 1007-1014 or 3000-4999"
            )
        if len(self.p["reason"].encode()) > 123:
            raise FaultError("$.reason: a close reason is at most 123 bytes of UTF-8 (RFC 6455)")

    def apply(self, ctx: FaultContext, conns: list[Any]) -> None:
        for conn in conns:
            ctx.close(conn, self.p["code"], self.p["reason"])


class Reset(Kind):
    name = "reset"
    summary = "abort with a TCP RST: no close frame (a crashed peer, a dropped NAT entry)"

    def apply(self, ctx: FaultContext, conns: list[Any]) -> None:
        for conn in conns:
            ctx.reset(conn)


class Error(Kind):
    name = "error"
    summary = "send an error frame (code, msg), optionally then close"
    params = {
        "code": {"enum": sorted(ERRORS), "default": 500, "description": "an Infoway error frame code"},
        "msg": {"type": "string", "minLength": 1, "maxLength": 500},
        "then_close": {"type": "boolean", "default": False},
    }

    def apply(self, ctx: FaultContext, conns: list[Any]) -> None:
        code = self.p["code"]
        msg = self.p.get("msg") or ERRORS[code]
        for conn in conns:
            ctx.send(conn, {"traceId": ctx.trace_id(), "code": code, "msg": msg})
            if self.p["then_close"]:
                ctx.close(conn, ctx.error_close_code, msg)  # the reason is cut to 123 bytes on the way


class Malformed(Kind):
    name = "malformed"
    summary = "send a frame that breaks the contract (variant: json, types, unknown_code, binary)"
    params = {"variant": {"enum": list(MALFORMED), "default": "json"}}

    def apply(self, ctx: FaultContext, conns: list[Any]) -> None:
        for conn in conns:
            ctx.send(conn, MALFORMED[self.p["variant"]])


class Restart(Kind):
    name = "restart"
    summary = "drop everyone abruptly, keep the port closed for `seconds`, come back with the same market"
    params = {"seconds": {**_SECONDS, "default": 1.0, "description": "down time"}}
    targets = ()  # the whole server

    def apply(self, ctx: FaultContext, conns: list[Any]) -> None:
        ctx.restart(self.p["seconds"])


class Refuse(Kind):
    name = "refuse"
    summary = "answer WebSocket handshakes with an HTTP status (code) for `seconds`"
    params = {
        "code": {
            "type": "integer",
            "minimum": 400,
            "maximum": 599,
            "default": 503,
            "description": "HTTP status",
        },
        "seconds": _UNTIL_CLEARED,
    }
    targets = ("key",)  # there is no connection yet to aim at


class Ongoing(Kind):
    """Bends every frame to its connections until it expires (`seconds`) or is cleared."""

    ongoing = True
    stage: ClassVar[int] = 0  # order in which the shaper applies the kinds
    pauses_reading: ClassVar[bool] = False  # the server stops reading the connection while it lasts
    shapes: ClassVar[bool] = True  # it bends outgoing frames (stop_reading does not)

    def shape(self, frames: list[bytes], shaper: Shaper) -> list[bytes]:
        return frames


class Stall(Ongoing):
    name = "stall"
    summary = "stop sending (frames are counted as dropped) and stop reading; the socket stays open"
    params = {"seconds": _UNTIL_CLEARED}
    stage = 0
    pauses_reading = True

    def shape(self, frames: list[bytes], shaper: Shaper) -> list[bytes]:
        shaper.dropped(len(frames))
        return []


class StopReading(Ongoing):
    name = "stop_reading"
    summary = "stop reading the client (its frames queue up in TCP); sending goes on"
    params = {"seconds": _UNTIL_CLEARED}
    pauses_reading = True
    shapes = False


class Reorder(Ongoing):
    name = "reorder"
    summary = "swap pairs of frames with some probability"
    params = {
        "probability": _PROBABILITY,
        "seconds": _UNTIL_CLEARED,
    }
    stage = 1

    def shape(self, frames: list[bytes], shaper: Shaper) -> list[bytes]:
        out: list[bytes] = []
        for f in frames:
            if shaper.held is not None:
                out += [f, shaper.held]
                shaper.held = None
            elif shaper.rng.random() < self.p["probability"]:
                shaper.held = f  # goes out after the next frame
            else:
                out.append(f)
        return out


class Duplicate(Ongoing):
    name = "duplicate"
    summary = "send frames twice with some probability"
    params = {
        "probability": _PROBABILITY,
        "seconds": _UNTIL_CLEARED,
    }
    stage = 2

    def shape(self, frames: list[bytes], shaper: Shaper) -> list[bytes]:
        p = self.p["probability"]
        out: list[bytes] = []
        for f in frames:
            out.append(f)
            if shaper.rng.random() < p:
                out.append(f)
        return out


class Delay(Ongoing):
    name = "delay"
    summary = "hold every frame for `delay` seconds, +/- `jitter`"
    params = {
        "delay": {"type": "number", "minimum": 0, "maximum": 3600, "default": 0.0},
        "jitter": {"type": "number", "minimum": 0, "maximum": 3600, "default": 0.0},
        "seconds": _UNTIL_CLEARED,
    }
    stage = 3

    def wait(self, rng: random.Random) -> float:
        j = self.p["jitter"]
        return max(0.0, self.p["delay"] + (rng.uniform(-j, j) if j else 0.0))


KINDS: dict[str, type[Kind]] = {
    k.name: k
    for k in (Close, Reset, Error, Malformed, Restart, Refuse, Stall, StopReading, Reorder, Duplicate, Delay)
}


def schema() -> dict[str, Any]:
    """The one JSON Schema of a fault, built from the registry (`infoway-mock fault --schema`)."""
    branches = []
    for name, kind in KINDS.items():
        props: dict[str, Any] = {"kind": {"const": name}}
        if "conn" in kind.targets:
            props["conn"] = {"type": "integer", "minimum": 1, "description": "one connection id"}
        if "key" in kind.targets:
            props["key"] = {
                "type": "string",
                "minLength": 1,
                "description": "every connection of one API key",
            }
        props.update(kind.params)
        branches.append(
            {
                "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                "then": {"properties": props, "additionalProperties": False},
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Fault",
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(KINDS)}},
        "not": {"required": ["conn", "key"]},
        "allOf": branches,
    }


_SCHEMA = schema()
_COMMON = ("kind", "conn", "key")


class Fault:
    """A validated fault: what to break (`kind` and its parameters) and for whom (conn, key, or all).

    `Fault("stall", seconds=5)`, `Fault("close", conn=3, code=4001, reason="chaos")`, `Fault.from_dict(...)`.
    Raises FaultError, with the JSON path of the problem, for anything the kind does not accept.
    """

    __slots__ = ("conn", "impl", "key", "kind")

    def __init__(self, kind: str, *, conn: int | None = None, key: str | None = None, **params: Any) -> None:
        raw = {"kind": kind, **({"conn": conn} if conn is not None else {}), **({"key": key} if key else {})}
        raw.update({k: v for k, v in params.items() if v is not None})
        self._init(raw, "$")

    def _init(self, raw: dict[str, Any], at: str) -> None:
        if "conn" in raw and "key" in raw:
            raise FaultError(f"{at}: aim a fault at one conn or one key (or neither: all), not both")
        kind = KINDS.get(raw.get("kind"))  # type: ignore[arg-type]
        if kind is not None:
            for target in ("conn", "key"):
                if target in raw and target not in kind.targets:
                    allowed = " or ".join([*kind.targets, "all"])
                    raise FaultError(f"{at}.{target}: a {kind.name} fault targets {allowed}, not a {target}")
        found = schemas.instance_violations(raw, _SCHEMA, at=at)
        if found:
            v = found[0]
            raise FaultError(f"{v.path}: {v.message}")
        self.kind: str = raw["kind"]
        self.conn: int | None = raw.get("conn")
        self.key: str | None = raw.get("key")
        self.impl: Kind = KINDS[self.kind](**{k: v for k, v in raw.items() if k not in _COMMON})
        try:
            self.impl.check()
        except FaultError as e:
            raise FaultError(at + str(e)[1:]) from None

    @classmethod
    def from_dict(cls, raw: Any, at: str = "$") -> Fault:
        if not isinstance(raw, dict):
            raise FaultError(f"{at}: a fault is an object with a `kind`")
        self = cls.__new__(cls)
        self._init(dict(raw), at)
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.conn is not None:
            out["conn"] = self.conn
        if self.key is not None:
            out["key"] = self.key
        out.update(self.impl.p)
        return out

    @property
    def seconds(self) -> float | None:
        return self.impl.seconds

    def describe(self) -> str:
        target = f"conn {self.conn}" if self.conn is not None else f"key {self.key}" if self.key else "all"
        defaults = self.impl.defaults
        extra = {k: v for k, v in self.impl.p.items() if k not in defaults or defaults[k] != v}
        return f"{self.kind} -> {target}" + (f" {extra}" if extra else "")

    def __repr__(self) -> str:
        return f"Fault({self.to_dict()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))


# -- the engine --------------------------------------------------------------------------------------------


class Shaper:
    """How frames to one connection are bent by the ongoing faults that target it, in stage order."""

    __slots__ = ("conn", "ctx", "held", "kinds", "rng", "waits", "write")

    def __init__(
        self, ctx: FaultContext, conn: Any, kinds: list[Ongoing], write: Callable[[Any, list[bytes]], None]
    ) -> None:
        self.ctx = ctx
        self.conn = conn
        self.rng = ctx.rng
        self.kinds = sorted(kinds, key=lambda k: k.stage)
        self.waits = [k for k in self.kinds if isinstance(k, Delay)]
        self.held: bytes | None = None
        self.write = write

    def deliver(self, frames: list[bytes]) -> None:
        for kind in self.kinds:
            frames = kind.shape(frames, self)
            if not frames:
                return
        if not self.waits:
            self.write(self.conn, frames)
            return
        for f in frames:  # each frame its own delay: jitter reorders them, as a real link would
            wait = max(k.wait(self.rng) for k in self.waits)
            self.ctx.call_later(wait, self.write, self.conn, [f])

    def dropped(self, n: int) -> None:
        self.ctx.count_dropped("stall", n)

    def flush_held(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            self.write(self.conn, [held])


class _Active:
    __slots__ = ("conns", "fault", "id", "timer")

    def __init__(self, fid: int, fault: Fault) -> None:
        self.id = fid
        self.fault = fault
        self.conns: set[Any] = set()
        self.timer: asyncio.TimerHandle | None = None


class FaultEngine:
    """Applies faults through a FaultContext to the connections a view lists; never sees the server."""

    def __init__(
        self,
        ctx: FaultContext,
        connections: Callable[[], Iterable[Any]],
        refusals: Any,
        write: Callable[[Any, list[bytes]], None],
        on_applied: Callable[[Fault], None] = lambda f: None,
        log_size: int = 10_000,
    ) -> None:
        self.ctx = ctx
        self._connections = connections
        self.refusals = refusals  # handshake.Refusals
        self._write = write
        self._on_applied = on_applied
        self.active: dict[int, _Active] = {}
        self.shaped: dict[Any, Shaper] = {}  # empty on the hot path unless an ongoing fault shapes frames
        self._paused: set[Any] = set()  # connections a fault keeps the server from reading
        self._ids = itertools.count(1)
        # The faults applied, newest last, for the report and the console; bounded like every record.
        self.log: deque[dict[str, Any]] = deque(maxlen=log_size)

    async def apply(self, fault: Fault) -> dict[str, Any]:
        """Apply a fault now (awaitable for the asyncio API; the work itself is synchronous)."""
        return self.apply_now(fault)

    def apply_now(self, fault: Fault) -> dict[str, Any]:
        if not isinstance(fault, Fault):
            raise FaultError("$: expected a Fault")
        targets = [c for c in self._connections() if self._matches(fault, c)]
        if fault.conn is not None and not targets:
            raise FaultError(f"$.conn: no open connection {fault.conn}")
        fid = next(self._ids)
        self.log.append({"id": fid, "at": self.ctx.now(), **fault.to_dict()})
        self._on_applied(fault)
        impl = fault.impl
        if isinstance(impl, Refuse):
            seconds = impl.seconds
            self.refusals.add(fid, impl.p["code"], fault.key, self.ctx.now() + (seconds or float("inf")))
            if seconds is not None:
                self.ctx.call_later(seconds, self.clear, fid)
        elif isinstance(impl, Ongoing):
            active = self.active[fid] = _Active(fid, fault)
            for conn in targets:
                self._attach(active, conn)
            if impl.seconds is not None:
                active.timer = self.ctx.call_later(impl.seconds, self.clear, fid)
        else:
            impl.apply(self.ctx, targets)
        out: dict[str, Any] = {"id": fid, "kind": fault.kind, "connections": [c.conn_id for c in targets]}
        if not targets and not isinstance(impl, Restart | Refuse):
            out["note"] = "no open connection matched" + ("; new ones will be" if impl.ongoing else "")
        return out

    def clear(self, fault_id: int | None = None) -> int:
        """End one ongoing fault or refusal (or all of them); returns how many were ended."""
        ids = [*self.active, *self.refusals.ids()] if fault_id is None else [fault_id]
        n = 0
        for fid in ids:
            if self.refusals.remove(fid):
                n += 1
            active = self.active.pop(fid, None)
            if active is None:
                continue
            n += 1
            if active.timer is not None:
                active.timer.cancel()
            for conn in list(active.conns):
                active.conns.discard(conn)
                self._reshape(conn)
        return n

    def recent(self, n: int) -> list[dict[str, Any]]:
        """The last n faults applied, oldest first."""
        log = self.log
        return list(itertools.islice(log, max(0, len(log) - n), None))

    def listing(self) -> list[dict[str, Any]]:
        return [{"id": a.id, **a.fault.to_dict()} for a in self.active.values()]

    # -- hooks the server calls ------------------------------------------------------------------------

    def on_open(self, conn: Any) -> None:
        """A new connection joins the ongoing faults aimed at its key or at everyone."""
        for active in self.active.values():
            if active.fault.conn is None and self._matches(active.fault, conn):
                self._attach(active, conn)

    def on_close(self, conn: Any) -> None:
        self.shaped.pop(conn, None)
        self._paused.discard(conn)
        for active in self.active.values():
            active.conns.discard(conn)

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _matches(fault: Fault, conn: Any) -> bool:
        if fault.conn is not None:
            return conn.conn_id == fault.conn
        return fault.key is None or conn.key == fault.key

    def _attach(self, active: _Active, conn: Any) -> None:
        active.conns.add(conn)
        self._reshape(conn)

    def _reshape(self, conn: Any) -> None:
        """Rebuild a connection's shaper and reading state from the ongoing faults that target it."""
        kinds: list[Ongoing] = [a.fault.impl for a in self.active.values() if conn in a.conns]  # type: ignore[misc]
        deaf = any(k.pauses_reading for k in kinds)
        if deaf and conn not in self._paused:
            self._paused.add(conn)
            self.ctx.pause_reading(conn)
        elif not deaf and conn in self._paused:
            self._paused.discard(conn)
            self.ctx.resume_reading(conn)
        old = self.shaped.pop(conn, None)
        shaping = [k for k in kinds if k.shapes]
        if shaping:
            new = self.shaped[conn] = Shaper(self.ctx, conn, shaping, self._write)
            if old is not None:
                new.held = old.held
        elif old is not None:
            old.flush_held()
