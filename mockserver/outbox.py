"""The one path from Infoway frames to sockets.

Session replies, pushes (general and the trade fast path), injected error and malformed frames all come
through here, so every frame is checked (strict mode) and counted exactly once, bent by the ongoing faults
of its connection, batched per pump step, written, and held to the send-buffer bound, in one place.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from infoway_mock import schemas
from infoway_mock.schemas.codes import LEGACY_TRADE_PUSH, PUSH_TRADE

from .fanout import SHORT_HEADERS, Batch, text_frame
from .metrics import Metrics

log = logging.getLogger("infoway.mock")
_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack


# Trade types for includeTy pushes. The live values were never captured (PROTOCOL.md): our choice, a
# regular trade most of the time, now and then an odd lot or an off-exchange print, stable per trade.
_TRADE_TYPES = ("0",) * 18 + ("4", "22")


def trade_type(trade: dict[str, Any]) -> str:
    return _TRADE_TYPES[(trade["t"] * 31 + len(trade["v"])) % len(_TRADE_TYPES)]


def binary_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 65536:
        return _LEN16(0x82, 126, n) + payload
    return _LEN64(0x82, 127, n) + payload


class Outbox:
    def __init__(
        self,
        metrics: Metrics,
        *,
        strict: bool,
        max_send_buffer: int,
        shaped: dict[Any, Any],
        on_violation: Callable[[dict[str, Any], schemas.ContractError], None],
        on_slow: Callable[[Any], None],
        on_write_error: Callable[[Any, BaseException], None],
        wall_ms: Callable[[], int],
    ) -> None:
        self.metrics = metrics
        self.strict = strict
        self.bound = max_send_buffer
        self.shaped = shaped  # the fault engine's connection -> Shaper map (empty unless a fault shapes)
        self._on_violation = on_violation
        self._on_slow = on_slow
        self._on_write_error = on_write_error
        self._wall_ms = wall_ms
        self.legacy_trades = False  # the tutorial's {"code":10000,"data":{s,p,v,t}} trade push
        self.send_timestamp = False  # add "st" (send time, epoch ms) to pushes
        self._checkers: dict[int, Any] = {}
        self._batch: Batch | None = None

    # -- the write path --------------------------------------------------------------------------------

    def write(self, conn: Any, frames: list[bytes]) -> None:
        """Where frames meet a socket. A connection over the send-buffer bound is dropped at once, so
        memory queued to a client that does not read never outgrows the bound by more than one write."""
        try:
            conn.write_frames(frames)
            self.metrics.socket_writes += 1
            over = conn.buffered() > self.bound
        except Exception as e:  # one broken connection must never take the stream of others with it
            self._on_write_error(conn, e)
            return
        if over:
            self._on_slow(conn)

    def _deliver(self, conn: Any, frames: list[bytes]) -> None:
        shaper = self.shaped.get(conn) if self.shaped else None
        if shaper is None:
            self.write(conn, frames)
        else:
            shaper.deliver(frames)

    # -- replies and one-off frames --------------------------------------------------------------------

    def send(self, conn: Any, frame: dict[str, Any] | str | bytes) -> None:
        """One frame to one connection: a dict is JSON (checked and counted by code), a str a raw text
        frame (the stock banner, malformed faults), bytes a binary frame."""
        if isinstance(frame, dict):
            self._check(frame, "news" if conn.kind == "news" else "ws")
            code = frame.get("code", 0)
            self.metrics.frames_sent[code] += 1
            if "traceId" in frame:
                self.metrics.errors_sent[code] += 1
            wire = text_frame(orjson.dumps(frame))
        elif isinstance(frame, str):
            self.metrics.raw_frames_sent["text"] += 1
            wire = text_frame(frame.encode())
        else:
            self.metrics.raw_frames_sent["binary"] += 1
            wire = binary_frame(frame)
        self._deliver(conn, [wire])

    def send_framed(self, conn: Any, frames: list[bytes], counts: Mapping[int, int]) -> None:
        """Frames framed and checked beforehand (a replayed capture, the firehose), counted by code
        (`counts`, -1 for frames that are not JSON) and shaped like every other frame."""
        for code, n in counts.items():
            self.metrics.frames_sent[code] += n
        self._deliver(conn, frames)

    # -- pushes: one pump step is one batch -------------------------------------------------------------

    def begin(self) -> None:
        self._batch = Batch(self._deliver)

    def end(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.flush()

    def push(self, subs: Iterable[Any], code: int, data: dict[str, Any], n: int) -> None:
        """One push, encoded and checked once, to every subscriber in `subs` (n of them)."""
        frame: dict[str, Any] = {"code": code, "data": data}
        if self.send_timestamp:
            frame["st"] = self._wall_ms()
        if self.strict:
            self._check_push(code, frame)
        self.metrics.frames_sent[code] += n
        wire = text_frame(orjson.dumps(frame))
        batch = self._batch
        if batch is not None:
            batch.add(subs, wire)
        else:
            for conn in subs:
                self._deliver(conn, [wire])

    def push_trades(  # noqa: C901 (the fan-out hot loop, inlined on purpose)
        self,
        trades: list[dict[str, Any]],
        hub_trades: dict[str, set[Any]],
        hub_ty: dict[str, set[Any]] | None = None,
    ) -> None:
        """The hottest loop of the server: one frame per trade, encoded and checked once, then fanned out.
        Anything unusual (legacy pushes, send timestamps, `ty` for includeTy subscribers) takes the general
        path; connections under a shaping fault are written through their shaper by the batch."""
        if hub_ty:
            trades = self._push_ty(trades, hub_trades, hub_ty)
        if self.legacy_trades or self.send_timestamp or self._batch is None:
            for trade in trades:
                subs = hub_trades.get(trade["s"])
                if subs:
                    if self.legacy_trades:
                        legacy = {k: trade[k] for k in ("s", "p", "v", "t")}
                        self.push(subs, LEGACY_TRADE_PUSH, legacy, len(subs))
                    else:
                        self.push(subs, PUSH_TRADE, trade, len(subs))
            return
        batch = self._batch
        check = self._checker(PUSH_TRADE) if self.strict else None
        dumps, headers = orjson.dumps, SHORT_HEADERS
        sent = 0
        # Consecutive trades of one symbol go to the same subscribers: they are handed over as one run.
        run_subs: Any = None
        run: list[bytes] = []
        for trade in trades:
            subs = hub_trades.get(trade["s"])
            if not subs:
                continue
            frame = {"code": PUSH_TRADE, "data": trade}
            if check is not None:
                try:
                    check(frame)
                except schemas.ContractError as e:
                    self._on_violation(frame, e)
            data = dumps(frame)
            # text_frame's short-header case inlined: most trades are under 126 bytes.
            wire = headers[len(data)] + data if len(data) < 126 else text_frame(data)
            if subs is not run_subs:
                if run:
                    batch.add_many(run_subs, run)
                run_subs, run = subs, []
            run.append(wire)
            sent += len(subs)
        if run:
            batch.add_many(run_subs, run)
        self.metrics.frames_sent[PUSH_TRADE] += sent

    def _push_ty(
        self, trades: list[dict[str, Any]], hub_trades: dict[str, set[Any]], hub_ty: dict[str, set[Any]]
    ) -> list[dict[str, Any]]:
        """Push the trades of symbols that have includeTy subscribers here (with `ty` to those, without to
        the rest); return the others for the fast path."""
        rest = []
        for trade in trades:
            ty_subs = hub_ty.get(trade["s"])
            if not ty_subs:
                rest.append(trade)
                continue
            plain = hub_trades.get(trade["s"], set()) - ty_subs
            if plain:
                self.push(plain, PUSH_TRADE, trade, len(plain))
            self.push(ty_subs, PUSH_TRADE, {**trade, "ty": trade_type(trade)}, len(ty_subs))
        return rest

    # -- contract checks (strict mode) -----------------------------------------------------------------

    def _checker(self, code: int) -> Any:
        checker = self._checkers.get(code)
        if checker is None:
            checker = self._checkers[code] = schemas.server_frame_checker(code)
        return checker

    def _check_push(self, code: int, frame: dict[str, Any]) -> None:
        try:
            self._checker(code)(frame)
        except schemas.ContractError as e:
            self._on_violation(frame, e)

    def _check(self, frame: dict[str, Any], socket: str) -> None:
        if not self.strict:
            return
        try:
            schemas.validate_server_frame(frame, fast=True, socket=socket)
        except schemas.ContractError as e:
            self._on_violation(frame, e)
