"""Every knob of the reference client, with the live service's numbers as defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClientConfig:
    # Heartbeat and liveness.
    heartbeat_interval: float = 30.0  # the server times out after 60 s without a 10010
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

    # Reconnecting.
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    healthy_after: float = 10.0  # a session this long resets the backoff; shorter counts as a failure
    long_backoff: float = 60.0  # after 427: wait for the quota to free up
    max_attempts: int | None = None  # None: retry forever; else raise GaveUp after this many failures
    open_timeout: float = 10.0

    # Consumption.
    queue_size: int = 10_000
    queue_policy: str = "block"  # block | drop-oldest | keep-latest (depth coalesced per symbol)

    # Gap handling.
    backfill_klines: bool = False  # fetch missed closed candles over REST after a reconnect
    rest_url: str | None = None  # default: derived from the WebSocket URL

    def dead_after(self) -> float:
        return self.dead_peer_timeout if self.dead_peer_timeout is not None else self.heartbeat_interval
