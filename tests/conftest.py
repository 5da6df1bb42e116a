"""Shared fixtures: a real mock server on an ephemeral loopback port, with short timings."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import websockets

from infoway_mock.mockserver.config import ServerConfig
from infoway_mock.mockserver.server import MockServer


def fast_config(**overrides: Any) -> ServerConfig:
    """Timings short enough that every time-based behaviour shows within a second or two."""
    cfg = ServerConfig(
        port=0,
        seed=7,
        strict=True,
        heartbeat_timeout=5.0,
        depth_interval=0.05,
        kline_interval=0.1,
        trade_rate=20.0,
    )
    plan_fields = {"rate_limit", "max_connections", "max_products_per_connection", "max_products"}
    plan = {k: overrides.pop(k) for k in list(overrides) if k in plan_fields}
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg.with_overrides(**plan)


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    servers: list[MockServer] = []

    async def factory(**overrides: Any) -> MockServer:
        srv = MockServer(fast_config(**overrides))
        await srv.start()
        servers.append(srv)
        return srv

    yield factory
    for srv in servers:
        await srv.stop()
        assert srv.contract_violations == [], srv.contract_violations


@pytest.fixture
async def server(make_server: Callable[..., Any], infoway_target: Any) -> Any:
    """The in-process mock; in a live-parity run (--infoway-url), the server under test (a Target with the
    same ws_url(business, key=...) and http_url)."""
    if infoway_target is not None:
        return infoway_target
    return await make_server()


@pytest.fixture
def api_key(infoway_target: Any) -> str:
    """A key the server accepts: the mock's demo key, or INFOWAY_API_KEY in a live-parity run."""
    return "demo" if infoway_target is None else infoway_target.api_key


class WS:
    """A thin test client: JSON in and out, and waits with deadlines instead of sleeps."""

    def __init__(self, conn: websockets.ClientConnection) -> None:
        self.conn = conn
        self.backlog: list[Any] = []

    async def send(self, obj: Any) -> None:
        await self.conn.send(obj if isinstance(obj, str | bytes) else orjson.dumps(obj).decode())

    async def recv(self, timeout: float = 5.0) -> Any:
        if self.backlog:
            return self.backlog.pop(0)
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw

    async def expect(self, pred: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Return the first frame matching pred; frames that don't match are kept for later recv()."""
        deadline = time.monotonic() + timeout
        skipped: list[Any] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching frame within {timeout}s; saw {skipped[-5:]}")
                raw = await asyncio.wait_for(self.conn.recv(), left)
                try:
                    frame = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    frame = raw
                if pred(frame):
                    return frame
                skipped.append(frame)
        finally:
            self.backlog.extend(skipped)

    async def expect_code(self, code: int, timeout: float = 5.0) -> dict[str, Any]:
        return await self.expect(lambda f: isinstance(f, dict) and f.get("code") == code, timeout)

    async def close(self) -> None:
        await self.conn.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    opened: list[WS] = []

    async def factory(url: str, welcome: bool = True, **kwargs: Any) -> WS:
        # A test client that stopped reading has a full queue and cannot read the server's close reply:
        # don't let its close handshake wait websockets' default 10 s at teardown.
        kwargs.setdefault("close_timeout", 0.5)
        conn = await websockets.connect(url, compression=None, open_timeout=5, **kwargs)
        ws = WS(conn)
        opened.append(ws)
        if welcome:
            await ws.expect_code(200)
        return ws

    yield factory
    for ws in opened:
        await ws.conn.close()


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly when the browser tests did not run, and why (a machine without Chromium)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "test_browser.py" in r.nodeid]
    if skipped:
        longrepr = skipped[0].longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        terminalreporter.write_line(
            f"browser tests skipped ({len(skipped)}): {reason}", yellow=True, bold=True
        )


# locust monkey-patches the standard library with gevent when it is imported (threads become greenlets of
# one OS thread, sockets and selectors gevent's). Imported into the pytest process, it changed the ground
# under every later test: the suite then tested the mock on a patched stdlib that no user runs. Locust runs
# in child processes only; this marker skips without importing, and the hook below names any test that
# patches the process anyway.
requires_locust = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="locust is not installed"
)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_anything_patched():
        pytest.fail(
            f"{item.nodeid}: gevent has monkey-patched the pytest process (was locust imported here?); "
            "run locust in a child process",
            pytrace=False,
        )
