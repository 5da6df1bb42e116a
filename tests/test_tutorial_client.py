"""A client that behaves like the vendor's tutorial (websocket-client in a thread, one trace for every
request, a pause between subscriptions, periodic 10010 heartbeats), with only its URL pointed at the mock.

The tutorial's code is not copied: this reproduces its observable behaviour with its timings scaled down.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import websocket  # websocket-client, the library the tutorial uses

TRACE = "01213e9d-90a0-426e-a380-ebed633cba7a"  # the tutorial reuses one trace for every request


class TutorialLikeClient:
    def __init__(self, url: str, heartbeat_every: float, pause: float) -> None:
        self.url = url
        self.heartbeat_every = heartbeat_every
        self.pause = pause
        self.messages: list[str] = []
        self.closed = threading.Event()
        self.stop = threading.Event()
        self.app = websocket.WebSocketApp(
            url, on_open=self.on_open, on_message=self.on_message, on_close=self.on_close
        )

    def on_open(self, ws: websocket.WebSocketApp) -> None:
        def run() -> None:
            symbol = {"codes": "USOIL"}
            for code, data in (
                (10000, symbol),
                (10003, symbol),
                (10006, {"arr": [{"type": 1, "codes": "USOIL"}]}),
            ):
                ws.send(json.dumps({"code": code, "trace": TRACE, "data": data}))
                time.sleep(self.pause)  # the tutorial's spacing between requests, scaled down
            while not self.stop.wait(self.heartbeat_every):
                ws.send(json.dumps({"code": 10010, "trace": TRACE}))

        threading.Thread(target=run, daemon=True).start()

    def on_message(self, ws: websocket.WebSocketApp, message: str) -> None:
        self.messages.append(message)

    def on_close(self, ws: websocket.WebSocketApp, code: object, msg: object) -> None:
        self.closed.set()

    def codes(self) -> set[int]:
        out = set()
        for m in self.messages:
            try:
                out.add(json.loads(m)["code"])
            except (ValueError, KeyError, TypeError):
                pass
        return out


async def test_tutorial_style_client_streams_and_is_not_disconnected(make_server) -> None:
    timeout = 0.6
    srv = await make_server(heartbeat_timeout=timeout)
    client = TutorialLikeClient(srv.ws_url("common"), heartbeat_every=timeout / 3, pause=0.05)
    thread = threading.Thread(target=client.app.run_forever, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        wanted = {200, 10001, 10004, 10007, 10002, 10005, 10008}
        while not wanted <= client.codes():
            assert time.monotonic() < deadline, f"saw only {sorted(client.codes())}"
            await asyncio.sleep(0.02)
        # Stay connected across several heartbeat-timeout periods.
        until = time.monotonic() + 3 * timeout
        while time.monotonic() < until:
            assert not client.closed.is_set()
            await asyncio.sleep(0.05)
        assert 513 not in client.codes()
        assert srv.metrics.errors_sent[513] == 0
    finally:
        client.stop.set()
        # Joined off the event loop: the mock serving the close handshake runs on this loop, and a
        # blocking join here would stall it until the client's own close timeout.
        await asyncio.to_thread(client.app.close)
        await asyncio.to_thread(thread.join, 5)
