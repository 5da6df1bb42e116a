"""The contract report: a well-behaved client passes, a bad one fails the rules it broke."""

from __future__ import annotations

import asyncio

from infoway_mock.mockserver.faults import Fault
from infoway_mock.mockserver.report import ConnectionRecord, Rules, build_report, summary
from tests.conftest import wait_until

TRADE = ("trade", 0)


def rec(conn_id: int, opened: float, closed: float | None, **kw) -> ConnectionRecord:
    return ConnectionRecord(
        conn_id=conn_id, key="demo", business="crypto", opened=opened, closed=closed, **kw
    )


def test_resubscription_rule() -> None:
    subs = {(TRADE, "BTCUSDT"), (TRADE, "ETHUSDT")}
    good = [
        rec(1, 0, 10, heartbeats=3, max_heartbeat_gap=5, final=subs, ever=subs),
        rec(2, 11, None, heartbeats=3, max_heartbeat_gap=5, final=subs, ever=subs),
    ]
    report = build_report(good, lambda k: Rules(heartbeat_interval=30), now=20)
    assert report["verdict"] == "pass"
    assert report["clients"][0]["rules"]["resubscribed"]["verdict"] == "pass"
    bad = [good[0], rec(2, 11, None, heartbeats=3, max_heartbeat_gap=5, ever={(TRADE, "BTCUSDT")})]
    report = build_report(bad, lambda k: Rules(), now=20)
    verdict = report["clients"][0]["rules"]["resubscribed"]
    assert verdict["verdict"] == "fail" and "ETHUSDT" in verdict["detail"]
    assert "FAIL resubscribed" in summary(report)


async def test_bad_client_gets_failing_verdicts(make_server, connect) -> None:
    srv = await make_server(rate_limit=10, heartbeat_timeout=0.5, report_heartbeat_interval=0.25)
    # One connection never heartbeats and is timed out...
    idle = await connect(srv.ws_url())
    await idle.expect_code(513, timeout=5)
    # ...the next sends an invalid frame and a burst of requests.
    ws = await connect(srv.ws_url())
    await ws.send("not json")
    for i in range(12):
        await ws.send({"code": 10000, "trace": f"b{i}", "data": {"codes": "BTCUSDT"}})
    await ws.expect_code(501)
    await wait_until(lambda: not srv.sessions)
    report = srv.report()
    rules = report["clients"][0]["rules"]
    assert report["verdict"] == "fail"
    assert rules["valid_frames"]["verdict"] == "fail"
    assert rules["request_rate"]["verdict"] == "fail"
    assert rules["heartbeat"]["verdict"] == "fail"


async def test_good_client_passes_across_a_reconnect(make_server, connect) -> None:
    srv = await make_server(heartbeat_timeout=1.0, report_heartbeat_interval=0.5)

    async def session(n_heartbeats: int):
        ws = await connect(srv.ws_url())
        await ws.send({"code": 10000, "trace": "s", "data": {"codes": "BTCUSDT,ETHUSDT"}})
        await ws.expect_code(10001)
        for i in range(n_heartbeats):
            await ws.send({"code": 10010, "trace": f"h{i}", "ack": 1})
            await ws.expect_code(10011)
            await asyncio.sleep(0.1)  # heartbeat cadence under test
        return ws

    await session(2)
    await srv.faults.apply(Fault("reset"))
    await wait_until(lambda: not srv.sessions)
    await session(2)
    report = srv.report()
    assert report["verdict"] == "pass", summary(report)
    assert report["clients"][0]["rules"]["resubscribed"]["detail"].startswith("1/1")
