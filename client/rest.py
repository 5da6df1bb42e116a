"""Just enough REST for kline backfill: stdlib urllib in a thread, so no HTTP library is needed."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit


def rest_base(ws_url: str) -> str:
    u = urlsplit(ws_url)
    scheme = "https" if u.scheme == "wss" else "http"
    return f"{scheme}://{u.netloc}"


def _get(url: str, api_key: str, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"apiKey": api_key, "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # the URL comes from our own config
        return json.loads(resp.read())


async def batch_kline(
    base: str, business: str, api_key: str, ktype: int, count: int, symbol: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Closed candles, newest first, as REST rows; [] when the server answers with an error envelope."""
    url = f"{base}/{business}/batch_kline/{ktype}/{min(max(count, 1), 500)}/{symbol}"
    body = await asyncio.to_thread(_get, url, api_key, timeout)
    if body.get("ret") != 200:
        return []
    for row in body.get("data") or []:
        if row.get("s") == symbol:
            return row.get("respList") or []
    return []
