"""The response examples of schemas/openapi.yaml: the mock's own output for a fixed seed and start time.

    python tests/openapi_examples.py          # rewrite schemas/openapi-examples.yaml
    python tests/openapi_examples.py --check  # exit 1 if the file differs from what the mock says now

The market is a function of (seed, start, market time), so the mock is built but never started: the
market is advanced to a fixed time by hand and each request goes through the server's own HTTP routing,
the path a request off the socket takes. Only `traceId` is fixed here (the mock draws a random one per
request), so the file regenerates byte for byte. tests/test_openapi.py checks that every example, checked
in or freshly generated, validates against the document.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

from infoway_mock.mockserver.config import ServerConfig
from infoway_mock.mockserver.connection import HttpRequest
from infoway_mock.mockserver.server import MockServer

OUT = Path(__file__).resolve().parent.parent / "schemas" / "openapi-examples.yaml"
SEED = 42
START = "2026-08-14T02:00:00Z"  # a Friday: Hong Kong in session, New York closed (--market-hours real)
START_MS = 1786672800000
AFTER_MS = 150_000  # market time the examples are read at: two closed 1-minute bars
FREE_KEY = "free-example"

# name -> (summary, method, target, body, API key)
REQUESTS: list[tuple[str, str, str, str, bytes, str | None]] = [
    ("metrics", "An idle mock's metrics", "GET", "/metrics", b"", None),
    ("healthz", "No socket open", "GET", "/healthz", b"", None),
    ("batchTradeCrypto", "Two crypto symbols", "GET", "/crypto/batch_trade/BTCUSDT,ETHUSDT", b"", "demo"),
    ("batchTradeStock", "Two stocks", "GET", "/stock/batch_trade/AAPL.US,00700.HK", b"", "demo"),
    ("batchTradeNoKnownProduct", "No known symbol: ret 508", "GET", "/crypto/batch_trade/NOPE", b"", "demo"),
    (
        "batchTradeNoMarketSuffix",
        "A stock without suffix: ret 500",
        "GET",
        "/stock/batch_trade/AAPL",
        b"",
        "demo",
    ),
    ("batchDepthCrypto", "One crypto book", "GET", "/crypto/batch_depth/BTCUSDT", b"", "demo"),
    (
        "batchDepthClosedMarket",
        "New York closed (null book), Hong Kong in session",
        "GET",
        "/stock/batch_depth/TSLA.US,00700.HK",
        b"",
        "demo",
    ),
    ("batchKlineCrypto", "Two 1-minute bars", "GET", "/crypto/batch_kline/1/2/BTCUSDT", b"", "demo"),
    (
        "batchKlineTooManyBars",
        "klineNum over 500: ret 503",
        "GET",
        "/crypto/batch_kline/1/501/BTCUSDT",
        b"",
        "demo",
    ),
    (
        "batchKlineV2Crypto",
        "Two symbols, at most 2 bars each",
        "POST",
        "/crypto/v2/batch_kline",
        b'{"klineType":1,"klineNum":3,"codes":"BTCUSDT,ETHUSDT"}',
        "demo",
    ),
    (
        "batchKlineV2ParameterMissing",
        "No codes: ret 507",
        "POST",
        "/crypto/v2/batch_kline",
        b'{"klineType":1,"klineNum":3}',
        "demo",
    ),
    (
        "symbols",
        "Two US stocks",
        "GET",
        "/common/basic/symbols?type=STOCK_US&symbols=AAPL.US,TSLA.US",
        b"",
        "demo",
    ),
    (
        "symbolInfo",
        "One crypto pair",
        "GET",
        "/common/basic/symbols/info?type=CRYPTO&symbols=BTCUSDT",
        b"",
        "demo",
    ),
    ("markets", "Every equity market", "GET", "/common/basic/markets", b"", "demo"),
    (
        "tradingDays",
        "One week in New York",
        "GET",
        "/common/basic/markets/trading_days?market=US&beginDay=20260810&endDay=20260816",
        b"",
        "demo",
    ),
    (
        "adjustmentFactors",
        "No corporate actions in the simulation",
        "GET",
        "/common/basic/symbols/adjustment_factors?symbol=AAPL.US&market=US&beginDay=20260801&endDay=20260815",
        b"",
        "demo",
    ),
    (
        "stockDetail",
        "One US stock",
        "GET",
        "/common/basic/stock/detail?type=STOCK_US&symbol=AAPL.US",
        b"",
        "demo",
    ),
    ("packageInfo", "The demo key's plan", "GET", "/package/info", b"", "demo"),
    ("tradingSchedule", "Metals", "GET", "/common/basic/markets/trading_schedule?type=METAL", b"", "demo"),
    ("problemTypeMissing", "No type: RFC 7807", "GET", "/common/basic/symbols", b"", "demo"),
    ("unauthorized", "An unknown key", "GET", "/crypto/batch_trade/BTCUSDT", b"", "not-a-key"),
    ("notFound", "No such business", "GET", "/forex/batch_trade/EURUSD", b"", "demo"),
    ("methodNotAllowed", "GET on a POST path", "GET", "/crypto/v2/batch_kline", b"", "demo"),
]


def _request(method: str, target: str, body: bytes, key: str | None) -> HttpRequest:
    path, _, query = target.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&")) if query else {}
    headers = {"host": "127.0.0.1:8765", **({"apikey": key} if key else {})}
    return HttpRequest(method, target, path, params, headers, body, "127.0.0.1:50000", False)


def _example(
    name: str, summary: str, req: HttpRequest, status: int, body: bytes, ctype: str
) -> dict[str, Any]:
    value: Any = body.decode() if ctype.startswith("text/") else orjson.loads(body)
    if isinstance(value, dict) and "traceId" in value:
        value["traceId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"infoway-mock:{name}"))
    sent = f" with `{req.body.decode()}`" if req.body else ""
    return {
        "summary": summary,
        "description": f"`{req.method} {req.target}`{sent} → HTTP {status}",
        "value": value,
    }


def generate() -> dict[str, tuple[int, dict[str, Any]]]:
    """Every example by name: (the HTTP status the mock answered, the OpenAPI Example Object)."""
    cfg = ServerConfig(seed=SEED, start_ms=START_MS, market_hours="real")
    cfg.keys = {**cfg.keys, FREE_KEY: "free"}
    srv = MockServer(cfg)
    srv.market.advance(START_MS + AFTER_MS)
    out: dict[str, tuple[int, dict[str, Any]]] = {}

    def call(name: str, summary: str, req: HttpRequest) -> tuple[int, dict[str, Any]]:
        # The connection is only the socket's; routing never reads it.
        resp = srv.http_request(None, req)  # type: ignore[arg-type]
        return resp.status, _example(name, summary, req, resp.status, resp.body, resp.content_type)

    for name, summary, method, target, body, key in REQUESTS:
        out[name] = call(name, summary, _request(method, target, body, key))
    quota = srv.config.plans["free"].rest_rate_limit
    over = _request("GET", "/crypto/batch_trade/BTCUSDT", b"", FREE_KEY)
    for _ in range(quota):
        call("rateLimited", "", over)
    out["rateLimited"] = call("rateLimited", f"Call {quota + 1} in a minute on the free plan", over)
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line text (the metrics page) as a literal block, readable in the file."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def render(examples: dict[str, tuple[int, dict[str, Any]]]) -> str:
    head = (
        f"# Generated by tests/openapi_examples.py (seed {SEED}, start {START}, read {AFTER_MS // 1000} s\n"
        "# later, --market-hours real): the mock's own answers, cited by openapi.yaml. Do not edit.\n"
    )
    objects = {name: example for name, (_, example) in examples.items()}
    return head + yaml.dump(objects, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def main(argv: list[str]) -> int:
    text = render(generate())
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python tests/openapi_examples.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
