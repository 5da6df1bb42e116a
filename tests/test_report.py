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


# -- rules judged per (key, business) stream; FAIL for what the server punishes, WARN for advice ----------

DEPTH = ("depth", 0)


def rec2(
    conn_id: int, opened: float, closed: float | None, business: str = "crypto", **kw
) -> ConnectionRecord:
    kw.setdefault("heartbeats", 5)
    kw.setdefault("max_heartbeat_gap", 5.0)
    kw.setdefault("last_heartbeat", closed - 1 if closed is not None else None)
    return ConnectionRecord(
        conn_id=conn_id, key="demo", business=business, opened=opened, closed=closed, **kw
    )


def rules_of(records: list[ConnectionRecord], now: float = 20.0, **rules) -> dict:
    return build_report(records, lambda k: Rules(**rules), now=now)


def test_switching_business_is_not_a_missed_resubscribe() -> None:
    btc, aapl = {(TRADE, "BTCUSDT")}, {(TRADE, "AAPL.US")}
    report = rules_of(
        [
            rec2(1, 0, 10, final=btc, ever=btc),
            rec2(2, 11, None, business="stock", final=aapl, ever=aapl, last_heartbeat=19),
        ]
    )
    client = report["clients"][0]
    assert client["rules"]["resubscribed"]["verdict"] == "n/a", client["rules"]["resubscribed"]
    assert [s["business"] for s in client["streams"]] == ["crypto", "stock"]
    assert report["verdict"] == "pass", summary(report)


def test_parallel_sockets_are_each_paired_with_their_own_predecessor() -> None:
    btc, eth = {(TRADE, "BTCUSDT")}, {(DEPTH, "ETHUSDT")}
    a, b = rec2(1, 0, 10, final=btc, ever=btc), rec2(2, 1, 10, final=eth, ever=eth)
    good = [
        a,
        b,
        rec2(3, 11, None, final=btc, ever=btc, last_heartbeat=19),
        rec2(4, 11.5, None, ever=eth, final=eth, last_heartbeat=19),
    ]
    verdict = rules_of(good)["clients"][0]["rules"]["resubscribed"]
    assert verdict["verdict"] == "pass" and verdict["detail"].startswith("2/2"), verdict
    bad = [
        a,
        b,
        rec2(3, 11, None, final=btc, ever=btc, last_heartbeat=19),
        rec2(4, 11.5, None, last_heartbeat=19),
    ]
    verdict = rules_of(bad)["clients"][0]["rules"]["resubscribed"]
    assert verdict["verdict"] == "fail" and "conn 4 did not resubscribe 1 of conn 2's" in verdict["detail"]


def test_a_fresh_socket_is_not_taken_for_the_reconnect() -> None:
    btc, xrp = {(TRADE, "BTCUSDT")}, {(TRADE, "XRPUSDT")}
    records = [
        rec2(1, 0, 10, final=btc, ever=btc),
        rec2(2, 10.5, None, final=xrp, ever=xrp, last_heartbeat=19),  # opened for something else
        rec2(3, 11, None, final=btc, ever=btc, last_heartbeat=19),  # the reconnect
    ]
    verdict = rules_of(records)["clients"][0]["rules"]["resubscribed"]
    assert verdict["verdict"] == "pass" and verdict["detail"].startswith("1/1"), verdict


def test_heartbeat_tail_counts() -> None:
    # One heartbeat, then 35 s of silence until the client closed: the docs' 30 s is not kept.
    quiet = [rec2(1, 0, 36, heartbeats=1, max_heartbeat_gap=1, last_heartbeat=1)]
    hb = rules_of(quiet, now=40)["clients"][0]["rules"]["heartbeat"]
    assert hb["verdict"] == "warn" and "35.0s" in hb["detail"] and "after its last heartbeat" in hb["detail"]
    # Still connected and silent for 70 s: beyond the server's 60 s timeout.
    live = [rec2(1, 0, None, heartbeats=1, max_heartbeat_gap=1, last_heartbeat=1)]
    assert rules_of(live, now=71)["clients"][0]["rules"]["heartbeat"]["verdict"] == "fail"
    # Never a heartbeat: the whole connection is the tail.
    none = [rec2(1, 0, 45, heartbeats=0, max_heartbeat_gap=0, last_heartbeat=None)]
    assert rules_of(none, now=50)["clients"][0]["rules"]["heartbeat"]["verdict"] == "warn"


