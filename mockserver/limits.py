"""Rate windows and per-key quotas. Pure: time is always passed in, nothing here sleeps or reads a clock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


class SlidingWindow:
    """At most `limit` events in any `window` seconds (a sliding log, so bursts at a boundary are caught).

    The log holds at most `limit` timestamps, so memory is bounded by the limit, not the traffic.
    """

    __slots__ = ("_log", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._log: deque[float] = deque(maxlen=max(limit, 1))

    def hit(self, now: float) -> bool:
        """Record one event; False when it goes over the limit (the event is not recorded then)."""
        if self.limit <= 0:
            return True
        log = self._log
        cutoff = now - self.window
        while log and log[0] <= cutoff:
            log.popleft()
        if len(log) >= self.limit:
            return False
        log.append(now)
        return True

    def count(self, now: float) -> int:
        cutoff = now - self.window
        return sum(1 for t in self._log if t > cutoff)


@dataclass
class KeyAccount:
    """One API key's shared state across its connections: connection slots and product budget."""

    key: str
    connections: int = 0
    products: dict[int, int] = field(default_factory=dict)  # connection id -> distinct products held
    requests_today: int = 0
    day: int = -1
    rest_window: SlidingWindow | None = None
    news_connections: int = 0

    def products_total(self, excluding: int | None = None) -> int:
        return sum(n for cid, n in self.products.items() if cid != excluding)


class QuotaBook:
    """Per-key connection slots and product totals.

    Acquire and release happen without an await in between the check and the update, so concurrent
    handshakes on one event loop can never overshoot a quota.
    """

    def __init__(self) -> None:
        self._accounts: dict[str, KeyAccount] = {}

    def account(self, key: str) -> KeyAccount:
        acc = self._accounts.get(key)
        if acc is None:
            acc = self._accounts[key] = KeyAccount(key)
        return acc

    def try_connect(self, key: str, limit: int) -> bool:
        acc = self.account(key)
        if limit > 0 and acc.connections >= limit:
            return False
        acc.connections += 1
        return True

    def disconnect(self, key: str, conn_id: int | None = None) -> None:
        acc = self._accounts.get(key)
        if acc is None:
            return
        acc.connections = max(0, acc.connections - 1)
        if conn_id is not None:
            acc.products.pop(conn_id, None)
        self._forget_if_idle(acc)

    def try_connect_news(self, key: str, limit: int) -> bool:
        acc = self.account(key)
        if limit > 0 and acc.news_connections >= limit:
            return False
        acc.news_connections += 1
        return True

    def disconnect_news(self, key: str) -> None:
        acc = self._accounts.get(key)
        if acc is not None:
            acc.news_connections = max(0, acc.news_connections - 1)
            self._forget_if_idle(acc)

    def _forget_if_idle(self, acc: KeyAccount) -> None:
        if (
            acc.connections == 0
            and acc.news_connections == 0
            and not acc.products
            and acc.rest_window is None
        ):
            del self._accounts[acc.key]

    def connections(self, key: str) -> int:
        acc = self._accounts.get(key)
        return acc.connections if acc else 0

    def total_connections(self) -> int:
        return sum(a.connections + a.news_connections for a in self._accounts.values())

    def total_products(self) -> int:
        return sum(a.products_total() for a in self._accounts.values())

    def rest_hit(self, key: str, limit: int, window: float, now: float) -> bool:
        acc = self.account(key)
        if acc.rest_window is None or acc.rest_window.limit != limit:
            acc.rest_window = SlidingWindow(limit, window)
        return acc.rest_window.hit(now)
