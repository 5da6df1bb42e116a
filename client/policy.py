"""How long to wait before the next connection attempt, as a pure fold over how the previous ones ended.

Backoff exists to protect a server that is up and refusing: a handshake answered 427/429/5xx, a session
the server closes right after opening it, a 501. The live service bans keys for repeated offences, so
those wait a capped, fully jittered, exponentially growing delay, and only a session that stayed up
`healthy_after` seconds earns a fresh start (resetting on every open turns a server that accepts and then
drops into a reconnect storm).

A refused TCP connection says nothing is listening: the server is down (restarting), and trying again
costs it nothing. Those attempts probe quickly (every `probe_interval` seconds, jittered) for at most
`probe_window` seconds, then fall back to the backoff. A session lost without a close frame (a reset,
what a restart does) is the start of such an outage, so the first attempt after it comes quickly too
when the session had proved itself (it was healthy, or it was itself the recovery from an outage), and
once more when it had not. Sessions that keep opening and dropping with no outage between them are what
a misbehaving server looks like: from the second such drop in a row they count as failures.

`BackoffPolicy` is the policy before probing existed (every failure backs off), kept selectable
(`reconnect_policy="backoff"`) and measured against in loadtests/bench_outage.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from infoway_mock.schemas.codes import CONNECTIONS_LIMIT, HEARTBEAT_TIMEOUT, RATE_LIMIT

# How an attempt ended.
UNREACHABLE = "unreachable"  # TCP refused / unreachable / lost before the handshake: nothing listening
TIMEOUT = "timeout"  # no handshake within open_timeout: a server that is up but struggling
REFUSED = "refused"  # the upgrade was answered with an HTTP error status (`code`)
PROTOCOL = "protocol"  # an answer that is not a WebSocket handshake (TLS error, garbage)
DROPPED = "dropped"  # an open session lost its TCP connection without a close frame
CLOSED = "closed"  # an open session the server closed (`code`: the close code or its error frame's code)
LOCAL = "local"  # an open session we ended: dead peer, data idle, unreadable message
KINDS = (UNREACHABLE, TIMEOUT, REFUSED, PROTOCOL, DROPPED, CLOSED, LOCAL)

# Close codes that announce the server itself is going away, as a reset does.
GOING_AWAY = frozenset({1001, 1012})
HTTP_UNAUTHORIZED, HTTP_QUOTA, HTTP_RATE = 401, 427, 429


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one connection attempt ended. Times are monotonic seconds."""

    kind: str
    reason: str
    at: float = 0.0
    code: int | None = None  # HTTP status (refused), close code, or the error code the server sent
    lasted: float = 0.0  # seconds the session was open; 0 when it never opened

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}")

    @property
    def opened(self) -> bool:
        return self.kind in (DROPPED, CLOSED, LOCAL)


@dataclass(frozen=True, slots=True)
class Decision:
    """The delay before the next attempt (None: stop), and the rule that chose it."""

    delay: float | None
    rule: str  # probe | backoff | long | now | stop


@dataclass
class PolicyConfig:
    base: float = 1.0
    cap: float = 30.0
    healthy_after: float = 10.0
    long_delay: float = 60.0  # after 427 / 512: the quota frees up only when other connections go
    probe_interval: tuple[float, float] = (0.2, 0.5)
    probe_window: float = 10.0


class BackoffPolicy:
    """Every failure backs off (full jitter, capped); 401 stops; 427 waits long; 513 after a healthy
    session comes straight back. The policy before probing, kept as the benchmark's baseline."""

    def __init__(self, config: PolicyConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = config or PolicyConfig()
        self.rng = rng or random.Random()
        self.failures = 0  # the backoff exponent
        self.attempts = 0  # attempts since the last healthy session (what max_attempts counts)

    def _backoff(self, exponent: int) -> float:
        c = self.config
        return self.rng.uniform(0.0, min(c.cap, c.base * 2 ** min(exponent, 30)))

    def _long(self) -> float:
        return self.config.long_delay * (0.5 + self.rng.random() / 2)

    def _healthy(self, o: Outcome) -> bool:
        healthy = o.opened and o.lasted >= self.config.healthy_after
        if healthy:
            self.failures = 0
            self.attempts = 0
        self.attempts += 1
        return healthy

    def next(self, o: Outcome) -> Decision:
        healthy = self._healthy(o)
        if o.kind == REFUSED and o.code == HTTP_UNAUTHORIZED:
            return Decision(None, "stop")
        if _quota(o):
            self.failures += 1
            return Decision(self._long(), "long")
        if o.kind == CLOSED and o.code == HEARTBEAT_TIMEOUT and healthy:
            return Decision(0.0, "now")  # our heartbeats were late; the link itself is fine
        delay = self._backoff(self.failures)
        self.failures += 1
        return Decision(delay, "backoff")


class ReconnectPolicy(BackoffPolicy):
    """BackoffPolicy, except that an outage (nothing listening) is probed quickly for a bounded time."""

    def __init__(self, config: PolicyConfig | None = None, rng: random.Random | None = None) -> None:
        super().__init__(config, rng)
        self.probing_since: float | None = None  # the first unreachable attempt of the current outage
        self.slow_probes = 0  # attempts past the probe window, backed off
        self.outage_seen = False  # an unreachable attempt since the last session ended
        self.unproven = False  # the last quick retry followed a drop with no outage or health behind it

    def next(self, o: Outcome) -> Decision:
        if o.kind == UNREACHABLE:
            self.attempts += 1
            return self._probe(o.at)
        self.probing_since, self.slow_probes = None, 0
        if not o.opened:
            return super().next(o)
        after_outage, self.outage_seen = self.outage_seen, False
        proven = o.lasted >= self.config.healthy_after or after_outage
        going_away = o.kind == DROPPED or (o.kind == CLOSED and o.code in GOING_AWAY)
        # A drop the session earned (healthy, or the recovery from an outage) is retried quickly; so is
        # one unproven drop in a row, so that a restart seen only through its reset is caught too. A
        # second unproven drop (a server that accepts and drops) backs off.
        if going_away and (proven or not self.unproven):
            self.unproven = not proven
            self._healthy(o)
            return Decision(self._jittered_probe(), "probe")
        return super().next(o)

    def _probe(self, at: float) -> Decision:
        self.outage_seen = True
        if self.probing_since is None:
            self.probing_since = at
        if at - self.probing_since < self.config.probe_window:
            return Decision(self._jittered_probe(), "probe")
        # The outage outlasted the window: back off, as from a first failure, so a long outage is not
        # probed every half second all day.
        delay = self._backoff(self.failures + self.slow_probes)
        self.slow_probes += 1
        return Decision(delay, "backoff")

    def _jittered_probe(self) -> float:
        lo, hi = self.config.probe_interval
        return self.rng.uniform(lo, hi)


def _quota(o: Outcome) -> bool:
    return (o.kind == REFUSED and o.code == HTTP_QUOTA) or (o.kind == CLOSED and o.code == CONNECTIONS_LIMIT)


def slows_pacer(o: Outcome) -> bool:
    """A 501 (or an HTTP 429) means our requests came too fast for the server: halve the pacer's budget."""
    return (o.kind == REFUSED and o.code == HTTP_RATE) or (o.opened and o.code == RATE_LIMIT)


POLICIES = {"adaptive": ReconnectPolicy, "backoff": BackoffPolicy}
