"""The live console: a page at /console and a WebSocket at /console/ws, for loopback clients with the token.

The page (console_page/index.html, app.js, style.css, shipped in the package, no build step, no network beyond
the mock) shows the open connections, the fault buttons of the registry per connection, per key and for
all, the scenario library and the timeline of the one playing, the contract report rule by rule, and the
market (symbols streaming, push rate, a price chart). It is updated from here, never polled: at most
`1 / interval` times a second one aggregated state goes to each open console, with only the rows its view
shows (filter, offset, limit), so a thousand connections cost a page of rows, not a thousand.

The console sees the server through `ConsolePort` (what it reads and the fault engine it acts through),
never the server itself. It also keeps the `Timeline` (sampled about once a second whether a console is
open or not) that the HTML report draws.

Masked keys only: rows, fault listings and scenario steps show `mask_key`; a key is aimed at by an opaque
reference (`k1`, `k2`...) so the raw key never reaches the browser.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import html_report
from . import scenario as scenario_mod
from .config import ServerConfig, mask_key
from .connection import HttpRequest, HttpResponse
from .fanout import text_frame
from .faults import KINDS, Fault, FaultEngine, FaultError
from .handshake import is_loopback
from .hub import Hub
from .scenario import Scenario, play
from .timeline import Counters, Timeline

log = logging.getLogger("infoway.mock")

CONSOLE_PATH = "/console"
# Not "console/": a folder named like this module would be a second, competing `console` to import.
ASSETS = Path(__file__).with_name("console_page")
_ASSET_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
MAX_VIEW_ROWS = 200  # rows one console may ask for at a time
MAX_FILTER = 100
CHART_POINTS = 240  # price samples kept per charted symbol (two minutes at two updates a second)
MAX_SYMBOL_ROWS = 100  # streaming symbols listed (the total is always given)
FAULT_LOG_ROWS = 20


def registry() -> list[dict[str, Any]]:
    """The fault kinds as the page builds its buttons from them: a new kind needs no UI work."""
    return [
        {
            "name": k.name,
            "summary": k.summary,
            "targets": [*k.targets, "all"],
            "params": k.params,
            "ongoing": k.ongoing,
        }
        for k in KINDS.values()
    ]


def masked_fault(raw: dict[str, Any]) -> dict[str, Any]:
    """A fault as the console shows it: the key masked, the target spelled out."""
    out = {k: v for k, v in raw.items() if k not in ("key", "conn")}
    if raw.get("conn") is not None:
        out["target"] = f"conn {raw['conn']}"
    elif raw.get("key"):
        out["target"] = f"key {mask_key(raw['key'])}"
    else:
        out["target"] = "all"
    return out


# -- scenarios -------------------------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """The scenario playing (or last played): its timeline, what has fired, and how to stop it."""

    scenario: Scenario
    scale: float
    started: float
    schedule: list[tuple[float, int, Fault]]
    fired: list[dict[str, Any]] = field(default_factory=list)
    state: str = "playing"  # playing, done, stopped, failed
    ended: float | None = None
    task: asyncio.Future[Any] | None = None

    @property
    def duration(self) -> float:
        return self.scenario.duration * self.scale

    def status(self, now: float) -> dict[str, Any]:
        elapsed = min((self.ended if self.ended is not None else now) - self.started, self.duration)
        steps = []
        for i, (at, _, fault) in enumerate(self.schedule):
            step: dict[str, Any] = {"at": round(at, 3), "fault": masked_fault(fault.to_dict())}
            if i < len(self.fired):
                step.update(self.fired[i])
            steps.append(step)
        return {
            "name": self.scenario.name,
            "description": self.scenario.description,
            "scale": self.scale,
            "duration": round(self.duration, 3),
            "elapsed": round(max(0.0, elapsed), 3),
            "state": self.state,
            "steps": steps,
        }


class _Recording:
    """The fault sink a console-started scenario plays into: applies, and remembers what each step did."""

    def __init__(self, faults: FaultEngine, run: ScenarioRun, now: Callable[[], float]) -> None:
        self._faults = faults
        self._run = run
        self._now = now

    def apply_now(self, fault: Fault) -> dict[str, Any]:
        at = round(self._now() - self._run.started, 3)
        try:
            result = self._faults.apply_now(fault)
        except ValueError as e:
            self._run.fired.append({"fired": at, "error": str(e)})
            raise
        self._run.fired.append({"fired": at, "id": result["id"], "connections": len(result["connections"])})
        return result


class ScenarioPlayer:
    """The server's handle on the scenario playing: start one, stop it (its ongoing faults end with it),
    and its progress for the console. One at a time, so stop means something unambiguous."""

    def __init__(
        self,
        faults: FaultEngine,
        apply_settings: Callable[[dict[str, Any]], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Future[Any]],
        now: Callable[[], float],
    ) -> None:
        self._faults = faults
        self._apply_settings = apply_settings
        self._spawn = spawn
        self._now = now
        self.run: ScenarioRun | None = None

    @property
    def playing(self) -> bool:
        return self.run is not None and self.run.state == "playing"

    def start(self, scenario: Scenario, scale: float = 1.0, *, settings: bool = True) -> ScenarioRun:
        """Play `scenario` now; settings=False when its `server:` block is already in the config."""
        if self.playing:
            assert self.run is not None
            raise ValueError(f"scenario {self.run.scenario.name!r} is playing: stop it first")
        if settings and scenario.server:
            self._apply_settings(scenario.server)  # refuses start-only settings, loudly, before anything
        run = ScenarioRun(scenario, scale, self._now(), scenario.schedule(scale))
        self.run = run
        run.task = self._spawn(play(_Recording(self._faults, run, self._now), scenario, scale))
        run.task.add_done_callback(lambda task: self._finished(run, task))
        return run

    def _finished(self, run: ScenarioRun, task: asyncio.Future[Any]) -> None:
        if run.ended is None:
            run.ended = self._now()
        if task.cancelled():
            run.state = "stopped" if run.state == "playing" else run.state
        elif task.exception() is not None:
            run.state = "failed"
            log.error("scenario %s failed: %r", run.scenario.name, task.exception())
        else:
            run.state = "done"

    def stop(self) -> int:
        """Stop the scenario playing and end the ongoing faults it applied; returns how many ended."""
        run = self.run
        if run is None or run.state != "playing":
            raise ValueError("no scenario is playing")
        run.state, run.ended = "stopped", self._now()
        if run.task is not None:
            run.task.cancel()
        return sum(self._faults.clear(f["id"]) for f in run.fired if "id" in f)

    def status(self) -> dict[str, Any] | None:
        return None if self.run is None else self.run.status(self._now())


# -- the console ------------------------------------------------------------------------------------------


@dataclass
class ConsolePort:
    """What the console may see and do, and nothing more (the server builds it)."""

    config: ServerConfig
    now: Callable[[], float]  # monotonic seconds
    started: float  # the server's start, on the same clock
    connections: Callable[[], Iterable[Any]]  # open Infoway connections (market data and news)
    faults: FaultEngine
    report: Callable[[], dict[str, Any]]
    hub: Hub[Any]
    last_price: Callable[[str], str | None]
    frames_sent: Callable[[], int]  # every frame pushed so far (for the push rate)
    scenarios: ScenarioPlayer
    info: Callable[[], dict[str, Any]] = dict  # what the page shows about the server (its URLs)


@dataclass
class _View:
    """What one open console looks at: a page of the connection list and one charted symbol."""

    filter: str = ""
    offset: int = 0
    limit: int = 50
    symbol: str | None = None
    sent_at: float = 0.0


class Console:
    def __init__(
        self,
        port: ConsolePort,
        token: str,
        *,
        interval: float = 0.5,
        report_interval: float = 2.0,
        sample_interval: float = 1.0,
        max_console_buffer: int = 1 << 20,
        max_consoles: int = 16,
    ) -> None:
        self.port = port
        self.token = token
        self.interval = interval  # the most often a console is updated (aggregated state, not events)
        self.report_interval = report_interval  # the contract report is rebuilt no more often than this
        self.sample_interval = sample_interval
        self.max_console_buffer = max_console_buffer  # a console that does not read skips updates
        self.max_consoles = max_consoles
        cfg = port.config
        self.timeline = Timeline(max_closed=cfg.max_report_records)
        self.clients: dict[Any, _View] = {}
        self.updates_sent = 0
        self.updates_skipped = 0  # to a console too slow to read them (the next one carries everything)
        self.errors = 0
        self.busy = 0.0  # CPU seconds spent sampling, building and sending updates (the bench reads it)
        self._key_refs = {key: f"k{i}" for i, key in enumerate(cfg.keys, 1)}
        self._keys_by_ref = {ref: key for key, ref in self._key_refs.items()}
        self._library: list[dict[str, Any]] | None = None
        self._prices: dict[str, collections.deque[tuple[float, float]]] = {}
        self._rates: collections.deque[tuple[float, int]] = collections.deque(maxlen=8)
        self._rate_history: collections.deque[float] = collections.deque(maxlen=120)
        self._report: dict[str, Any] | None = None
        self._report_at = -float("inf")
        self._report_due = -float("inf")
        self._next_sample = 0.0
        self._wake = asyncio.Event()
        self._last_tick = -float("inf")

    # -- HTTP: the page and its assets ---------------------------------------------------------------

    def routes(self) -> list[tuple[str, Callable[[HttpRequest], HttpResponse]]]:
        return [
            (CONSOLE_PATH, self.page),
            (CONSOLE_PATH + "/", self.page),
            *((f"{CONSOLE_PATH}/{name}", self._asset(name)) for name in _ASSET_TYPES),
        ]

    def page(self, req: HttpRequest) -> HttpResponse:
        refused = self._refuse(req)
        if refused is not None:
            return refused
        if not self.token_ok(req.query.get("token", "")):
            return _html(
                401,
                "<h1>401: console token required</h1><p>Open the link <code>infoway-mock serve</code> "
                "printed at start (<code>/console?token=...</code>).</p>",
            )
        host = req.headers.get("host", "")
        return _html(200, (ASSETS / "index.html").read_text(encoding="utf-8"), host)

    def _asset(self, name: str) -> Callable[[HttpRequest], HttpResponse]:
        def serve(req: HttpRequest) -> HttpResponse:
            refused = self._refuse(req)
            if refused is not None:
                return refused
            resp = HttpResponse(200, (ASSETS / name).read_bytes(), _ASSET_TYPES[name])
            resp.headers += _SECURITY_HEADERS
            return resp

        return serve

    @staticmethod
    def _refuse(req: HttpRequest) -> HttpResponse | None:
        if req.method not in ("GET", "HEAD"):
            return HttpResponse(
                405, b"Method Not Allowed\n", "text/plain; charset=utf-8", [("Allow", "GET, HEAD")]
            )
        if not is_loopback(req.peer_host):
            return _html(403, "<h1>403: the console is for loopback clients only</h1>")
        return None

    def token_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.token.encode())

    # -- the WebSocket ------------------------------------------------------------------------------------

    def join(self, conn: Any) -> None:
        if len(self.clients) >= self.max_consoles:
            conn.close(1013, f"at most {self.max_consoles} consoles at once")
            return
        self.clients[conn] = _View()
        self._send(conn, {"type": "hello", **self._hello()})
        self._wake.set()  # its first state goes out now, not at the next beat

    def leave(self, conn: Any) -> None:
        self.clients.pop(conn, None)

    def message(self, conn: Any, data: str | bytes) -> None:
        view = self.clients.get(conn)
        if view is None:
            return
        try:
            cmd = orjson.loads(data)
        except orjson.JSONDecodeError:
            cmd = None
        if not isinstance(cmd, dict):
            self._send(conn, _reply(None, error="a command is a JSON object with an op"))
            return
        rid = cmd.get("id")
        try:
            result = self._command(view, cmd)
        except (FaultError, ValueError, TypeError) as e:
            self._send(conn, _reply(rid, error=str(e)))
            return
        except Exception as e:  # a bug here must cost one command, never the connection or the server
            self.errors += 1
            log.exception("console command %r failed", cmd.get("op"))
            self._send(conn, _reply(rid, error=f"internal error: {e.__class__.__name__}"))
            return
        self._send(conn, _reply(rid, **result))
        self._wake.set()  # show what the command did at once (the loop still spaces updates out)

    def _command(self, view: _View, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op")
        if op == "view":
            text = cmd.get("filter", "")
            offset, limit = cmd.get("offset", 0), cmd.get("limit", 50)
            if not isinstance(text, str) or len(text) > MAX_FILTER:
                raise ValueError(f"$.filter: a string of at most {MAX_FILTER} characters")
            if type(offset) is not int or offset < 0:
                raise ValueError("$.offset: a non-negative integer")
            if type(limit) is not int or not 1 <= limit <= MAX_VIEW_ROWS:
                raise ValueError(f"$.limit: an integer from 1 to {MAX_VIEW_ROWS}")
            view.filter, view.offset, view.limit = text.strip().lower(), offset, limit
            return {}
        if op == "chart":
            symbol = cmd.get("symbol")
            if symbol is not None and (not isinstance(symbol, str) or not 0 < len(symbol) <= 40):
                raise ValueError("$.symbol: a symbol, or null for none")
            view.symbol = symbol
            return {}
        if op == "fault":
            return self._fault(cmd)
        if op == "clear":
            fid = cmd.get("fault_id")
            if fid is not None and (type(fid) is not int or fid < 1):
                raise ValueError("$.fault_id: a fault id is a positive integer")
            return {"cleared": self.port.faults.clear(fid)}
        if op == "play":
            return self._play(cmd)
        if op == "stop":
            return {"cleared": self.port.scenarios.stop()}
        raise ValueError(f"unknown op {op!r}; expected view, chart, fault, clear, play or stop")

    def _fault(self, cmd: dict[str, Any]) -> dict[str, Any]:
        raw = cmd.get("fault")
        if not isinstance(raw, dict):
            raise FaultError("$.fault: a fault is an object with a `kind`")
        raw = {k: v for k, v in raw.items() if k not in ("conn", "key")}
        target = cmd.get("target") or {}
        if not isinstance(target, dict):
            raise FaultError("$.target: {conn: id}, {key: ref} or {} for all")
        if "conn" in target:
            raw["conn"] = target["conn"]
        elif "key" in target:
            key = self._keys_by_ref.get(target["key"])
            if key is None:
                raise FaultError(f"$.target.key: no key {target['key']!r}")
            raw["key"] = key
        result = self.port.faults.apply_now(Fault.from_dict(raw, at="$.fault"))
        return {"result": result}

    def _play(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name, scale = cmd.get("name"), cmd.get("scale", 1.0)
        # Shipped names only: a console never names a file to read.
        names = [s["name"] for s in self.library()]
        if name not in names:
            raise ValueError(f"$.name: no shipped scenario {name!r} (one of {', '.join(names)})")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.01 <= scale <= 100:
            raise ValueError("$.scale: a number from 0.01 to 100")
        run = self.port.scenarios.start(scenario_mod.load(name), float(scale))
        return {"playing": run.scenario.name}

    def library(self) -> list[dict[str, Any]]:
        if self._library is None:
            self._library = [
                {
                    "name": sc.name,
                    "description": sc.description,
                    "duration": sc.duration,
                    "steps": [{"at": at, "fault": masked_fault(f.to_dict())} for at, _, f in sc.schedule()],
                }
                for sc in scenario_mod.shipped()
            ]
        return self._library

    def _hello(self) -> dict[str, Any]:
        cfg = self.port.config
        return {
            "server": {
                **self.port.info(),
                "heartbeat_timeout": cfg.heartbeat_timeout,
                "rate_window": cfg.rate_window,
                "max_send_buffer": cfg.max_send_buffer,
                "interval": self.interval,
                "max_view_rows": MAX_VIEW_ROWS,
            },
            "kinds": registry(),
            "scenarios": self.library(),
        }

    # -- the beat ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Samples the timeline about once a second; while consoles are open, sends each its state at
        most every `interval` (a command wakes it early, never more often than that)."""
        while True:
            try:
                self.tick()
            except Exception:
                self.errors += 1
                log.exception("console update failed; the console goes on")
            self._wake.clear()
            timeout = self.interval if self.clients else self.sample_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            gap = self._last_tick + min(self.interval, 0.1) - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)  # a burst of commands still yields at most 10 updates a second

    def tick(self) -> None:
        t0 = time.thread_time()  # CPU time, not wall: the machine may be busy with other things
        try:
            self._tick()
        finally:
            self.busy += time.thread_time() - t0

    def _tick(self) -> None:
        now = self.port.now()
        self._last_tick = time.monotonic()
        if now >= self._next_sample:
            self.sample(now)
            self._next_sample = now + self.sample_interval * 0.9
        if not self.clients:
            return
        conns = sorted(self.port.connections(), key=lambda c: c.conn_id)
        shared: dict[str, Any] = {
            "type": "state",
            "t": round(now - self.port.started, 3),
            "keys": self._keys(conns),
            "faults": self._faults(now),
            "scenario": self.port.scenarios.status(),
            "market": self._market(now),
        }
        if now >= self._report_due:
            t0 = time.perf_counter()
            self._report, self._report_at = live_report(self.port.report()), now
            # Judging thousands of records takes tens of ms: never spend more than 1 % of the time on it.
            self._report_due = now + max(self.report_interval, 100 * (time.perf_counter() - t0))
        for conn, view in list(self.clients.items()):
            payload = {**shared, "conns": self._rows(conns, view, now), "chart": self._chart(view)}
            if self._report is not None and view.sent_at <= self._report_at:
                payload["report"] = self._report
            if self._send(conn, payload):
                view.sent_at = now

    def _send(self, conn: Any, payload: dict[str, Any]) -> bool:
        # Each update carries the whole state, so one a slow console cannot take yet is skipped, counted.
        if conn.buffered() > self.max_console_buffer:
            self.updates_skipped += 1
            return False
        conn.write_frames([text_frame(orjson.dumps(payload))])
        self.updates_sent += 1
        return True

    # -- the timeline ------------------------------------------------------------------------------------

    def _counters(self, conn: Any) -> Counters:
        s = conn.session
        started = self.port.started
        return Counters(
            s.frames_received,
            conn.frames_out,
            s.heartbeats,
            (s.last_heartbeat - started) if s.heartbeats else None,
        )

    def sample(self, now: float) -> None:
        t = now - self.port.started
        for conn in self.port.connections():
            if conn.session is not None:
                self.timeline.sample(t, conn.conn_id, self._counters(conn))

    def opened(self, conn: Any) -> None:
        s = conn.session
        self.timeline.opened(conn.conn_id, conn.key, s.business or "news", s.opened_at - self.port.started)

    def closed(self, conn: Any, close_code: int | None) -> None:
        t = self.port.now() - self.port.started
        self.timeline.ended(conn.conn_id, t, close_code, self._counters(conn))

    def html_report(self) -> str:
        """The contract report as a self-contained page, with every connection's timeline."""
        now = self.port.now()
        self.sample(now)  # so the last second counts
        timelines = {tl.conn_id: tl.to_dict() for tl in self.timeline.all()}
        return html_report.render(self.port.report(), timelines, now - self.port.started)

    # -- what a state carries ----------------------------------------------------------------------------

    def _rows(self, conns: list[Any], view: _View, now: float) -> dict[str, Any]:
        if view.filter:
            words = view.filter.split()
            matched = [c for c in conns if all(w in _haystack(c) for w in words)]
        else:
            matched = conns
        page = matched[view.offset : view.offset + view.limit]
        return {
            "total": len(conns),
            "matched": len(matched),
            "offset": view.offset,
            "rows": [self._row(c, now) for c in page if c.session is not None],
        }

    def _row(self, conn: Any, now: float) -> dict[str, Any]:
        s = conn.session
        cfg = self.port.config
        subs = []
        symbols: list[str] = []
        for (kind, ty), held in s.channels():
            if held:
                subs.append([f"{kind} {ty}" if kind == "kline" else kind, len(held)])
                symbols.extend(sorted(held)[:8])
        faults = [a.id for a in self.port.faults.active.values() if conn in a.conns]  # few at a time: cheap
        return {
            "id": conn.conn_id,
            "key": mask_key(conn.key),
            "key_ref": self._key_refs.get(conn.key),
            "kind": conn.kind,
            "business": conn.business or ("news" if conn.kind == "news" else ""),
            "peer": conn.peer,
            "age": round(now - s.opened_at, 1),
            "subs": subs,
            "symbols": sorted(set(symbols))[:12],
            "in": s.frames_received,
            "out": conn.frames_out,
            "heartbeats": s.heartbeats,
            "hb_age": None if s.reading_paused else round(now - s.last_heartbeat, 1),
            "hb_timeout": cfg.heartbeat_timeout,
            "window": s.rate.count(now),
            "window_limit": s.plan.rate_limit,
            "buffer": conn.buffered(),
            "buffer_limit": cfg.max_send_buffer,
            "faults": faults,
        }

    def _keys(self, conns: list[Any]) -> list[dict[str, Any]]:
        cfg = self.port.config
        open_by_key = collections.Counter(c.key for c in conns)
        return [
            {"ref": ref, "key": mask_key(key), "plan": cfg.keys[key], "open": open_by_key.get(key, 0)}
            for key, ref in self._key_refs.items()
        ]

    def _faults(self, now: float) -> dict[str, Any]:
        engine = self.port.faults
        at = {e["id"]: e["at"] for e in engine.recent(1000)}
        active = []
        for raw in [*engine.listing(), *(e for e in engine.recent(1000) if e["id"] in engine.refusals.ids())]:
            row = masked_fault({k: v for k, v in raw.items() if k != "at"})
            seconds = raw.get("seconds")
            if seconds is not None and raw["id"] in at:
                row["left"] = round(max(0.0, at[raw["id"]] + seconds - now), 1)
            active.append(row)
        log_rows = [
            {
                **masked_fault({k: v for k, v in e.items() if k != "at"}),
                "t": round(e["at"] - self.port.started, 1),
            }
            for e in engine.recent(FAULT_LOG_ROWS)
        ]
        return {"active": active, "log": log_rows[::-1], "applied": len(engine.log)}

    def _market(self, now: float) -> dict[str, Any]:
        total = self.port.frames_sent()
        rates = self._rates
        rates.append((now, total))
        t0, n0 = rates[0]
        rate = (total - n0) / (now - t0) if now > t0 else 0.0
        self._rate_history.append(round(rate, 1))
        hub = self.port.hub
        per: dict[str, list[int]] = {}
        for sym, subs in hub.trades.items():
            per.setdefault(sym, [0, 0, 0])[0] = len(subs)
        for sym, subs in hub.depth.items():
            per.setdefault(sym, [0, 0, 0])[1] = len(subs)
        for (sym, _ty), subs in hub.klines.items():
            per.setdefault(sym, [0, 0, 0])[2] += len(subs)
        ranked = sorted(per.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:MAX_SYMBOL_ROWS]
        last_price = self.port.last_price
        charted = {v.symbol for v in self.clients.values() if v.symbol}
        for sym in list(self._prices):
            if sym not in charted:
                del self._prices[sym]
        t = round(now - self.port.started, 2)
        for sym in charted:
            price = last_price(sym)
            if price is not None:
                series = self._prices.setdefault(sym, collections.deque(maxlen=CHART_POINTS))
                with contextlib.suppress(ValueError):
                    series.append((t, float(price)))
        return {
            "push_rate": round(rate, 1),
            "rate_history": list(self._rate_history),
            "pushed": total,
            "streaming": len(per),
            "symbols": [
                {"symbol": s, "trade": c[0], "depth": c[1], "kline": c[2], "price": last_price(s)}
                for s, c in ranked
            ],
        }

    def _chart(self, view: _View) -> dict[str, Any] | None:
        if not view.symbol:
            return None
        return {"symbol": view.symbol, "points": list(self._prices.get(view.symbol, ()))}


