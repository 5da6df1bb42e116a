"""The reference client plays every shipped scenario (time scaled 1/10) and gets a clean report."""

from __future__ import annotations

import asyncio
import time

import pytest

from infoway_mock.client import InfowayClient
from infoway_mock.mockserver import scenario as sc
from infoway_mock.mockserver.config import config_from_dict
from infoway_mock.mockserver.report import summary
from infoway_mock.mockserver.server import MockServer
from tests.conftest import fast_config

SCALE = 0.1
SHIPPED = sorted(p.stem for p in sc.SCENARIO_DIR.glob("*.yaml"))

# The live service's timings scaled by SCALE: heartbeat timeout and rate window 60 s -> 6 s.
SERVER = {"heartbeat_timeout": 6.0, "rate_window": 6.0, "report_heartbeat_interval": 3.0}
CLIENT = {
    "heartbeat_interval": 0.5,
    "dead_peer_timeout": 1.0,
    "rate_window": 6.0,
    "backoff_base": 0.05,
    "backoff_cap": 0.3,
    "long_backoff": 0.3,
    "healthy_after": 0.5,
    "ack_timeout": 1.0,
}
WANTED = {("trade", 0): {"BTCUSDT", "ETHUSDT"}, ("depth", 0): {"BTCUSDT"}, ("kline", 1): {"BTCUSDT"}}


def resubscribed(srv: MockServer) -> bool:
    if len(srv.sessions) != 1:
        return False
    ((session, _),) = srv.sessions.values()
    got: dict = {}
    for ch, sym in session.subscription_pairs():
        got.setdefault(ch, set()).add(sym)
    return got == WANTED


@pytest.mark.parametrize("name", SHIPPED)
async def test_reference_client_passes_every_scenario(name: str) -> None:
    scenario = sc.load(name)
    cfg = config_from_dict({"server": scenario.server}, fast_config(**SERVER))
    srv = MockServer(cfg)
    await srv.start()
    try:
        async with InfowayClient(srv.ws_url(), **CLIENT) as client:
            await client.subscribe_trades("BTCUSDT,ETHUSDT")
            await client.subscribe_depth("BTCUSDT")
            await client.subscribe_klines("BTCUSDT", [1])

            async def consume() -> None:
                async for _ in client:
                    pass

            consumer = asyncio.create_task(consume())
            await srv.play(scenario, scale=SCALE)
            # After the last fault, give the client its reconnect and resubscription, then judge.
            deadline = time.monotonic() + 10
            while not resubscribed(srv):
                assert time.monotonic() < deadline, f"client did not come back after {name}"
                await asyncio.sleep(0.05)
            consumer.cancel()
        report = srv.report()
        assert report["verdict"] == "pass", summary(report)
        assert srv.metrics.faults_applied, "the scenario applied no fault"
        assert srv.contract_violations == []
    finally:
        await srv.stop()
