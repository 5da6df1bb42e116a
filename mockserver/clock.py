"""Time for the server shell: monotonic seconds for timers, and a market clock that can run faster."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Maps monotonic time onto market time (epoch ms), optionally sped up so tests see candles close.

    A held clock stands still at its start until `release()`: with a fixed start time (`--start`) the
    server holds it until the first subscription, so two runs stream the same frames at the same market
    times however long the client took to connect.
    """

    def __init__(
        self,
        speed: float = 1.0,
        start_ms: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        held: bool = False,
        anchor_ms: int | None = None,
    ) -> None:
        self.speed = speed
        self.monotonic = monotonic
        self.wall = wall
        self.start_ms = int(wall() * 1000) if start_ms is None else int(start_ms)
        self.held = held
        # Anchored to the wall clock (worker groups): processes started at different moments agree on
        # market time, as long as their clocks do (one machine, or NTP across machines).
        self.anchor_ms = anchor_ms
        self._mono0 = monotonic()
        if anchor_ms is not None:
            self._mono0 -= (wall() * 1000 - anchor_ms) / 1000.0

    def market_ms(self, mono: float | None = None) -> int:
        if self.held:
            return self.start_ms
        mono = self.monotonic() if mono is None else mono
        return self.start_ms + int((mono - self._mono0) * 1000 * self.speed)

    def release(self, mono: float | None = None) -> None:
        """Start a held clock: market time runs from start_ms as of `mono`."""
        if self.held:
            self.held = False
            self._mono0 = self.monotonic() if mono is None else mono

    def wall_ms(self) -> int:
        return int(self.wall() * 1000)
