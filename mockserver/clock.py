"""Time for the server shell: monotonic seconds for timers, and a market clock that can run faster."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Maps monotonic time onto market time (epoch ms), optionally sped up so tests see candles close."""

    def __init__(
        self,
        speed: float = 1.0,
        start_ms: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.speed = speed
        self.monotonic = monotonic
        self.wall = wall
        self._mono0 = monotonic()
        self.start_ms = int(wall() * 1000) if start_ms is None else int(start_ms)

    def market_ms(self, mono: float | None = None) -> int:
        mono = self.monotonic() if mono is None else mono
        return self.start_ms + int((mono - self._mono0) * 1000 * self.speed)

    def wall_ms(self) -> int:
        return int(self.wall() * 1000)
