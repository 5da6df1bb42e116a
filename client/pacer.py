"""Request pacing under the server's per-connection limit (60 frames a minute, all kinds together).

A sliding log, not a token bucket: a bucket that starts full and refills at limit/window can put
limit + limit frames into one window, which is exactly what the server's sliding window punishes.
The log mirrors the server's rule, minus headroom for clock skew and latency.
"""

from __future__ import annotations

from collections import deque


class Pacer:
    def __init__(self, limit: int = 60, window: float = 60.0, headroom: float = 0.2) -> None:
        self.limit = limit
        self.window = window
        self.headroom = headroom
        self.factor = 1.0  # lowered after a 501/429, recovers when a session stays healthy
        self._sent: deque[float] = deque()

    @property
    def budget(self) -> int:
        """Frames allowed per window right now."""
        return max(1, int(self.limit * (1.0 - self.headroom) * self.factor))

    def reset(self) -> None:
        """A new connection: the server's window for it starts empty."""
        self._sent.clear()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame may go out (0 = now)."""
        sent = self._sent
        cutoff = now - self.window
        while sent and sent[0] <= cutoff:
            sent.popleft()
        if len(sent) < self.budget:
            return 0.0
        # Wait until enough old sends leave the window to get under the budget again.
        return sent[len(sent) - self.budget] + self.window - now

    def record(self, now: float) -> None:
        self._sent.append(now)

    def slow_down(self) -> None:
        self.factor = max(0.25, self.factor / 2)

    def recover(self) -> None:
        self.factor = min(1.0, self.factor * 2)
