"""The console and the HTML report in a real browser: headless Chromium (Debian's `chromium` package, which
.ci/run installs) driven by playwright's Python API against a real mock and the reference client.

Everything runs on the test's one event loop (the mock, the client, playwright's async API): no threads,
no second event loop beside a server thread.

Without a browser these tests are skipped with the reason, and the run's summary says so in one line
(tests/conftest.py). playwright's own browser download is never used: it points at the system's Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from infoway_mock.client import InfowayClient
from infoway_mock.mockserver.faults import KINDS, Fault
from tests.conftest import wait_until

CHROMIUM = os.environ.get("INFOWAY_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium opens connections of its own at start (updates,
# sync, safe browsing), which this machine refuses, many at a time; none of them is wanted in a test.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
TOKEN = "browser-token"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return (
            f"no Chromium at {CHROMIUM} (apt-get install chromium, as .ci/run does; or set INFOWAY_CHROMIUM)"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (it is a dev dependency: make install)"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    why = browser_missing()
    if why is not None:
        pytest.skip(why)
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=WAIT_MS)
    with tempfile.TemporaryDirectory(prefix="infoway-chromium-") as profile:
        async with async_playwright() as p:
            context = await p.chromium.launch_persistent_context(
                profile,  # a fresh profile each test: nothing remembered between them
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            context.set_default_timeout(WAIT_MS)
            try:
                yield context
            finally:
                await context.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    await page.close()
    assert not errors, errors  # the page's own script never threw


@pytest.fixture
async def mock(make_server: Any) -> Any:
    srv = await make_server(control_token=TOKEN, heartbeat_timeout=10.0)
    srv.console.interval = 0.25
    return srv


@pytest.fixture
async def client(mock: Any) -> AsyncIterator[Callable[..., Awaitable[InfowayClient]]]:
    clients: list[InfowayClient] = []

    async def make(symbols: str = "BTCUSDT,ETHUSDT") -> InfowayClient:
        c = InfowayClient(mock.ws_url(), heartbeat_interval=1.0, backoff_base=0.1, backoff_cap=0.5)
        clients.append(c)
        c.start()
        await c.subscribe_trades(symbols)
        # Subscribed on the server before the test goes on, so a fault finds something to resubscribe.
        n = len(symbols.split(","))
        await wait_until(lambda: sum(len(s.trades) for s, _ in mock.sessions.values()) >= n, timeout=15)
        return c

    yield make
    for c in clients:
        await c.close()


def console_url(mock: Any, token: str = TOKEN) -> str:
    return f"{mock.http_url}/console?token={token}"


# -- the console -------------------------------------------------------------------------------------------


async def test_console_reset_a_connection_and_watch_the_client_come_back(
    page: Any, mock: Any, client: Any
) -> None:
    from playwright.async_api import expect

    await client()
    await page.goto(console_url(mock))
    await expect(page.locator("#status")).to_have_text("live")
    row = page.locator('tr[data-conn="1"]')
    await expect(row.locator("td.subs")).to_contain_text("trade 2")
    await expect(row.locator("td.key")).to_have_text("****")  # masked, as everywhere
    await expect(row.locator("td.business")).to_have_text("crypto")
    await expect(row.locator("td.hb .txt")).to_contain_text("/ 10s")
    await expect(row.locator("td.window .txt")).to_contain_text("/ 60")

    await row.locator(".faults-btn").click()
    kinds = page.locator("#popover .kinds button")
    await expect(kinds).to_have_count(sum("conn" in k.targets for k in KINDS.values()))  # the registry's
    await page.locator('#popover button[data-kind="reset"]').click()

    await expect(page.locator('tr[data-conn="1"]')).to_have_count(0)
    # The client reconnects and resubscribes: a new row, its subscriptions back.
    await expect(page.locator('tr[data-conn="2"] td.subs')).to_contain_text("trade 2")
    await expect(page.locator("#fault-log")).to_contain_text("reset → conn 1")
    await expect(page.locator("#total-conns")).to_have_text("1")
    await expect(page.locator('#report-clients tr[data-rule="resubscribed"]')).to_contain_text(
        "1/1 reconnects"
    )


async def test_console_fault_form_is_built_from_the_registry(page: Any, mock: Any, client: Any) -> None:
    from playwright.async_api import expect

    await client()
    await page.goto(console_url(mock))
    await page.locator('tr[data-conn="1"] .faults-btn').click()
    await page.locator('#popover button[data-kind="close"]').click()
    code = page.locator('#pop-fields input[name="code"]')
    await expect(code).to_have_value("1011")  # the registry's default
    await code.fill("1005")  # not sendable: refused with the registry's message, the form stays open
    await page.locator("#pop-form button[type=submit]").click()
    await expect(page.locator("#pop-error")).to_contain_text("$.fault.code")
    await code.fill("4001")
    await page.locator('#pop-fields input[name="reason"]').fill("from the console")
    await page.locator("#pop-form button[type=submit]").click()
    await expect(page.locator("#popover")).to_be_hidden()
    await expect(page.locator('tr[data-conn="2"]')).to_have_count(1)
    closed = [r for r in mock.records if r.conn_id == 1]
    assert closed and closed[0].close_code == 4001

    # Per key and for all: the same registry, other targets.
    await page.locator('#key-table tr[data-key="k1"] .faults-btn').click()
    await expect(page.locator('#popover button[data-kind="refuse"]')).to_have_count(1)
    await page.keyboard.press("Escape")
    await page.locator("#fault-all").click()
    await expect(page.locator('#popover button[data-kind="restart"]')).to_have_count(1)


async def test_console_plays_and_stops_a_scenario(page: Any, mock: Any, client: Any) -> None:
    from playwright.async_api import expect

    await client()
    await page.goto(console_url(mock))
    await expect(page.locator('tr[data-conn="1"]')).to_have_count(1)
    await page.locator("#scale").fill("0.5")
    await page.locator('li[data-scenario="silent-stall"] button.play').click()
    await expect(page.locator("#playing-name")).to_have_text("silent-stall")
    await expect(page.locator("#steps li.fired")).to_have_count(1)
    await expect(page.locator("#active-faults")).to_contain_text("stall → all")
    await expect(page.locator('tr[data-conn="1"] td.hb .txt')).to_have_text("paused (not read)")
    await page.locator("#stop").click()
    await expect(page.locator("#playing-state")).to_have_text("stopped")
    await expect(page.locator("#active-faults")).to_have_text("none")


async def test_console_refuses_a_wrong_token(page: Any, mock: Any) -> None:
    from playwright.async_api import expect

    for token in ("wrong", ""):
        resp = await page.goto(console_url(mock, token))
        assert resp is not None and resp.status == 401
        await expect(page.locator("h1")).to_contain_text("401")
    # Nor does the socket open without it, even from a page the mock served.
    code = await page.evaluate(
        """() => new Promise((done) => {
            const ws = new WebSocket(`ws://${location.host}/console/ws?token=wrong`);
            ws.onopen = () => done("open");
            ws.onclose = (e) => done(e.code);
        })"""
    )
    assert code == 1006  # the handshake was refused (401)
    assert mock.metrics.handshakes_refused[401] >= 1


# -- the HTML report ---------------------------------------------------------------------------------------


async def test_html_report_opens_offline_with_timeline_and_verdicts(
    page: Any, mock: Any, client: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await client()
    await mock.faults.apply(Fault("reset"))  # a disconnect without a close frame, then the reconnect
    await wait_until(  # closed, reconnected and resubscribed: then the report has a verdict to give
        lambda: len(mock.records) == 1 and [len(s.trades) for s, _ in mock.sessions.values()] == [2],
        timeout=15,
    )
    path = tmp_path / "report.html"
    path.write_text(mock.report_html(), encoding="utf-8")

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await page.goto(path.as_uri())
    await expect(page.locator("header h1")).to_contain_text("contract report")
    card = page.locator("section.client")
    await expect(card).to_have_count(1)
    await expect(card.locator("h2 .key")).to_have_text("****")
    await expect(card.locator('tr[data-rule="resubscribed"] .pill')).to_have_text("pass")
    await expect(card.locator('tr[data-rule="heartbeat"]')).to_contain_text("longest silence")
    await expect(card.locator("svg")).to_have_count(3)  # timeline, request rate, push rate
    await expect(card.locator("svg text", has_text="1006 no close frame")).to_have_count(1)  # the reset
    await expect(card).to_contain_text("limit 60")  # the request rate against the plan's limit
    await card.locator("summary").click()
    await expect(card.locator("details tbody tr")).to_have_count(2)
    assert requests == [path.as_uri()], requests  # self-contained: nothing else was fetched


def test_without_a_browser_the_run_says_so(tmp_path: Path) -> None:
    """On a machine without Chromium the browser tests are skipped, and the summary says why."""
    env = {**os.environ, "INFOWAY_CHROMIUM": str(tmp_path / "no-chromium")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_browser.py",
            "-k",
            "console",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 skipped" in res.stdout
    assert f"browser tests skipped (4): no Chromium at {tmp_path / 'no-chromium'}" in res.stdout
