"""The client's pure parts: pacer, backoff, subscription book, decoder, event queue (the core and the
reconnect policy have their own file, test_client_core.py)."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from infoway_mock.client.decode import Ack, Text, Welcome, decode
from infoway_mock.client.events import BadFrame, Depth, Kline, ServerError, Trade
from infoway_mock.client.pacer import Pacer
from infoway_mock.client.policy import CLOSED, DROPPED, BackoffPolicy, Outcome, PolicyConfig
from infoway_mock.client.queue import EventQueue
from infoway_mock.client.subscriptions import DEPTH, TRADE, SubscriptionBook, kline_channel


def test_pacer_never_exceeds_budget_in_any_window() -> None:
    p = Pacer(limit=10, window=1.0, headroom=0.2)
    sent: list[float] = []
    now = 0.0
    while len(sent) < 50:
        wait = p.delay(now)
        now += wait
        if wait == 0:
            p.record(now)
            sent.append(now)
            now += 0.001
    for i, t in enumerate(sent):
        in_window = [s for s in sent[i:] if s < t + 1.0]
        assert len(in_window) <= 8


def test_pacer_stays_under_the_server_limit_when_latency_jitters_within_its_margin() -> None:
    # The server stamps frames when it reads them: a burst read late and the next burst read on time
    # must still fit its window (this is how a CI run once drew two 501s).
    p = Pacer(limit=10, window=1.0, headroom=0.2)
    assert p.margin == pytest.approx(0.2)
    rng = random.Random(7)
    now, arrived = 0.0, []
    while len(arrived) < 200:
        wait = p.delay(now)
        now += wait
        if wait == 0:
            p.record(now)
            late = now + rng.uniform(0, p.margin * 0.99)
            arrived.append(max(late, arrived[-1] if arrived else 0.0))  # one socket: order kept
            now += rng.choice((0.0, 0.0, 0.002, 0.05))
    for i, t in enumerate(arrived):
        assert len([s for s in arrived[i:] if s < t + 1.0]) <= 8


def test_pacer_slows_down_and_recovers() -> None:
    p = Pacer(limit=60, window=60.0, headroom=0.2)
    assert p.budget == 48
    p.slow_down()
    assert p.budget == 24
    p.recover()
    assert p.budget == 48


def test_backoff_full_jitter_caps_and_resets_only_after_healthy_session() -> None:
    b = BackoffPolicy(PolicyConfig(base=1.0, cap=8.0, healthy_after=10.0), rng=random.Random(1))
    delays = [b.next(Outcome(CLOSED, "x", lasted=0.5)).delay for _ in range(10)]
    assert all(d is not None and 0 <= d <= 8.0 for d in delays)
    assert b.failures == 10
    b.next(Outcome(DROPPED, "accepted then dropped quickly: still failing", lasted=2.0))
    assert b.failures == 11
    d = b.next(Outcome(DROPPED, "healthy", lasted=12.0)).delay
    assert d is not None and d <= 1.0 and b.failures == 1


def test_replay_batches_and_groups_kline_types() -> None:
    book = SubscriptionBook(max_codes=2)
    book.add(TRADE, ["A", "B", "C"])
    book.add(DEPTH, ["A"])
    book.add(kline_channel(1), ["A", "B"])
    book.add(kline_channel(8), ["A", "B"])
    frames = book.replay_frames()
    assert [f["code"] for f in frames] == [10000, 10000, 10003, 10006]
    assert frames[0]["data"]["codes"] == "A,B" and frames[1]["data"]["codes"] == "C"
    assert frames[3]["data"]["arr"] == [{"type": 1, "codes": "A,B"}, {"type": 8, "codes": "A,B"}]


def test_unsubscribed_items_are_not_replayed() -> None:
    book = SubscriptionBook()
    book.add(TRADE, ["A", "B"])
    book.add(kline_channel(5), ["A"])
    book.remove(TRADE, ["A"])
    book.remove(kline_channel(5), None)
    assert book.pairs() == {(TRADE, "B")}
    assert book.replay_frames() == [{"code": 10000, "data": {"codes": "B"}}]


def test_acks_match_by_trace_and_connection() -> None:
    book = SubscriptionBook()
    book.sent("t1", {"code": 10000}, 0.0, connection=1, needs_ack=True)
    assert book.ack("t1", connection=2) is None  # a stale ack from another connection
    assert book.ack("t1", connection=1) is not None
    assert book.ack("t1", connection=1) is None
    book.sent("t2", {"code": 10000}, 0.0, connection=1, needs_ack=True)
    assert [p.trace for p in book.overdue(11.0, timeout=10.0)] == ["t2"]
    book.forget_connection(1)
    assert book.pending == {}


def test_decode_every_frame_kind() -> None:
    t = decode(
        '{"code":10002,"data":{"s":"BTCUSDT","p":"63039","v":"0.07933","vw":"5000.88387","t":1786775227483,"td":1}}'
    )
    assert isinstance(t, Trade) and t.price == Decimal("63039") and t.time.year == 2026 and t.direction == 1
    d = decode('{"code":10005,"data":{"s":"X","t":1,"a":[["2","3"],["1","1"]],"b":[["1"],["5"]]}}')
    assert isinstance(d, Depth) and d.bids == [(Decimal(1), Decimal(5))] and d.asks[1][0] == Decimal(3)
    k = decode(
        '{"code":10008,"data":{"s":"X","ty":1,"t":"1786775220","o":"1","h":"2","l":"1","c":"2","v":"1","vw":"2","pca":"1","pfr":"1%"}}'
    )
    assert isinstance(k, Kline) and k.high == Decimal(2) and k.open_time.minute == 27
    assert decode('{"code":10001,"trace":"a","msg":"ok"}') == Ack(10001, "a")
    assert decode('{"code":200,"msg":"ws connect success"}') == Welcome("ws connect success")
    assert decode('{"traceId":"x","code":513,"msg":"Websocket heartbeat timeout"}') == ServerError(
        513, "Websocket heartbeat timeout", "x"
    )
    assert decode("You have permission to subscribe to all market data") == Text(
        "You have permission to subscribe to all market data"
    )
    legacy = decode('{"code":10000,"data":{"s":"IF2401.CFE","p":"4563.4","v":"2","t":1731475200000}}')
    assert isinstance(legacy, Trade) and legacy.direction == 0
    assert isinstance(decode("[1,2]"), BadFrame) and isinstance(decode('{"code":10002,"data":5}'), BadFrame)


def _depth(symbol: str, t: int) -> Depth:
    return Depth({"s": symbol, "t": t, "a": [["2"], ["1"]], "b": [["1"], ["1"]]})


async def test_queue_drop_oldest_counts_and_keeps_lifecycle() -> None:
    q = EventQueue(maxsize=2, policy="drop-oldest")
    for i in range(4):
        await q.put(_depth("A", i))
    q.put_control(ServerError(500, "x"))
    assert q.dropped == 2
    assert isinstance(await q.get(), ServerError)
    assert (await q.get()).raw["t"] == 2


async def test_queue_keep_latest_coalesces_depth_per_symbol() -> None:
    q = EventQueue(maxsize=10, policy="keep-latest")
    for i in range(5):
        await q.put(_depth("A", i))
        await q.put(_depth("B", i))
    assert len(q) == 2 and q.dropped == 8
    assert [(await q.get()).raw["t"] for _ in range(2)] == [4, 4]


async def test_queue_block_applies_back_pressure() -> None:
    q = EventQueue(maxsize=1, policy="block")
    await q.put(_depth("A", 0))
    blocked = asyncio.create_task(q.put(_depth("A", 1)))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert (await q.get()).raw["t"] == 0
    await asyncio.wait_for(blocked, 1)
    assert q.dropped == 0


def test_queue_rejects_unknown_policy() -> None:
    with pytest.raises(ValueError):
        EventQueue(policy="yolo")
