"""The contract report as one self-contained HTML page: no script, no stylesheet or font to fetch, every
chart an inline SVG, so it opens from a CI artifact or a mail attachment years later.

Per client (a masked key): the verdict of each rule with its evidence, a timeline of its connections
(opens, closes with their close codes, heartbeats), its request rate against the plan's limit (the
busiest connection's frames in the last rate window, at each moment) and its push rate; then the
connections table. Pure: the report (report.build_report) and the timelines (timeline.Timeline, by
connection id) in, a string out.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_LANES = 40  # connections drawn per client timeline; the rest are counted, and listed in the table
GRID = 300  # points per rate chart
W, LANE_H, LEFT, RIGHT = 960, 18, 70, 110
_RANK = {"fail": 3, "warn": 2, "pass": 1, "n/a": 0}
BUSINESS_COLOURS = ("#2f6fde", "#7b4fd6", "#0f8f8f", "#c2571a", "#5a6b84", "#b03a7a")

_CSS = """
body{margin:0;background:#f4f6f9;color:#1d2430;
font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",Roboto,sans-serif}
header{background:#18202e;color:#e8ecf3;padding:18px 28px}
header h1{margin:0 0 4px;font-size:20px;font-weight:600}
header p{margin:0;color:#9aa6ba;font-size:13px}
main{max-width:1100px;margin:0 auto;padding:18px 28px 48px}
section.client{background:#fff;border:1px solid #e3e7ee;border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:0 0 6px;display:flex;align-items:center;gap:10px}
h3{font-size:12px;text-transform:uppercase;letter-spacing:.6px;color:#6b7587;margin:18px 0 6px}
.key{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
.pill{display:inline-block;padding:1px 9px;border-radius:9px;font-size:11px;font-weight:700;color:#fff;
text-transform:uppercase;letter-spacing:.4px}
.pass{background:#1f9d55}.warn{background:#d99100}.fail{background:#d64545}.na{background:#8d96a5}
.muted{color:#6b7587}.note{color:#6b7587;font-size:12px;margin:4px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:#6b7587;font-size:11px;font-weight:600;padding:4px 8px;
border-bottom:1px solid #e3e7ee}
td{padding:4px 8px;border-bottom:1px solid #f0f2f6;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.rule{font-weight:600;white-space:nowrap;width:120px}td.v{width:64px}
svg{display:block;width:100%;height:auto;background:#fbfcfe;border:1px solid #e3e7ee;border-radius:6px}
svg text{font:11px system-ui,sans-serif;fill:#6b7587}
details{margin-top:10px}summary{cursor:pointer;color:#2f6fde}
.summary{display:flex;gap:28px;margin:10px 0 0;flex-wrap:wrap}
.summary div{display:flex;flex-direction:column}.summary b{font-size:18px}
.summary span{font-size:11px;color:#6b7587;text-transform:uppercase;letter-spacing:.5px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pill(verdict: str) -> str:
    cls = "na" if verdict == "n/a" else verdict
    return f'<span class="pill {_e(cls)}">{_e(verdict)}</span>'


def _fmt_t(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _ticks(t0: float, t1: float, n: int = 6) -> list[float]:
    span = max(t1 - t0, 1e-9)
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(t0 / step) * step
    return [first + i * step for i in range(int((t1 - first) / step) + 1)]


class _Axis:
    def __init__(self, t0: float, t1: float) -> None:
        self.t0, self.t1 = t0, max(t1, t0 + 1e-3)

    def x(self, t: float) -> float:
        return LEFT + (min(max(t, self.t0), self.t1) - self.t0) / (self.t1 - self.t0) * (W - LEFT - RIGHT)

    def grid(self, top: float, bottom: float) -> str:
        out = []
        ticks = _ticks(self.t0, self.t1)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        # Sub-second spans (a client that lived 100 ms) get as many decimals as the ticks need.
        decimals = max(0, -math.floor(math.log10(step))) if step < 1 else None
        for t in ticks:
            x = self.x(t)
            label = f"{t:.{decimals}f}s" if decimals is not None else _fmt_t(t)
            out.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eef1f5"/>'
                f'<text x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">{label}</text>'
            )
        return "".join(out)


def _close_label(code: int | None) -> str:
    # 1006 is what a WebSocket end records when the connection ended without a close frame (a reset).
    if code is None or code == 1006:
        return f"{code or ''} no close frame".strip()
    return str(code)


def _lanes(conns: list[dict[str, Any]], tls: dict[int, dict[str, Any]], axis: _Axis, now: float) -> str:
    drawn = conns[:MAX_LANES]
    colours: dict[str, str] = {}
    h = 24 + LANE_H * len(drawn) + 22
    parts = [f'<svg viewBox="0 0 {W} {h}" role="img" aria-label="connections timeline">']
    parts.append(axis.grid(14, h - 22))
    for i, c in enumerate(drawn):
        y = 18 + i * LANE_H
        tl = tls.get(c["id"], {})
        opened = c["opened"]
        closed = c["closed"]
        end = closed if closed is not None else now
        colour = colours.setdefault(c["business"], BUSINESS_COLOURS[len(colours) % len(BUSINESS_COLOURS)])
        x0, x1 = axis.x(opened), axis.x(end)
        parts.append(f'<text x="{LEFT - 8}" y="{y + 11}" text-anchor="end">#{_e(c["id"])}</text>')
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1.5):.1f}" height="{LANE_H - 7}" rx="3" '
            f'fill="{colour}" fill-opacity=".18" stroke="{colour}" stroke-opacity=".6">'
            f"<title>conn {_e(c['id'])} ({_e(c['business'])}): opened {_fmt_t(opened)}"
            + (f", closed {_fmt_t(closed)}" if closed is not None else ", still open")
            + "</title></rect>"
        )
        for hb in tl.get("heartbeats", []):
            x = axis.x(hb)
            parts.append(
                f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" y2="{y + LANE_H - 5}" stroke="{colour}" '
                'stroke-width="1.5"><title>heartbeat at ' + _fmt_t(hb) + "</title></line>"
            )
        if closed is not None:
            code = c.get("close_code")
            label = _close_label(code)
            bad = code not in (1000, 1001)
            parts.append(
                f'<circle cx="{x1:.1f}" cy="{y + LANE_H / 2 - 1:.1f}" r="4" '
                f'fill="{"#d64545" if bad else "#1f9d55"}"><title>closed at {_fmt_t(closed)}: {_e(label)}'
                "</title></circle>"
                f'<text x="{x1 + 7:.1f}" y="{y + 11}">{_e(label)}</text>'
            )
        else:
            parts.append(f'<text x="{x1 + 7:.1f}" y="{y + 11}">open</text>')
    parts.append("</svg>")
    out = "".join(parts)
    out += (
        '<p class="note">bars: connections · ticks: heartbeats · dots: closes with their close code '
        "(red unless 1000 or 1001; 1006: the TCP connection ended without a close frame)</p>"
    )
    if len(conns) > MAX_LANES:
        out += f'<p class="muted">{len(conns) - MAX_LANES} more connection(s) not drawn; see the table.</p>'
    return out


class _Cumulative:
    """F(t): how many of a connection's events came before t, spread evenly within each bucket, and
    within its lifetime (a connection that lived 100 ms sent its frames in those 100 ms, not over the
    whole second its bucket spans)."""

    def __init__(self, tl: dict[str, Any], name: str, now: float) -> None:
        series = tl[name]
        self.origin, self.width = series["origin"], series["width"]
        self.counts = series["counts"]
        self.lo = tl["opened"]
        self.hi = tl["closed"] if tl["closed"] is not None else now
        self.prefix = [0]
        for n in self.counts:
            self.prefix.append(self.prefix[-1] + n)

    def __call__(self, t: float) -> float:
        x = (t - self.origin) / self.width
        if x <= 0:
            return 0.0
        i = int(x)
        if i >= len(self.counts):
            return float(self.prefix[-1])
        start = max(self.origin + i * self.width, self.lo)
        end = min(self.origin + (i + 1) * self.width, self.hi)
        share = 1.0 if end <= start else min(1.0, max(0.0, (t - start) / (end - start)))
        return self.prefix[i] + self.counts[i] * share


def _grid(axis: _Axis) -> list[float]:
    step = (axis.t1 - axis.t0) / GRID
    return [axis.t0 + (i + 1) * step for i in range(GRID)]


def _window_peak(tls: list[dict[str, Any]], grid: list[float], window: float, now: float) -> list[float]:
    """At each grid time, the most frames any one connection sent in the window before it (the rate
    limit is per connection)."""
    peak = [0.0] * len(grid)
    for tl in tls:
        f = _Cumulative(tl, "requests", now)
        if not f.prefix[-1]:
            continue
        for gi, g in enumerate(grid):
            peak[gi] = max(peak[gi], f(g) - f(g - window))
    return peak


def _rate(tls: list[dict[str, Any]], grid: list[float], now: float) -> list[float]:
    """Pushes per second at each grid time, summed over the connections."""
    if len(grid) < 2:
        return [0.0] * len(grid)
    step = grid[1] - grid[0]
    out = [0.0] * len(grid)
    for tl in tls:
        f = _Cumulative(tl, "pushes", now)
        if not f.prefix[-1]:
            continue
        for gi, g in enumerate(grid):
            out[gi] += (f(g) - f(g - step)) / step
    return out


def _chart(
    axis: _Axis, grid: list[float], values: list[float], *, label: str, colour: str, limit: float | None
) -> str:
    h, top, bottom = 150, 12, 126
    hi = max([*values, limit or 0.0, 1.0]) * 1.1
    parts = [f'<svg viewBox="0 0 {W} {h}" role="img" aria-label="{_e(label)}">', axis.grid(top, bottom)]

    def y(v: float) -> float:
        return bottom - v / hi * (bottom - top)

    for v in (0.0, hi / 2, hi):
        parts.append(f'<text x="{LEFT - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    if values:
        pts = " ".join(f"{axis.x(g):.1f},{y(v):.1f}" for g, v in zip(grid, values, strict=True))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
    if limit is not None:
        ly = y(limit)
        parts.append(
            f'<line x1="{LEFT}" y1="{ly:.1f}" x2="{W - RIGHT}" y2="{ly:.1f}" stroke="#d64545" '
            f'stroke-dasharray="5 4"/><text x="{W - RIGHT + 6}" y="{ly + 4:.1f}" fill="#d64545">'
            f"limit {limit:g}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _rules_table(rules: dict[str, dict[str, str]]) -> str:
    rows = "".join(
        f'<tr data-rule="{_e(name)}"><td class="rule">{_e(name)}</td><td class="v">{_pill(v["verdict"])}</td>'
        f"<td>{_e(v['detail'])}</td></tr>"
        for name, v in rules.items()
    )
    head = "<tr><th>rule</th><th>verdict</th><th>evidence</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _conn_table(conns: list[dict[str, Any]]) -> str:
    rows = []
    for c in conns:
        errors = ", ".join(f"{n} x {code}" for code, n in c.get("errors_sent", {}).items()) or "–"
        closed = "open" if c["closed"] is None else _fmt_t(c["closed"])
        code = "–" if c["closed"] is None else (c["close_code"] if c["close_code"] is not None else "none")
        rows.append(
            f"<tr><td>#{_e(c['id'])}</td><td>{_e(c['business'])}</td><td class=num>{_fmt_t(c['opened'])}</td>"
            f"<td class=num>{_e(closed)}</td><td class=num>{_e(code)}</td>"
            f"<td class=num>{_e(c['frames_received'])}</td><td class=num>{_e(c['heartbeats'])}</td>"
            f"<td class=num>{_e(c['max_heartbeat_gap_s'])}s</td>"
            f"<td class=num>{_e(c['peak_frames_per_window'])}</td>"
            f"<td class=num>{_e(c['subscriptions_at_end'])}</td><td>{_e(errors)}</td></tr>"
        )
    head = (
        "<tr><th>conn</th><th>business</th><th class=num>opened</th><th class=num>closed</th>"
        "<th class=num>close code</th><th class=num>frames in</th><th class=num>heartbeats</th>"
        "<th class=num>longest gap</th><th class=num>peak/window</th><th class=num>subscriptions</th>"
        "<th>errors sent</th></tr>"
    )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _client(c: dict[str, Any], tls: dict[int, dict[str, Any]], now: float) -> str:
    conns = c["connections"]
    rules_applied = c["rules_applied"]
    window = rules_applied["rate_window_s"]
    peak = max((x["peak_frames_per_window"] for x in conns), default=0)
    t0 = min((x["opened"] for x in conns), default=0.0)
    t1 = max((x["closed"] if x["closed"] is not None else now for x in conns), default=now)
    pad = max((t1 - t0) * 0.02, 0.002)
    axis = _Axis(max(0.0, t0 - pad), t1 + pad)
    mine = [tls[x["id"]] for x in conns if x["id"] in tls]
    grid = _grid(axis)
    closes = [x for x in conns if x["closed"] is not None]
    codes: dict[str, int] = {}
    for x in closes:
        label = _close_label(x["close_code"])
        codes[label] = codes.get(label, 0) + 1
    heartbeats = sum(x["heartbeats"] for x in conns)
    streams = "".join(
        f"<tr><td>{_e(s['business'])}</td><td>{_pill(s['verdict'])}</td><td>{len(s['connections'])}</td></tr>"
        for s in c.get("streams", [])
    )
    parts = [
        f'<section class="client" data-client="{_e(c["key"])}">',
        f'<h2><span class="key">{_e(c["key"])}</span>{_pill(c["verdict"])}</h2>',
        '<div class="summary">',
        f"<div><b>{len(conns)}</b><span>connections</span></div>",
        f"<div><b>{len(closes)}</b><span>disconnects</span></div>",
        f"<div><b>{heartbeats}</b><span>heartbeats</span></div>",
        f"<div><b>{rules_applied['rate_limit']}/{window:g}s</b><span>request limit</span></div>",
        f"<div><b>{rules_applied['heartbeat_timeout_s']:g}s</b><span>heartbeat timeout</span></div>",
        "</div>",
        "<h3>Verdicts and evidence</h3>",
        _rules_table(c["rules"]),
    ]
    if len(c.get("streams", [])) > 1:
        parts.append(
            "<h3>Streams</h3><table><thead><tr><th>business</th><th>verdict</th><th>connections</th></tr>"
            f"</thead><tbody>{streams}</tbody></table>"
        )
    parts += [
        "<h3>Timeline: connects, disconnects, heartbeats</h3>",
        _lanes(conns, tls, axis, now),
        (
            '<p class="muted">closes: '
            + ", ".join(f"{n} x {_e(k)}" for k, n in sorted(codes.items()))
            + "</p>"
            if codes
            else ""
        ),
        f"<h3>Request rate: the busiest connection's frames in the last {window:g}s "
        f'<span class="muted">(sampled each second; exact peak {peak})</span></h3>',
        _chart(
            axis,
            grid,
            _window_peak(mine, grid, window, now),
            label="frames / window",
            colour="#7b4fd6",
            limit=float(rules_applied["rate_limit"]),
        ),
        "<h3>Push rate: frames per second to this client</h3>",
        _chart(axis, grid, _rate(mine, grid, now), label="frames / s", colour="#2f6fde", limit=None),
        f"<details><summary>{len(conns)} connection(s)</summary>{_conn_table(conns)}</details>",
        "</section>",
    ]
    return "".join(parts)


def render(
    report: dict[str, Any],
    timelines: dict[int, dict[str, Any]],
    now: float,
    *,
    title: str = "infoway-mock contract report",
    generated: datetime | None = None,
) -> str:
    """The page. `now` is the report's time in seconds since the server started (the timelines' clock)."""
    generated = generated or datetime.now(UTC)
    when = generated.strftime("%Y-%m-%d %H:%M:%S %Z")
    since = (generated - timedelta(seconds=now)).strftime("%H:%M:%S")
    # Worst first: a reader opens this to find out what failed.
    ordered = sorted(report["clients"], key=lambda c: -_RANK.get(c["verdict"], 0))
    clients = "".join(_client(c, timelines, now) for c in ordered) or (
        '<p class="muted">No client connected.</p>'
    )
    n_conns = sum(len(c["connections"]) for c in report["clients"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}: {_e(report['verdict'])}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)} {_pill(report['verdict'])}</h1>"
        f"<p>{len(report['clients'])} client(s), {n_conns} connection(s) over {_fmt_t(now)} of serving; "
        f"written {_e(when)}; times are seconds since the mock started ({_e(since)}). Keys are masked. "
        "A client fails only on a FAIL; WARN is advice.</p></header>"
        f"<main>{clients}</main></body></html>\n"
    )
