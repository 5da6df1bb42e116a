"""Locust load test of an Infoway WebSocket endpoint (the mock, or any server speaking the protocol).

    locust -f loadtests/locustfile.py --host ws://127.0.0.1:8765     # or: make load

Each user opens one WebSocket (websocket-client: blocking sockets, which gevent patches), subscribes a
mix of channels, heartbeats, and reports to locust's statistics under request type "WS":

  connect            handshake time (until the welcome frame)
  ack <code>         subscribe-ack latency, matched by trace
  push <code>        push latency, server send time (`st`, opt-in: serve --send-timestamp) to receipt;
                     the entry's RPS column is pushes received per second
  reconnect          time from losing the connection to being resubscribed (acked) again
  error <code>       every error frame, as a failure carrying its message
  disconnected       a connection lost (failure), before the reconnect entry

Keys: users are spread round-robin over INFOWAY_API_KEYS (comma-separated; or `--infoway-keys`), so user n
connects with key n mod len(keys). The default is the mock's shipped load-test key `load-test` (plan `load`:
10,000 connections, the live per-connection limits), so `make serve` plus 20 users works. The demo key
allows 9 connections (the vendor's Pro plan) and answers a tenth with 427; against the live service, list
at least ceil(users / connections per key) keys. INFOWAY_API_KEY (one key) is still read when
INFOWAY_API_KEYS is not set.

Knobs (environment): INFOWAY_API_KEYS (load-test), INFOWAY_BUSINESS (crypto), INFOWAY_SYMBOLS (per user,
from a pool, default 3), INFOWAY_CHANNELS (trade,depth,kline), INFOWAY_KLINE_TYPES (1), INFOWAY_HEARTBEAT
(30).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

import gevent
import locust.stats
import websocket  # websocket-client
from locust import User, constant, events, task

from infoway_mock.schemas.codes import HEARTBEAT, PUSH_CODES, REQUESTS, SUBSCRIBE_FOR_CHANNEL, is_error

POOL = {
    "crypto": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT"],
    "common": ["XAUUSD", "EURUSD", "USOIL", "GBPUSD", "USDJPY", "HK50"],
    "stock": ["AAPL.US", "TSLA.US", "00700.HK", "600519.SH", "MSFT.US", "NVDA.US"],
}
SUBSCRIBE = SUBSCRIBE_FOR_CHANNEL
YIELD_EVERY = 16  # frames read before the reader lets other greenlets run


def _bucket(ms: float) -> float:
    """Locust keeps a histogram of rounded times; its default rounds below 100 ms to whole ms, which
    flattens loopback push latencies (mostly 0-5 ms) into a few buckets. Tenths of a ms below 10 ms."""
    return round(ms, 1) if ms < 10 else _locust_bucket(ms)


_locust_bucket = locust.stats.bucket_response_time
locust.stats.bucket_response_time = _bucket
_ids = itertools.count()


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


LOAD_TEST_KEY = "load-test"  # the mock's shipped key on its `load` plan (mockserver/config.py)


def parse_keys(raw: str) -> list[str]:
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ValueError("no API key given: set INFOWAY_API_KEYS or --infoway-keys")
    return keys


def key_for(n: int, keys: list[str]) -> str:
    """Round-robin: user n's key, so each key carries users / len(keys) connections."""
    return keys[n % len(keys)]


def _default_keys() -> str:
    return os.environ.get("INFOWAY_API_KEYS") or os.environ.get("INFOWAY_API_KEY") or LOAD_TEST_KEY


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--infoway-symbols", type=int, default=int(_env("INFOWAY_SYMBOLS", "3")))
    parser.add_argument("--infoway-channels", default=_env("INFOWAY_CHANNELS", "trade,depth,kline"))
    parser.add_argument(
        "--infoway-keys", default=_default_keys(), help="comma-separated API keys users are spread over"
    )


