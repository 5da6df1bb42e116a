"""How a user tests their own client against the mock with the pytest plugin.

The plugin is installed with infoway-mock (entry point `pytest11`), so `infoway_server` and
`infoway_url` are simply there. This stands in for "your client": a minimal synchronous consumer that
reconnects and resubscribes. Replace it with yours and keep the assertions.

    pytest examples/test_my_client.py
"""

from __future__ import annotations

import json
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class MyClient:
    """A deliberately small client: subscribe, heartbeat, reconnect once the connection is lost."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.trades = 0
        self.connects = 0

    def run(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                with connect(self.url, open_timeout=5) as ws:
                    self.connects += 1
                    ws.send(
                        json.dumps(
                            {"code": 10000, "trace": f"t{self.connects}", "data": {"codes": "BTCUSDT"}}
                        )
                    )
                    next_heartbeat = 0.0
                    while time.monotonic() < until:
                        if time.monotonic() >= next_heartbeat:
                            ws.send(json.dumps({"code": 10010, "trace": "hb"}))
                            next_heartbeat = time.monotonic() + 1.0
                        try:
                            frame = json.loads(ws.recv(timeout=0.2))
                        except TimeoutError:
                            continue
                        if frame.get("code") == 10002:
                            self.trades += 1
            except (ConnectionClosed, OSError):
                time.sleep(0.2)  # this toy client's fixed reconnect pause


def test_my_client_survives_a_reset(infoway_server, infoway_url) -> None:
    client = MyClient(infoway_url)
    # A scenario from the shipped library, time-scaled: resets and jitter within a couple of seconds.
    infoway_server.play("flaky-network", scale=0.1)
    client.run(until=time.monotonic() + 3.5)

    assert client.connects >= 2, "the scenario's reset should have forced a reconnect"
    assert client.trades > 0
    report = infoway_server.report()
    assert report["verdict"] == "pass", report  # valid frames, heartbeats, request rate, resubscribed
