"""Every knob of the reference client, with the live service's numbers as defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .policy import POLICIES

QUEUE_POLICIES = ("block", "drop-oldest", "keep-latest")


@dataclass
class ClientConfig:
    # Heartbeat and liveness.
    heartbeat_interval: float = 30.0  # seconds; the server times out after 60 s without a 10010
    heartbeat_ack: bool = True  # ask for 10011 so an idle connection still hears from the server
    # A frame the server must answer went unanswered this long -> reconnect (default: one heartbeat
    # interval, so a silent server is caught within two intervals).
    dead_peer_timeout: float | None = None
    data_idle_timeout: float | None = None  # no push for this long while subscribed -> reconnect (off)

    # Request pacing: every frame we send counts against the server's per-connection limit.
    rate_limit: int = 60
    rate_window: float = 60.0
    headroom: float = 0.2
    max_codes: int = 200  # symbols per request when batching
    ack_timeout: float = 10.0  # a subscribe unacked this long is sent again, then reported
    max_request_attempts: int = 2

    # Reconnecting (see policy.py for the rules).
    reconnect_policy: str = "adaptive"  # adaptive: probe quickly while nothing listens | backoff: always
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    healthy_after: float = 10.0  # a session this long resets the backoff; shorter counts as a failure
    long_backoff: float = 60.0  # after 427: wait for the quota to free up
    probe_interval: tuple[float, float] = (0.2, 0.5)  # seconds between probes while nothing listens
    probe_window: float = 10.0  # probe this long into an outage, then back off
    max_attempts: int | None = None  # None: retry forever; else raise GaveUp after this many failures
    open_timeout: float = 10.0

    # What one connection accepts from the server.
    max_message_size: int = 2**22  # bytes
    max_fragments: int = 4096  # fragments of one message

    # Consumption.
    queue_size: int = 10_000
    queue_policy: str = "block"  # block | drop-oldest | keep-latest (depth coalesced per symbol)

    # Gap handling.
    backfill_klines: bool = False  # fetch missed closed candles over REST after a reconnect
    rest_url: str | None = None  # default: derived from the WebSocket URL

    def dead_after(self) -> float:
        return self.dead_peer_timeout if self.dead_peer_timeout is not None else self.heartbeat_interval

    def validate(self) -> ClientConfig:
        """Raise ValueError naming the first setting out of its range; return self."""
        for f in fields(self):
            _check(f.name, getattr(self, f.name))
        lo, hi = self.probe_interval
        if not 0 <= lo <= hi:
            raise ValueError(f"probe_interval must be (low, high) with 0 <= low <= high, not {(lo, hi)}")
        return self


_POSITIVE = {
    "heartbeat_interval",
    "rate_limit",
    "rate_window",
    "max_codes",
    "ack_timeout",
    "max_request_attempts",
    "backoff_cap",
    "open_timeout",
    "max_message_size",
    "max_fragments",
    "queue_size",
}
_NON_NEGATIVE = {"backoff_base", "healthy_after", "long_backoff", "probe_window"}
_POSITIVE_OR_NONE = {"dead_peer_timeout", "data_idle_timeout", "max_attempts"}
_CHOICES = {"reconnect_policy": tuple(POLICIES), "queue_policy": QUEUE_POLICIES}


def _check(name: str, value: object) -> None:
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"{name} must be one of {', '.join(_CHOICES[name])}, not {value!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if name in _POSITIVE and not (number and value > 0):  # type: ignore[operator]
        raise ValueError(f"{name} must be a number above 0, not {value!r}")
    if name in _NON_NEGATIVE and not (number and value >= 0):  # type: ignore[operator]
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    if name in _POSITIVE_OR_NONE and value is not None and not (number and value > 0):  # type: ignore[operator]
        raise ValueError(f"{name} must be a number above 0 or None, not {value!r}")
    if name == "headroom" and not (number and 0 <= value < 1):  # type: ignore[operator]
        raise ValueError(f"headroom must be within [0, 1), not {value!r}")