class InfowayUser(User):
    """One subscribed connection; the task loop only heartbeats, a greenlet reads."""

    wait_time = constant(float(_env("INFOWAY_HEARTBEAT", "30")))

    def on_start(self) -> None:
        self.n = next(_ids)
        self.business = _env("INFOWAY_BUSINESS", "crypto")
        pool = POOL.get(self.business, POOL["crypto"])
        opts = self.environment.parsed_options
        count = getattr(opts, "infoway_symbols", 3) if opts else 3
        self.symbols = [pool[(self.n + i) % len(pool)] for i in range(min(count, len(pool)))]
        channels = getattr(opts, "infoway_channels", "trade,depth,kline") if opts else "trade,depth,kline"
        self.channels = [c for c in channels.split(",") if c in SUBSCRIBE]
        self.kline_types = [int(t) for t in _env("INFOWAY_KLINE_TYPES", "1").split(",")]
        self.key = key_for(self.n, parse_keys(getattr(opts, "infoway_keys", None) or _default_keys()))
        self.ws: websocket.WebSocket | None = None
        self.pending: dict[str, tuple[int, float]] = {}  # trace -> (code, sent at)
        self.lost_at: float | None = None
        self.stopping = False
        self._connect()
        self.reader = gevent.spawn(self._read_loop)

    def on_stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
        self.reader.kill(block=False)

    @task
    def heartbeat(self) -> None:
        self._send({"code": HEARTBEAT, "trace": f"hb-{self.n}-{time.monotonic_ns()}"})

    # -- connection ------------------------------------------------------------------------------------

    def _url(self) -> str:
        return f"{self.host.rstrip('/')}/ws?business={self.business}&apikey={self.key}"

    def _fire(self, name: str, ms: float, length: int = 0, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=ms, response_length=length, exception=exc, context={}
        )

    def _connect(self) -> bool:
        start = time.perf_counter()
        try:
            # UTF-8 validation in pure Python cuts websocket-client's receive rate to a third; the
            # frames are parsed as JSON anyway, which rejects what invalid UTF-8 would break.
            ws = websocket.create_connection(
                self._url(), timeout=10, enable_multithread=True, skip_utf8_validation=True
            )
            ws.recv()  # the welcome frame
        except Exception as e:
            self._fire("connect", (time.perf_counter() - start) * 1000, exc=e)
            return False
        self._fire("connect", (time.perf_counter() - start) * 1000)
        self.ws = ws
        ws.settimeout(None)
        for channel in self.channels:
            data: dict[str, Any] = {"codes": ",".join(self.symbols)}
            if channel == "kline":
                data = {"arr": [{"type": t, "codes": data["codes"]} for t in self.kline_types]}
            trace = f"{channel}-{self.n}-{time.monotonic_ns()}"
            self.pending[trace] = (REQUESTS[SUBSCRIBE[channel]].ack, time.perf_counter())
            self._send({"code": SUBSCRIBE[channel], "trace": trace, "data": data})
        return True

    def _send(self, frame: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None:
            return
        try:
            ws.send(json.dumps(frame))
        except Exception:
            pass  # the reader notices the loss and reconnects

    def _read_loop(self) -> None:
        received = 0
        while not self.stopping:
            received += 1
            if received % YIELD_EVERY == 0:
                # A socket that always has data never blocks, so gevent never switches: heartbeats and
                # other users would stall for seconds and a master would mark this worker missing.
                gevent.sleep(0)
            ws = self.ws
            try:
                if ws is None:
                    raise ConnectionError("not connected")
                message = ws.recv()
            except Exception as e:
                if self.stopping:
                    return
                self._lost(e)
                continue
            if not message:
                if not self.stopping:
                    self._lost(ConnectionError("closed by server"))
                continue
            self._on_message(message)

    def _lost(self, why: Exception) -> None:
        if self.lost_at is None:
            self.lost_at = time.perf_counter()
            self._fire("disconnected", 0, exc=why)
        self.ws = None
        self.pending.clear()
        gevent.sleep(0.5)  # a fixed pause between attempts keeps a storm of users from hammering
        self._connect()

    def _on_message(self, message: str | bytes) -> None:
        now = time.time()
        try:
            frame = json.loads(message)
        except ValueError:
            return  # the stock banner or a deliberately malformed frame; not a push
        if not isinstance(frame, dict):
            return
        code = frame.get("code")
        if "traceId" in frame or is_error(code):
            self._fire(f"error {code}", 0, exc=RuntimeError(f"{code} {frame.get('msg', '')}"))
            return
        if code in PUSH_CODES and isinstance(frame.get("data"), dict):
            st = frame.get("st")
            latency = max(0.0, now * 1000 - st) if isinstance(st, int | float) else 0.0
            self._fire(f"push {code}", latency, len(message))
            return
        trace = frame.get("trace")
        if trace in self.pending:
            _, sent = self.pending.pop(trace)
            self._fire(f"ack {code}", (time.perf_counter() - sent) * 1000)
            if not self.pending and self.lost_at is not None:
                self._fire("reconnect", (time.perf_counter() - self.lost_at) * 1000)
                self.lost_at = None
