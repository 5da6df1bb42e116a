"""A mock server on its own thread and event loop, for sync or async test code alike (the pytest plugin)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from .config import ServerConfig
from .faults import Fault
from .scenario import Scenario, load, play
from .server import MockServer

T = TypeVar("T")


class BackgroundServer:
    """`with BackgroundServer(cfg) as srv:` serves on an ephemeral port; every method is thread-safe."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig(port=0)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="infoway-mock", daemon=True)
        self.server = MockServer(self.config)

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self.call(self.server.start())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.server.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # -- the control handle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, business: str = "crypto", key: str | None = "demo") -> str:
        return self.server.ws_url(business, key)

    @property
    def http_url(self) -> str:
        return self.server.http_url

    def fault(self, kind: str, **params: Any) -> dict[str, Any]:
        """Apply a fault now, e.g. `srv.fault("reset")`, `srv.fault("stall", seconds=5, key="demo")`."""
        return self.call(self.server.faults.apply(Fault(kind=kind, **params)))

    def clear_faults(self) -> int:
        async def clear() -> int:
            return self.server.faults.clear()

        return self.call(clear())

    def play(self, scenario: Scenario | str, scale: float = 1.0) -> Future[None]:
        """Start a scenario; returns a future that resolves when its duration has elapsed."""
        sc = load(scenario) if isinstance(scenario, str) else scenario
        if sc.server:
            # Applied before the future is returned, so a setting that cannot change fails here, loudly.
            self.call(self._apply_settings(sc.server))
        return self.submit(play(self.server.faults, sc, scale))

    async def _apply_settings(self, settings: dict[str, Any]) -> None:
        self.server.apply_settings(settings)

    def replay(self, capture: str | Path, speed: float = 1.0, loop: bool = False) -> None:
        """Serve a capture (`infoway-mock proxy --record`) instead of the seeded market, from now on:
        connect the client after this call. Disconnects replay at their recorded offsets."""
        from .replay import ReplayFeed, load

        feed = ReplayFeed(load(capture), speed=speed, loop=loop)

        async def use() -> None:
            self.server.use_feed(feed)

        self.call(use())

    def report(self) -> dict[str, Any]:
        async def report() -> dict[str, Any]:
            return self.server.report()

        return self.call(report())

    def counters(self) -> dict[str, int]:
        async def counters() -> dict[str, int]:
            return self.server.counters()

        return self.call(counters())
