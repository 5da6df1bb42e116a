"""Screenshots of the console and the HTML report for the README: `python -m tests.screenshots [OUT_DIR]`.

A mock with a few reference clients (one of them rude: no trace, a burst over the rate limit) and a
scenario playing, the console opened with its token link, then the HTML report of the same run. Needs
Chromium (as tests/test_browser.py); writes console.png and report.png (default: docs/).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

import orjson
import websockets

from infoway_mock.client import InfowayClient
from infoway_mock.mockserver.faults import Fault
from infoway_mock.mockserver.server import MockServer
from tests.conftest import fast_config
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS


async def main(out: Path) -> None:
    from playwright.async_api import async_playwright

    out.mkdir(parents=True, exist_ok=True)
    cfg = fast_config(control_token="readme", heartbeat_timeout=20.0, rate_window=10.0, strict=True)
    cfg.keys["acme-trading-prod"] = "premium"
    cfg.keys["quant-lab-staging"] = "pro"
    async with MockServer(cfg) as mock:
        mock.console.interval = 0.25

        async def good(key: str, business: str, trades: str, depth: str | None = None) -> InfowayClient:
            c = InfowayClient(mock.ws_url(business, key), heartbeat_interval=2.0, backoff_base=0.2)
            c.start()
            await c.subscribe_trades(trades)
            if depth:
                await c.subscribe_depth(depth)
            return c

        async def rude() -> None:
            # No trace, no heartbeat, and a burst over the rate limit: 501, then the close.
            async with websockets.connect(mock.ws_url("crypto", "quant-lab-staging")) as ws:
                for _ in range(70):
                    await ws.send(orjson.dumps({"code": 10000, "data": {"codes": "SOLUSDT"}}).decode())
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for _ in ws:
                        pass

        clients = [
            await good("acme-trading-prod", "crypto", "BTCUSDT,ETHUSDT", "BTCUSDT"),
            await good("acme-trading-prod", "crypto", "SOLUSDT,XRPUSDT"),
            await good("demo", "crypto", "BTCUSDT"),
            await good("demo", "stock", "AAPL.US,TSLA.US"),
        ]
        await rude()
        await asyncio.sleep(2)  # a picture of a running mock: a few seconds of history first
        await mock.faults.apply(Fault("reset", key="acme-trading-prod"))
        await asyncio.sleep(2)
        demo = next(c.conn_id for c in mock.conns.values() if c.key == "demo" and c.business == "crypto")
        await mock.faults.apply(Fault("close", conn=demo, code=4001, reason="maintenance"))
        await asyncio.sleep(1)

        with tempfile.TemporaryDirectory() as profile:
            async with async_playwright() as p:
                ctx = await p.chromium.launch_persistent_context(
                    profile,
                    executable_path=CHROMIUM,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport={"width": 1440, "height": 1180},
                )
                page = await ctx.new_page()
                await page.goto(f"{mock.http_url}/console?token=readme")
                await page.locator('li[data-scenario="flaky-network"] button.play').click()
                await page.wait_for_selector("#steps li.fired")
                await page.locator("#symbol-table tr[data-symbol=BTCUSDT]").click()
                await asyncio.sleep(6)  # let the charts fill
                await page.locator("tr[data-conn] .faults-btn").first.click()
                await page.locator('#popover button[data-kind="stall"]').click()
                await page.screenshot(path=str(out / "console.png"), full_page=True)

                await page.keyboard.press("Escape")
                await page.locator("#stop").click()
                report = Path(profile) / "report.html"
                report.write_text(mock.report_html(), encoding="utf-8")
                await page.set_viewport_size({"width": 1200, "height": 1500})
                await page.goto(report.as_uri())
                await page.screenshot(path=str(out / "report.png"))
                await ctx.close()
        for c in clients:
            await c.close()
    print(f"wrote {out / 'console.png'} and {out / 'report.png'}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs")))
