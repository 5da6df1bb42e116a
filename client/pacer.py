"""Request pacing under the server's per-connection limit (60 frames a minute, all kinds together).

A sliding log, not a token bucket: a bucket that starts full and refills at limit/window can put
limit + limit frames into one window, which is exactly what the server's sliding window punishes.
The log mirrors the server's rule with two margins. Headroom in count (48 of 60) covers frames the
server counts that we did not pace. Headroom in time (a frame leaves our log a little after it leaves
the server's) covers latency jitter: the server stamps a frame when it reads it, so a burst read a few
milliseconds late and the next burst read on time would otherwise land in one server window.
"""

from __future__ import annotations

from collections import deque


class Pacer:
    def __init__(
        self, limit: int = 60, window: float = 60.0, headroom: float = 0.2, margin: float | None = None
    ) -> None:
        self.limit = limit
        self.window = window
        self.headroom = headroom
        # Seconds a frame stays in our log beyond the server's window; 2 s at most, as on the live
        # service jitter beyond that is a broken link, and a larger margin only costs throughput.
        self.margin = min(headroom * window, 2.0) if margin is None else margin
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
        span = self.window + self.margin
        cutoff = now - span
        while sent and sent[0] <= cutoff:
            sent.popleft()
        if len(sent) < self.budget:
            return 0.0
        # Wait until enough old sends leave the window to get under the budget again.
        return sent[len(sent) - self.budget] + span - now

    def ready_at(self) -> float:
        """The earliest time the next frame may go out (in the past when it may go now)."""
        sent, budget = self._sent, self.budget
        if len(sent) < budget:
            return float("-inf")
        return sent[len(sent) - budget] + self.window + self.margin

    def record(self, now: float) -> None:
        self._sent.append(now)

    def slow_down(self) -> None:
        self.factor = max(0.25, self.factor / 2)

    def recover(self) -> None:
        self.factor = min(1.0, self.factor * 2)
