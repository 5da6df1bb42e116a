"""The console and the HTML report in a real browser: headless Chromium (Debian's `chromium` package, which
.ci/run installs) driven by playwright's Python API against a real mock and the reference client.

Without a browser these tests are skipped with the reason, and the run's summary says so in one line
(tests/conftest.py). playwright's own browser download is never used: it points at the system's Chromium.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from infoway_mock.client import InfowayClient
from infoway_mock.mockserver.background import BackgroundServer
from infoway_mock.mockserver.faults import KINDS
from tests.conftest import fast_config

T = TypeVar("T")

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


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return (
            f"no Chromium at {CHROMIUM} (apt-get install chromium, as .ci/run does; or set INFOWAY_CHROMIUM)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (it is a dev dependency: make install)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = browser_missing()
    if why is not None:
        pytest.skip(why)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="infoway-chromium-") as profile:
        context = p.chromium.launch_persistent_context(
            profile,  # a fresh profile each run: nothing remembered between runs
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, errors  # the page's own script never threw


class Loop:
    """An event loop on its own thread for the reference client (playwright's sync API owns this one)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def mock() -> Iterator[BackgroundServer]:
    cfg = fast_config(control_token="browser-token", heartbeat_timeout=10.0)
    with BackgroundServer(cfg) as srv:
        srv.server.console.interval = 0.25
        yield srv


@pytest.fixture
def client(mock: BackgroundServer) -> Iterator[Callable[..., InfowayClient]]:
    loop = Loop()
    clients: list[InfowayClient] = []

    async def start(symbols: str) -> InfowayClient:
        c = InfowayClient(mock.url(), heartbeat_interval=1.0, backoff_base=0.1, backoff_cap=0.5)
        c.start()
        await c.subscribe_trades(symbols)
        return c

    def make(symbols: str = "BTCUSDT,ETHUSDT") -> InfowayClient:
        c = loop.run(start(symbols))
        clients.append(c)
        # Subscribed on the server before the test goes on, so a fault finds something to resubscribe.
        n = len(symbols.split(","))
        wait_for(
            lambda: server_call(
                mock, lambda: sum(len(s.trades) for s, _ in mock.server.sessions.values()) >= n
            )
        )
        return c

    yield make
    for c in clients:
        loop.run(c.close())
    loop.close()


def console_url(mock: BackgroundServer, token: str = "browser-token") -> str:
    return f"{mock.http_url}/console?token={token}"


def wait_for(pred: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll with a deadline (the sync twin of conftest.wait_until)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def server_call(mock: BackgroundServer, fn: Callable[[], T]) -> T:
    async def call() -> T:
        return fn()

    return mock.call(call())


# -- the console -------------------------------------------------------------------------------------------


def test_console_reset_a_connection_and_watch_the_client_come_back(page: Any, mock: Any, client: Any) -> None:
    from playwright.sync_api import expect

    client()
    page.goto(console_url(mock))
    expect(page.locator("#status")).to_have_text("live")
    row = page.locator('tr[data-conn="1"]')
    expect(row.locator("td.subs")).to_contain_text("trade 2")
    expect(row.locator("td.key")).to_have_text("****")  # masked, as everywhere
    expect(row.locator("td.business")).to_have_text("crypto")
    expect(row.locator("td.hb .txt")).to_contain_text("/ 10s")
    expect(row.locator("td.window .txt")).to_contain_text("/ 60")

    row.locator(".faults-btn").click()
    kinds = page.locator("#popover .kinds button")
    expect(kinds).to_have_count(sum("conn" in k.targets for k in KINDS.values()))  # from the registry
    page.locator('#popover button[data-kind="reset"]').click()

    expect(page.locator('tr[data-conn="1"]')).to_have_count(0)
    # The client reconnects and resubscribes: a new row, its subscriptions back.
    expect(page.locator('tr[data-conn="2"] td.subs')).to_contain_text("trade 2")
    expect(page.locator("#fault-log")).to_contain_text("reset → conn 1")
    expect(page.locator("#total-conns")).to_have_text("1")
    expect(page.locator('#report-clients tr[data-rule="resubscribed"]')).to_contain_text("1/1 reconnects")


def test_console_fault_form_is_built_from_the_registry(page: Any, mock: Any, client: Any) -> None:
    from playwright.sync_api import expect

    client()
    page.goto(console_url(mock))
    page.locator('tr[data-conn="1"] .faults-btn').click()
    page.locator('#popover button[data-kind="close"]').click()
    code = page.locator('#pop-fields input[name="code"]')
    expect(code).to_have_value("1011")  # the registry's default
    code.fill("1005")  # not sendable: refused with the registry's message, the form stays open
    page.locator("#pop-form button[type=submit]").click()
    expect(page.locator("#pop-error")).to_contain_text("$.fault.code")
    code.fill("4001")
    page.locator('#pop-fields input[name="reason"]').fill("from the console")
    page.locator("#pop-form button[type=submit]").click()
    expect(page.locator("#popover")).to_be_hidden()
    expect(page.locator('tr[data-conn="2"]')).to_have_count(1)
    closed = server_call(mock, lambda: [r for r in mock.server.records if r.conn_id == 1])
    assert closed and closed[0].close_code == 4001

    # Per key and for all: the same registry, other targets.
    page.locator('#key-table tr[data-key="k1"] .faults-btn').click()
    expect(page.locator('#popover button[data-kind="refuse"]')).to_have_count(1)
    page.keyboard.press("Escape")
    page.locator("#fault-all").click()
    expect(page.locator('#popover button[data-kind="restart"]')).to_have_count(1)


def test_console_plays_and_stops_a_scenario(page: Any, mock: Any, client: Any) -> None:
    from playwright.sync_api import expect

    client()
    page.goto(console_url(mock))
    expect(page.locator('tr[data-conn="1"]')).to_have_count(1)
    page.locator("#scale").fill("0.5")
    page.locator('li[data-scenario="silent-stall"] button.play').click()
    expect(page.locator("#playing-name")).to_have_text("silent-stall")
    expect(page.locator("#steps li.fired")).to_have_count(1)
    expect(page.locator("#active-faults")).to_contain_text("stall → all")
    expect(page.locator('tr[data-conn="1"] td.hb .txt')).to_have_text("paused (not read)")
    page.locator("#stop").click()
    expect(page.locator("#playing-state")).to_have_text("stopped")
    expect(page.locator("#active-faults")).to_have_text("none")


def test_console_refuses_a_wrong_token(page: Any, mock: Any) -> None:
    from playwright.sync_api import expect

    for token in ("wrong", ""):
        resp = page.goto(console_url(mock, token))
        assert resp is not None and resp.status == 401
        expect(page.locator("h1")).to_contain_text("401")
    # Nor does the socket open without it, even from a page the mock served.
    code = page.evaluate(
        """() => new Promise((done) => {
            const ws = new WebSocket(`ws://${location.host}/console/ws?token=wrong`);
            ws.onopen = () => done("open");
            ws.onclose = (e) => done(e.code);
        })"""
    )
    assert code == 1006  # the handshake was refused (401)
    assert server_call(mock, lambda: mock.server.metrics.handshakes_refused[401]) >= 1


# -- the HTML report ---------------------------------------------------------------------------------------


def test_html_report_opens_offline_with_timeline_and_verdicts(
    page: Any, mock: Any, client: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    client()
    mock.fault("reset")  # one disconnect without a close frame, then the client's reconnect
    wait_for(
        lambda: server_call(mock, lambda: len(mock.server.records) == 1 and len(mock.server.sessions) == 1)
    )
    path = tmp_path / "report.html"
    path.write_text(server_call(mock, mock.server.report_html), encoding="utf-8")

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    expect(page.locator("header h1")).to_contain_text("contract report")
    client_card = page.locator("section.client")
    expect(client_card).to_have_count(1)
    expect(client_card.locator("h2 .key")).to_have_text("****")
    expect(client_card.locator('tr[data-rule="resubscribed"] .pill')).to_have_text("pass")
    expect(client_card.locator('tr[data-rule="heartbeat"]')).to_contain_text("longest silence")
    expect(client_card.locator("svg")).to_have_count(3)  # timeline, request rate, push rate
    expect(client_card).to_contain_text("no close frame")  # the reset, on the timeline
    expect(client_card).to_contain_text("limit 60")  # the request rate against the plan's limit
    client_card.locator("summary").click()
    expect(client_card.locator("details tbody tr")).to_have_count(2)
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
