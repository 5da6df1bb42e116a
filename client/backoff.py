"""Reconnect delays: exponential with full jitter, reset only after a session stayed healthy.

Resetting as soon as a connection opens (what websockets' reconnect loop does) turns a server that
accepts and then drops into a reconnect storm, and Infoway bans keys for repeated drops.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        base: float = 1.0,
        cap: float = 30.0,
        healthy_after: float = 10.0,
        long_delay: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.healthy_after = healthy_after
        self.long_delay = long_delay  # for 427: the quota frees up only when other connections go
        self.failures = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**failures)]."""
        ceiling = min(self.cap, self.base * (2 ** min(self.failures, 30)))
        self.failures += 1
        return self.rng.uniform(0.0, ceiling)

    def long(self) -> float:
        self.failures += 1
        return self.long_delay * (0.5 + self.rng.random() / 2)

    def session_ended(self, lasted: float) -> None:
        """A session that stayed up long enough earns a fresh start; a short one counts as a failure."""
        if lasted >= self.healthy_after:
            self.failures = 0
