"""The contract report: how each client behaved, judged rule by rule.

The server records one `ConnectionRecord` per connection; `build_report` groups them by API key (one
client) and, within a key, by business: a stream is the connections of one (key, business), and the
rules are judged per stream, then merged per client (the worst verdict wins). Pure: records in, a
JSON-able dict and a text summary out.

Verdicts: pass, warn, fail, n/a. FAIL is for what the live service punishes or what loses data: a
heartbeat gap beyond the server's timeout or a 513, more frames per window than the plan allows or a 501,
a request the server refused (506/507/515 invalid frames; 502-505/516 limits), a reconnect that did not
resubscribe. WARN is for what the docs recommend without enforcing: a heartbeat every 30 s (the vendor's
own tutorial client first heartbeats at ~40 s, which the 60 s timeout accepts), a `trace` on every
request. A client fails only on a FAIL; the overall verdict likewise.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import mask_key

PASS, WARN, FAIL, NA = "pass", "warn", "fail", "n/a"
_RANK = {NA: 0, PASS: 1, WARN: 2, FAIL: 3}
INVALID_FRAME_ERRORS = (506, 507, 515)
LIMIT_ERRORS = (502, 503, 504, 505, 516)


@dataclass
class ConnectionRecord:
    conn_id: int
    key: str
    business: str
    opened: float
    closed: float | None = None
    close_code: int | None = None
    frames: int = 0
    requests_by_code: dict[int, int] = field(default_factory=dict)
    errors_by_code: dict[int, int] = field(default_factory=dict)
    heartbeats: int = 0
    max_heartbeat_gap: float = 0.0  # longest stretch between the open or a heartbeat and the next heartbeat
    peak_window_frames: int = 0
    final: set[tuple[Any, str]] = field(default_factory=set)
    ever: set[tuple[Any, str]] = field(default_factory=set)
    # When the last heartbeat arrived (same clock as opened); None: none did, or the recorder did not say.
    last_heartbeat: float | None = None
    requests_without_trace: int = 0  # requests that carried no `trace` (the docs require one)

    def end(self, now: float) -> float:
        return self.closed if self.closed is not None else now

    def tail(self, now: float) -> float:
        """The silence after the last heartbeat (or the open, if none came) to the close or now."""
        if self.heartbeats == 0:
            return self.end(now) - self.opened
        if self.last_heartbeat is None:
            return 0.0  # not recorded: judge the gaps between heartbeats only
        return max(0.0, self.end(now) - self.last_heartbeat)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.conn_id,
            "business": self.business,
            "opened": round(self.opened, 3),
            "closed": None if self.closed is None else round(self.closed, 3),
            "close_code": self.close_code,
            "frames_received": self.frames,
            "requests_by_code": {str(k): v for k, v in sorted(self.requests_by_code.items())},
            "requests_without_trace": self.requests_without_trace,
            "errors_sent": {str(k): v for k, v in sorted(self.errors_by_code.items())},
            "heartbeats": self.heartbeats,
            "max_heartbeat_gap_s": round(self.max_heartbeat_gap, 3),
            "last_heartbeat": None if self.last_heartbeat is None else round(self.last_heartbeat, 3),
            "peak_frames_per_window": self.peak_window_frames,
            "subscriptions_at_end": len(self.final),
        }


@dataclass(frozen=True)
class Rules:
    heartbeat_interval: float = 30.0  # the docs: heartbeat at least this often (longer: WARN)
    rate_limit: int = 60  # frames per window
    rate_window: float = 60.0
    heartbeat_timeout: float = 60.0  # the server's: a longer silence is punished with 513 (FAIL)
    heartbeat_slack: float = 0.1  # share of the interval a timer may run late before it is a WARN


def _verdict(verdict: str, detail: str) -> dict[str, str]:
    return {"verdict": verdict, "detail": detail}


def _worst(verdicts: list[str]) -> str:
    return max(verdicts, key=_RANK.__getitem__, default=NA)


def _heartbeat(records: list[ConnectionRecord], rules: Rules, now: float) -> dict[str, str]:
    if not records:
        return _verdict(NA, "no connections")
    worst, where = 0.0, ""
    for r in records:
        gap, tail = r.max_heartbeat_gap, r.tail(now)
        if max(gap, tail) > worst:
            worst = max(gap, tail)
            where = f"conn {r.conn_id}" + (" after its last heartbeat" if tail >= gap else "")
    timeouts = sum(r.errors_by_code.get(513, 0) for r in records)
    if timeouts or worst > rules.heartbeat_timeout:
        verdict = FAIL
    elif worst > rules.heartbeat_interval * (1.0 + rules.heartbeat_slack):
        verdict = WARN
    else:
        verdict = PASS
    return _verdict(
        verdict,
        f"longest silence {worst:.1f}s{' (' + where + ')' if where else ''} (recommended: every "
        f"{rules.heartbeat_interval:g}s; the server times out after {rules.heartbeat_timeout:g}s), "
        f"{timeouts} heartbeat timeout(s)",
    )


def _resubscribed(records: list[ConnectionRecord], window: int = 16) -> dict[str, str]:
    """Pair each connection that closed holding subscriptions with a connection of the same stream that
    opened after it closed, and check the successor subscribed everything again.

    Parallel sockets are judged too: pairs are chosen greedily by how many subscriptions they share
    (then the shortest wait from close to open), each connection in at most one pair, so a client with
    two sockets that both reconnect gets each matched to its own predecessor, and a fresh socket opened
    meanwhile is not mistaken for a reconnect. Successors are looked for among the next `window`
    connections opened after the close, which bounds the work for a reconnect storm."""
    by_open = sorted(records, key=lambda r: (r.opened, r.conn_id))
    opened = [r.opened for r in by_open]
    candidates = []
    for prev in records:
        if prev.closed is None or not prev.final:
            continue
        start = bisect.bisect_left(opened, prev.closed)
        for nxt in by_open[start : start + window]:
            if nxt is not prev:
                shared = len(prev.final & nxt.ever)
                candidates.append((-shared, nxt.opened - prev.closed, prev.conn_id, nxt.conn_id, prev, nxt))
    candidates.sort(key=lambda c: c[:4])
    used_prev: set[int] = set()
    used_next: set[int] = set()
    pairs = []
    for *_, prev, nxt in candidates:
        if prev.conn_id in used_prev or nxt.conn_id in used_next:
            continue
        used_prev.add(prev.conn_id)
        used_next.add(nxt.conn_id)
        pairs.append((prev, nxt))
    pairs.sort(key=lambda pn: (pn[1].opened, pn[1].conn_id))
    missed = 0
    details = []
    for prev, nxt in pairs:
        lost = prev.final - nxt.ever
        if lost:
            missed += 1
            sample = ", ".join(
                sorted(f"{ch[0]}{':' + str(ch[1]) if ch[1] else ''}/{sym}" for ch, sym in lost)[:5]
            )
            details.append(
                f"conn {nxt.conn_id} did not resubscribe {len(lost)} of conn {prev.conn_id}'s ({sample})"
            )
    if not pairs:
        return _verdict(NA, "0/0 reconnects")
    return _verdict(
        FAIL if missed else PASS,
        f"{len(pairs) - missed}/{len(pairs)} reconnects resubscribed everything"
        + ("; " if details else "")
        + "; ".join(details),
    )


def judge(records: list[ConnectionRecord], rules: Rules, now: float) -> dict[str, dict[str, str]]:
    """Verdicts for one stream (the connections of one key and business), oldest connection first."""
    out: dict[str, dict[str, str]] = {}
    invalid = sum(r.errors_by_code.get(c, 0) for r in records for c in INVALID_FRAME_ERRORS)
    out["valid_frames"] = _verdict(
        FAIL if invalid else PASS, f"{invalid} invalid frame(s) answered with 506/507/515"
    )
    out["heartbeat"] = _heartbeat(records, rules, now)

    peak = max((r.peak_window_frames for r in records), default=0)
    limited = sum(r.errors_by_code.get(501, 0) for r in records)
    out["request_rate"] = _verdict(
        FAIL if peak > rules.rate_limit or limited else PASS,
        f"peak {peak} frames per {rules.rate_window:g}s (rule: at most {rules.rate_limit}), {limited} x 501",
    )

    refused = {c: n for c in LIMIT_ERRORS if (n := sum(r.errors_by_code.get(c, 0) for r in records))}
    out["limits"] = _verdict(
        FAIL if refused else PASS,
        "requests refused over plan limits: "
        + (", ".join(f"{n} x {c}" for c, n in refused.items()) or "none"),
    )

    requests = sum(sum(r.requests_by_code.values()) for r in records)
    untraced = sum(r.requests_without_trace for r in records)
    out["trace"] = _verdict(
        NA if requests == 0 else WARN if untraced else PASS,
        f"{untraced} of {requests} request(s) without a trace (the docs require one)",
    )

    out["resubscribed"] = _resubscribed(records)
    return out


def _merge(streams: list[tuple[str, dict[str, dict[str, str]]]]) -> dict[str, dict[str, str]]:
    """Per rule, the worst verdict over the streams of a client; details name each business."""
    if len(streams) == 1:
        return streams[0][1]
    out = {}
    for name in streams[0][1]:
        verdicts = [(b, rules[name]) for b, rules in streams]
        out[name] = _verdict(
            _worst([v["verdict"] for _, v in verdicts]),
            "; ".join(f"{b}: {v['verdict']}, {v['detail']}" for b, v in verdicts),
        )
    return out


def build_report(
    records: list[ConnectionRecord], rules_for: Callable[[str], Rules], now: float
) -> dict[str, Any]:
    by_key: dict[str, dict[str, list[ConnectionRecord]]] = {}
    for r in sorted(records, key=lambda r: (r.opened, r.conn_id)):
        by_key.setdefault(r.key, {}).setdefault(r.business, []).append(r)
    clients = []
    for key, by_business in by_key.items():
        rules = rules_for(key)
        judged = [(b, judge(recs, rules, now)) for b, recs in by_business.items()]
        streams = [
            {
                "business": b,
                "connections": [r.conn_id for r in by_business[b]],
                "rules": verdicts,
                "verdict": _worst([v["verdict"] for v in verdicts.values()]),
            }
            for b, verdicts in judged
        ]
        merged = _merge(judged)
        recs = sorted((r for rs in by_business.values() for r in rs), key=lambda r: (r.opened, r.conn_id))
        clients.append(
            {
                "key": mask_key(key),
                "rules_applied": {
                    "heartbeat_interval_s": rules.heartbeat_interval,
                    "heartbeat_timeout_s": rules.heartbeat_timeout,
                    "rate_limit": rules.rate_limit,
                    "rate_window_s": rules.rate_window,
                },
                "connections": [r.to_dict() for r in recs],
                "streams": streams,
                "rules": merged,
                "verdict": _overall(v["verdict"] for v in merged.values()),
            }
        )
    return {"clients": clients, "verdict": _overall(c["verdict"] for c in clients)}


def _overall(verdicts: Any) -> str:
    """fail on any fail, else warn on any warn, else pass (n/a alone is a pass)."""
    worst = _worst(list(verdicts))
    return worst if worst in (FAIL, WARN) else PASS


def summary(report: dict[str, Any]) -> str:
    lines = [f"infoway-mock contract report: {report['verdict'].upper()}"]
    for c in report["clients"]:
        n = len(c["connections"])
        streams = ", ".join(s["business"] for s in c.get("streams", []))
        lines.append(f"client {c['key']}: {n} connection(s) ({streams}), {c['verdict'].upper()}")
        for name, v in c["rules"].items():
            lines.append(f"  {v['verdict'].upper():4} {name}: {v['detail']}")
    if not report["clients"]:
        lines.append("no clients connected")
    lines += [f"  note {n}" for n in report.get("notes", [])]  # e.g. from a replay: what the capture lacked
    return "\n".join(lines)
