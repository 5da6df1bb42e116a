"""What each connection did over time, for the HTML contract report: opens, closes (with codes),
heartbeats, requests and pushes per time bucket.

Pure and bounded: time is passed in (seconds since the server started), the server samples its
connections' counters about once a second and reports opens and closes. Each series keeps at most
`max_points` buckets: when it would grow past that, neighbouring buckets are merged and the bucket width
doubles, so a connection open for a day costs the same as one open for ten minutes; a closed connection is
compacted to `closed_points`, since thousands of them are kept. Heartbeat times past `max_heartbeats` are
counted, not drawn, and say so. Numbers live in arrays (8 bytes each), not lists of objects.
"""

from __future__ import annotations

import collections
from array import array
from dataclasses import dataclass, field
from typing import Any


class Series:
    """Counts in buckets of `width` seconds from `origin`; never more than `max_points` buckets."""

    __slots__ = ("counts", "max_points", "origin", "width")

    def __init__(self, origin: float, width: float = 1.0, max_points: int = 600) -> None:
        self.origin = origin
        self.width = width
        self.max_points = max(2, max_points)
        self.counts = array("q")

    def add(self, t: float, n: int) -> None:
        if n <= 0:
            return
        i = max(0, int((t - self.origin) // self.width))
        while i >= self.max_points:
            self._halve()
            i = max(0, int((t - self.origin) // self.width))
        counts = self.counts
        if i >= len(counts):
            counts.extend([0] * (i + 1 - len(counts)))
        counts[i] += n

    def compact(self, max_points: int) -> None:
        self.max_points = max(2, max_points)
        while len(self.counts) > self.max_points:
            self._halve()

    def _halve(self) -> None:
        c = self.counts
        self.counts = array("q", (c[i] + (c[i + 1] if i + 1 < len(c) else 0) for i in range(0, len(c), 2)))
        self.width *= 2

    def total(self) -> int:
        return sum(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {"origin": round(self.origin, 3), "width": self.width, "counts": list(self.counts)}


@dataclass
class ConnTimeline:
    conn_id: int
    key: str  # the real key: the report masks it, as everything shown does
    business: str
    opened: float
    closed: float | None = None
    close_code: int | None = None
    heartbeat_times: array[float] = field(default_factory=lambda: array("d"))
    heartbeats_not_drawn: int = 0
    requests: Series = field(default_factory=lambda: Series(0.0))
    pushes: Series = field(default_factory=lambda: Series(0.0))
    # The counters as of the last sample, so each sample adds only what is new.
    seen_in: int = 0
    seen_out: int = 0
    seen_heartbeats: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.conn_id,
            "business": self.business,
            "opened": round(self.opened, 3),
            "closed": None if self.closed is None else round(self.closed, 3),
            "close_code": self.close_code,
            "heartbeats": [round(t, 3) for t in self.heartbeat_times],
            "heartbeats_not_drawn": self.heartbeats_not_drawn,
            "requests": self.requests.to_dict(),
            "pushes": self.pushes.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Counters:
    """One connection's counters at a sample: frames in and out, heartbeats, when the last one came."""

    frames_in: int
    frames_out: int
    heartbeats: int
    last_heartbeat: float | None  # seconds since the server started


class Timeline:
    def __init__(
        self,
        max_points: int = 600,
        max_closed: int = 10_000,
        max_heartbeats: int = 200,
        closed_points: int = 120,
    ) -> None:
        self.max_points = max_points
        self.closed_points = closed_points
        self.max_heartbeats = max_heartbeats
        self.open: dict[int, ConnTimeline] = {}
        self.closed: collections.deque[ConnTimeline] = collections.deque(maxlen=max_closed)

    def opened(self, conn_id: int, key: str, business: str, t: float) -> None:
        self.open[conn_id] = ConnTimeline(
            conn_id,
            key,
            business,
            t,
            requests=Series(t, max_points=self.max_points),
            pushes=Series(t, max_points=self.max_points),
        )

    def sample(self, t: float, conn_id: int, c: Counters) -> None:
        tl = self.open.get(conn_id)
        if tl is not None:
            self._take(tl, t, c)

    def ended(self, conn_id: int, t: float, close_code: int | None, c: Counters) -> None:
        """The connection is gone: take its last counters, then keep it with the closed ones."""
        tl = self.open.pop(conn_id, None)
        if tl is None:
            return
        self._take(tl, t, c)
        tl.closed, tl.close_code = t, close_code
        tl.requests.compact(self.closed_points)
        tl.pushes.compact(self.closed_points)
        self.closed.append(tl)

    def _take(self, tl: ConnTimeline, t: float, c: Counters) -> None:
        tl.requests.add(t, c.frames_in - tl.seen_in)
        tl.pushes.add(t, c.frames_out - tl.seen_out)
        new = c.heartbeats - tl.seen_heartbeats
        if new > 0:
            # Sampled about once a second: one heartbeat between samples (the usual case) is placed
            # exactly; of several, only the last one's time is known, the others are put beside it.
            at = c.last_heartbeat if c.last_heartbeat is not None else t
            room = self.max_heartbeats - len(tl.heartbeat_times)
            drawn = max(0, min(new, room))
            tl.heartbeat_times.extend([round(at, 3)] * drawn)
            tl.heartbeats_not_drawn += new - drawn
        tl.seen_in, tl.seen_out, tl.seen_heartbeats = c.frames_in, c.frames_out, c.heartbeats

    def all(self) -> list[ConnTimeline]:
        return [*self.closed, *self.open.values()]