def live_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report as the console shows it: verdicts and evidence per client and stream, connection
    counts instead of a record per connection (the HTML report has those), so a thousand connections
    do not make every update a thousand records longer."""
    return {
        "verdict": report["verdict"],
        "clients": [
            {
                "key": c["key"],
                "verdict": c["verdict"],
                "rules": c["rules"],
                "rules_applied": c["rules_applied"],
                "connections": len(c["connections"]),
                "streams": [
                    {"business": s["business"], "verdict": s["verdict"], "connections": len(s["connections"])}
                    for s in c.get("streams", [])
                ],
            }
            for c in report["clients"]
        ],
    }


def _haystack(conn: Any) -> str:
    return (
        f"#{conn.conn_id} {conn.conn_id} {mask_key(conn.key)} {conn.business} {conn.kind} {conn.peer}".lower()
    )


def _reply(rid: Any, error: str | None = None, **result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "reply", "id": rid, "ok": error is None, **result}
    if error is not None:
        out["error"] = error
    return out


# The page holds buttons that break connections: never framed by another site, never cached, and it may
# talk only to the mock it came from (script, style and socket from the same origin, nothing else).
_SECURITY_HEADERS = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def _html(status: int, body: str, host: str = "") -> HttpResponse:
    if not body.lstrip().startswith("<!doctype"):
        body = f"<!doctype html><meta charset=utf-8><title>infoway-mock console</title>{body}"
    # The Host header goes into the policy: only a plain host[:port] is allowed there, nothing to inject.
    ws = f" ws://{host}" if _HOST.fullmatch(host) else ""
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = [*_SECURITY_HEADERS, ("Content-Security-Policy", csp)]
    return HttpResponse(status, body.encode(), "text/html; charset=utf-8", headers)