def test_tutorial_cadence_is_a_warning_not_a_failure() -> None:
    """The tutorial client first heartbeats at ~40 s, then every 30 s: the 60 s timeout accepts it."""
    tutorial = [rec2(1, 0, None, heartbeats=4, max_heartbeat_gap=40.2, last_heartbeat=130)]
    report = rules_of(tutorial, now=150)
    client = report["clients"][0]
    assert client["rules"]["heartbeat"]["verdict"] == "warn"
    assert client["verdict"] == "warn" and report["verdict"] == "warn"
    assert "WARN heartbeat" in summary(report)
    assert rules_of(tutorial, now=150, heartbeat_interval=45)["verdict"] == "pass"


def test_fail_only_for_what_the_server_punishes() -> None:
    timed_out = [rec2(1, 0, 61, errors_by_code={513: 1}, max_heartbeat_gap=5, last_heartbeat=1)]
    assert rules_of(timed_out, now=70)["clients"][0]["rules"]["heartbeat"]["verdict"] == "fail"
    # A gap beyond the timeout is punished live even where this server let it pass (idle reset variant).
    lenient = [rec2(1, 0, None, max_heartbeat_gap=65, last_heartbeat=66)]
    assert rules_of(lenient, now=70)["clients"][0]["rules"]["heartbeat"]["verdict"] == "fail"
    over_plan = [rec2(1, 0, None, errors_by_code={505: 2}, last_heartbeat=19)]
    rules = rules_of(over_plan)["clients"][0]["rules"]
    assert rules["limits"]["verdict"] == "fail" and "2 x 505" in rules["limits"]["detail"]


def test_requests_without_trace_are_a_warning() -> None:
    untraced = [
        rec2(1, 0, None, requests_by_code={10000: 2, 10010: 3}, requests_without_trace=3, last_heartbeat=19)
    ]
    report = rules_of(untraced)
    assert report["clients"][0]["rules"]["trace"] == {
        "verdict": "warn",
        "detail": "3 of 5 request(s) without a trace (the docs require one)",
    }
    assert report["verdict"] == "warn"
    assert rules_of([rec2(1, 0, None, last_heartbeat=19)])["clients"][0]["rules"]["trace"]["verdict"] == "n/a"


def test_overall_verdict_is_fail_only_on_a_fail() -> None:
    warn = rec2(1, 0, None, requests_by_code={10010: 1}, requests_without_trace=1, last_heartbeat=19)
    ok = ConnectionRecord(
        conn_id=2, key="other", business="crypto", opened=0, heartbeats=1, last_heartbeat=19
    )
    report = build_report([warn, ok], lambda k: Rules(), now=20)
    assert [c["verdict"] for c in report["clients"]] == ["warn", "pass"]
    assert report["verdict"] == "warn"
    bad = rec2(3, 0, None, errors_by_code={501: 1}, last_heartbeat=19)
    assert build_report([warn, ok, bad], lambda k: Rules(), now=20)["verdict"] == "fail"


async def test_tutorial_like_client_gets_a_heartbeat_warning_from_a_real_server(make_server) -> None:
    """Scaled 1/60: timeout 1 s, the docs' 30 s is 0.5 s, the tutorial's ~40 s first heartbeat 0.65 s."""
    import threading

    from tests.test_tutorial_client import TutorialLikeClient

    srv = await make_server(heartbeat_timeout=1.0, report_heartbeat_interval=0.5)
    client = TutorialLikeClient(srv.ws_url("common"), heartbeat_every=0.65, pause=0.01)
    thread = threading.Thread(target=client.app.run_forever, daemon=True)
    thread.start()
    try:
        await wait_until(
            lambda: any(r.heartbeats >= 2 for r in (s for s, _ in srv.sessions.values())), timeout=10
        )
        report = srv.report()
        rules = report["clients"][0]["rules"]
        assert rules["heartbeat"]["verdict"] == "warn", summary(report)
        assert report["verdict"] == "warn", summary(report)
        assert 513 not in client.codes()
    finally:
        client.stop.set()
        # In threads: the server answering the close runs on this event loop, which must keep going.
        await asyncio.to_thread(client.app.close)
        await asyncio.to_thread(thread.join, 5)
