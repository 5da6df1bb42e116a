"""The contract report: how each client behaved, judged rule by rule.

The server records one `ConnectionRecord` per connection; `build_report` groups them by API key (one
client) and gives a verdict per rule. Pure: records in, a JSON-able dict and a text summary out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import mask_key

PASS, FAIL, NA = "pass", "fail", "n/a"
INVALID_FRAME_ERRORS = (506, 507, 515)


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
    max_heartbeat_gap: float = 0.0
    peak_window_frames: int = 0
    final: set[tuple[Any, str]] = field(default_factory=set)
    ever: set[tuple[Any, str]] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.conn_id,
            "business": self.business,
            "opened": round(self.opened, 3),
            "closed": None if self.closed is None else round(self.closed, 3),
            "close_code": self.close_code,
            "frames_received": self.frames,
            "requests_by_code": {str(k): v for k, v in sorted(self.requests_by_code.items())},
            "errors_sent": {str(k): v for k, v in sorted(self.errors_by_code.items())},
            "heartbeats": self.heartbeats,
            "max_heartbeat_gap_s": round(self.max_heartbeat_gap, 3),
            "peak_frames_per_window": self.peak_window_frames,
            "subscriptions_at_end": len(self.final),
        }


@dataclass(frozen=True)
class Rules:
    heartbeat_interval: float = 30.0  # a client must heartbeat at least this often
    rate_limit: int = 60  # frames per window
    rate_window: float = 60.0


def _verdict(ok: bool | None, detail: str) -> dict[str, str]:
    return {"verdict": NA if ok is None else PASS if ok else FAIL, "detail": detail}


def judge(records: list[ConnectionRecord], rules: Rules, now: float) -> dict[str, dict[str, str]]:
    """Verdicts for one client (all connections of one key), oldest connection first."""
    invalid = sum(r.errors_by_code.get(c, 0) for r in records for c in INVALID_FRAME_ERRORS)
    out = {"valid_frames": _verdict(invalid == 0, f"{invalid} invalid frame(s) answered with 506/507/515")}

    gaps = []
    for r in records:
        end = r.closed if r.closed is not None else now
        last = r.max_heartbeat_gap
        # The stretch from the last heartbeat (or the open) to the end counts only if it already overran.
        tail = end - r.opened if r.heartbeats == 0 else 0.0
        gaps.append(max(last, tail))
    worst = max(gaps, default=0.0)
    timeouts = sum(r.errors_by_code.get(513, 0) for r in records)
    ok = worst <= rules.heartbeat_interval and timeouts == 0
    out["heartbeat"] = _verdict(
        ok if records else None,
        f"longest gap {worst:.1f}s (rule: every {rules.heartbeat_interval:g}s), "
        f"{timeouts} heartbeat timeout(s)",
    )

    peak = max((r.peak_window_frames for r in records), default=0)
    limited = sum(r.errors_by_code.get(501, 0) for r in records)
    out["request_rate"] = _verdict(
        peak <= rules.rate_limit and limited == 0,
        f"peak {peak} frames per {rules.rate_window:g}s (rule: at most {rules.rate_limit}), {limited} x 501",
    )

    reconnects = missed = 0
    details = []
    for prev, nxt in itertools.pairwise(records):
        if prev.closed is None or nxt.opened < prev.closed or not prev.final:
            continue
        reconnects += 1
        lost = prev.final - nxt.ever
        if lost:
            missed += 1
            sample = ", ".join(
                sorted(f"{ch[0]}{':' + str(ch[1]) if ch[1] else ''}/{sym}" for ch, sym in lost)[:5]
            )
            details.append(
                f"conn {nxt.conn_id} did not resubscribe {len(lost)} of conn {prev.conn_id}'s ({sample})"
            )
    out["resubscribed"] = _verdict(
        None if reconnects == 0 else missed == 0,
        f"{reconnects - missed}/{reconnects} reconnects resubscribed everything"
        + ("; " if details else "")
        + "; ".join(details),
    )
    return out


def build_report(
    records: list[ConnectionRecord], rules_for: Callable[[str], Rules], now: float
) -> dict[str, Any]:
    by_key: dict[str, list[ConnectionRecord]] = {}
    for r in sorted(records, key=lambda r: (r.opened, r.conn_id)):
        by_key.setdefault(r.key, []).append(r)
    clients = []
    for key, recs in by_key.items():
        rules = rules_for(key)
        verdicts = judge(recs, rules, now)
        clients.append(
            {
                "key": mask_key(key),
                "rules_applied": {
                    "heartbeat_interval_s": rules.heartbeat_interval,
                    "rate_limit": rules.rate_limit,
                    "rate_window_s": rules.rate_window,
                },
                "connections": [r.to_dict() for r in recs],
                "rules": verdicts,
                "verdict": FAIL if any(v["verdict"] == FAIL for v in verdicts.values()) else PASS,
            }
        )
    return {
        "clients": clients,
        "verdict": FAIL if any(c["verdict"] == FAIL for c in clients) else PASS,
    }


def summary(report: dict[str, Any]) -> str:
    lines = [f"infoway-mock contract report: {report['verdict'].upper()}"]
    for c in report["clients"]:
        n = len(c["connections"])
        lines.append(f"client {c['key']}: {n} connection(s), {c['verdict'].upper()}")
        for name, v in c["rules"].items():
            lines.append(f"  {v['verdict'].upper():4} {name}: {v['detail']}")
    if not report["clients"]:
        lines.append("no clients connected")
    return "\n".join(lines)
