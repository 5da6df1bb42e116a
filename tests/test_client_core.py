"""The client's protocol core and reconnect policy, driven directly with explicit time: no server."""

from __future__ import annotations

import ast
import itertools
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from infoway_mock.client import AuthError, GaveUp
from infoway_mock.client.config import ClientConfig
from infoway_mock.client.core import ClientCore
from infoway_mock.client.events import BadFrame, Connected, Disconnected, Resubscribed, ServerError, Trade
from infoway_mock.client.policy import (
    CLOSED,
    DROPPED,
    LOCAL,
    PROTOCOL,
    REFUSED,
    TIMEOUT,
    UNREACHABLE,
    BackoffPolicy,
    Outcome,
    PolicyConfig,
    ReconnectPolicy,
)
from infoway_mock.client.subscriptions import TRADE, kline_channel
from infoway_mock.schemas.codes import (
    HEARTBEAT,
    HEARTBEAT_TIMEOUT,
    PUSH_DEPTH,
    PUSH_KLINE,
    PUSH_TRADE,
    RATE_LIMIT,
    SUB_TRADE,
    SUB_TRADE_ACK,
)

ROOT = Path(__file__).resolve().parents[1]


def core(**settings: Any) -> ClientCore:
    return ClientCore(ClientConfig(**settings), url="ws://x/ws?apikey=de**mo", rng=random.Random(3))


def trade(symbol: str = "BTCUSDT", t: int = 1_786_000_000_000) -> bytes:
    return orjson.dumps({"code": PUSH_TRADE, "data": {"s": symbol, "p": "1", "v": "1", "vw": "1", "t": t}})


def sent(frames: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(f) for f in frames]


def answer(frame: dict[str, Any]) -> bytes:
    """What a live server sends back: 10011 for a heartbeat with ack, code + 1 for a subscribe."""
    code = 10011 if frame["code"] == HEARTBEAT else frame["code"] + 1
    return orjson.dumps({"code": code, "trace": frame["trace"], "msg": "ok"})


def run(c: ClientCore, until: float, now: float = 0.0, on_send: Any = None) -> float:
    """Drive the core from deadline to deadline, as the shell does, with a server that answers at once;
    every frame sent goes to on_send."""
    while now < until:
        assert c.check(now) is None
        frames = sent(c.frames_to_send(now))
        if on_send is not None:
            on_send(now, frames)
        if frames:
            c.receive([answer(f) for f in frames], now)
        deadline = c.deadline()
        assert deadline is not None
        now = max(now + 1e-6, min(deadline, until))
    return now


# -- decoding -------------------------------------------------------------------------------------------


def test_pushes_decode_in_order_and_bad_frames_are_reported_and_skipped() -> None:
    c = core()
    c.opened(0.0, 0)
    frames = [
        trade(t=1),
        b'{"code":10002,"data":{"s":"BTCUSDT","p":"1","v":"1"}}',  # no t
        b'{"code":10005,"data":{"s":"BTCUSDT","a":[["2"],["1"]],"b":[["1"],["1"]]}}',  # no t
        b'{"code":10008,"data":{"s":"BTCUSDT","ty":1,"t":"soon","o":"1"}}',
        b'{"code":10008,"data":{"s":"BTCUSDT","ty":1,"t":"1786775220","o":"1"}}',
        b'{"code":10002,"data":{"s":"BTCUSDT","p":',  # broken JSON
        b'{"code":19999,"data":{}}',
        b"You have permission to subscribe to all market data",
        b'{"traceId":"x","code":506,"msg":"Param error"}',
        trade(t=2),
    ]
    events = c.receive(frames, 1.0)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Trade", "BadFrame", "BadFrame", "BadFrame", "Kline", "BadFrame", "BadFrame", "Trade"]
    reasons = [e.reason for e in events if isinstance(e, BadFrame)]
    assert "trade push without an integer `t`" in reasons[0]
    assert "depth push without an integer `t`" in reasons[1]
    assert "kline push without a numeric `t`" in reasons[2]
    assert reasons[3] == "broken JSON" and "unknown code 19999" in reasons[4]
    assert c.counts == {"trade": 2, "depth": 0, "kline": 1, "control": 1, "error": 1, "bad": 5}
    assert [type(n) for n in c.take_notices()] == [Connected, ServerError]
    assert isinstance(c.receive_binary(b"\x00\xff", 2.0)[0], BadFrame) and c.counts["bad"] == 6


def test_depth_and_kline_pushes_track_their_market_time() -> None:
    c = core()
    c.subscribe(kline_channel(1), ["BTCUSDT"])
    c.opened(0.0, 0)
    depth = {"code": PUSH_DEPTH, "data": {"s": "A", "t": 5, "a": [["2"], ["1"]], "b": [["1"], ["1"]]}}
    kline = {"code": PUSH_KLINE, "data": {"s": "BTCUSDT", "ty": 1, "t": 1786775220, "o": "1"}}
    events = c.receive([orjson.dumps(depth), orjson.dumps(kline)], 1.0)
    assert [e.kind for e in events] == ["depth", "kline"] and c.last_push_at == 1.0
    assert c.backfill_requests([]) == []


# -- heartbeats and the pacer ---------------------------------------------------------------------------


def test_heartbeats_every_half_second_never_pile_up_nor_starve_a_subscribe() -> None:
    # The case: heartbeats at 0.5 s want 120 frames a minute against a budget of 48.
    c = core(heartbeat_interval=0.5)
    c.opened(0.0, 0)
    log: list[tuple[float, dict[str, Any]]] = []
    now = run(c, 30.0, on_send=lambda t, frames: log.extend((t, f) for f in frames))
    c.subscribe(TRADE, ["BTCUSDT"])  # at 30 s
    run(c, 120.0, now, on_send=lambda t, frames: log.extend((t, f) for f in frames))
    sub_at = next(t for t, f in log if f["code"] == SUB_TRADE)
    assert sub_at - 30.0 < 0.01, "the subscribe went out at once: heartbeats leave room for requests"
    times = [t for t, _ in log]
    span = c.pacer.window + c.pacer.margin
    assert max(sum(1 for u in times if t <= u < t + span) for t in times) <= c.pacer.budget
    beats = [t for t, f in log if f["code"] == HEARTBEAT]
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) < 5.0 and min(gaps) >= 0.5, "steady heartbeats, stretched to fit the budget"
    assert all(f["code"] != HEARTBEAT or f["ack"] == 1 for _, f in log)


def test_heartbeats_and_a_request_backlog_share_a_tight_budget_without_starving_either() -> None:
    c = core(heartbeat_interval=0.5, rate_limit=10, rate_window=10.0)  # 8 frames per 12 s
    c.book.max_codes = 1  # 40 single-symbol requests to replay: five windows' worth
    c.subscribe(TRADE, [f"S{i}" for i in range(40)])
    c.opened(0.0, 0)
    log: list[tuple[float, int]] = []
    run(c, 90.0, on_send=lambda t, frames: log.extend((t, f["code"]) for f in frames))
    codes = [code for _, code in log]
    last_request = max(i for i, code in enumerate(codes) if code != HEARTBEAT)
    backlog = codes[: last_request + 1]
    # While requests wait: never two heartbeats in a row (no pile-up), yet one in every window.
    assert all(not (a == b == HEARTBEAT) for a, b in itertools.pairwise(backlog))
    beats = [t for t, code in log if code == HEARTBEAT]
    window = c.pacer.window + c.pacer.margin
    assert max(b - a for a, b in itertools.pairwise(beats)) <= window + 1e-6
    assert codes.count(SUB_TRADE) == 40


def test_a_reply_owed_and_never_given_is_a_dead_peer_at_its_deadline() -> None:
    c = core(heartbeat_interval=5.0, dead_peer_timeout=2.0)
    c.opened(0.0, 0)
    assert c.deadline() == pytest.approx(5.0)
    assert [f["code"] for f in sent(c.frames_to_send(5.0))] == [HEARTBEAT]
    assert c.deadline() == pytest.approx(7.0)  # the reply is overdue before the next heartbeat
    assert c.check(6.9) is None
    assert c.check(7.0) == "dead peer: no reply for 2.0s"
    c.receive([b'{"code":10011,"trace":"hb-1","msg":"ok"}'], 6.5)  # any frame pays the debt
    assert c.check(7.0) is None and c.deadline() == pytest.approx(10.0)


def test_data_idle_watchdog_counts_only_pushes() -> None:
    c = core(heartbeat_interval=1.0, data_idle_timeout=3.0)
    c.subscribe(TRADE, ["BTCUSDT"])
    c.opened(0.0, 0)
    c.receive([trade()], 1.0)
    c.receive([b'{"code":10011,"trace":"hb-1","msg":"ok"}'], 3.5)
    assert c.check(3.9) is None
    assert c.check(4.0) == "data idle: no push for 3.0s"


def test_an_unacked_subscribe_is_sent_again_once_then_reported() -> None:
    c = core(heartbeat_interval=100.0, ack_timeout=2.0, max_request_attempts=2)
    c.subscribe(TRADE, ["BTCUSDT"])
    c.opened(0.0, 0)
    assert [f["code"] for f in sent(c.frames_to_send(0.0))] == [SUB_TRADE]
    assert c.deadline() == pytest.approx(2.0)
    assert c.check(2.0) is None
    again = sent(c.frames_to_send(2.0))
    assert [f["code"] for f in again] == [SUB_TRADE]
    assert c.check(4.0) is None
    assert c.frames_to_send(4.0) == []
    (err,) = [n for n in c.take_notices() if isinstance(n, ServerError)]
    assert err.code == 0 and "after 2 attempts" in err.msg


# -- replay and gaps ------------------------------------------------------------------------------------


def test_reconnect_replays_the_live_set_and_reports_each_gap_with_its_bounds() -> None:
    c = core(heartbeat_interval=100.0)
    c.subscribe(TRADE, ["BTCUSDT", "ETHUSDT"])
    c.unsubscribe(TRADE, ["ETHUSDT"])
    c.opened(0.0, 1_000)
    (sub,) = sent(c.frames_to_send(0.0))
    assert sub["data"] == {"codes": "BTCUSDT"}
    c.receive([orjson.dumps({"code": SUB_TRADE_ACK, "trace": sub["trace"], "msg": "ok"})], 0.1)
    c.receive([trade(t=500)], 0.2)
    assert c.closed(Outcome(DROPPED, "reset", at=20.0), wall_ms=21_000) is not None
    c.opened(21.0, 22_000)
    (again,) = sent(c.frames_to_send(21.0))
    assert again["data"] == {"codes": "BTCUSDT"} and again["trace"] != sub["trace"]
    # An ack from the old connection confirms nothing on this one.
    c.receive([orjson.dumps({"code": SUB_TRADE_ACK, "trace": sub["trace"], "msg": "ok"})], 21.1)
    assert not any(isinstance(n, Resubscribed) for n in c.take_notices())
    c.receive([orjson.dumps({"code": SUB_TRADE_ACK, "trace": again["trace"], "msg": "ok"})], 21.5)
    (resub,) = [n for n in c.take_notices() if isinstance(n, Resubscribed)]
    (gap,) = resub.gaps
    assert (gap.channel, gap.symbol, gap.offline_from, gap.last_before) == ("trade", "BTCUSDT", 21_000, 500)
    assert gap.offline_to == 22_500 and gap.first_after is None
    c.receive([trade(t=900)], 22.0)
    assert c.gaps[0].first_after == 900 and c.reconnects == 1


def test_backfill_merge_delivers_each_missed_candle_once_from_the_last_seen() -> None:
    c = core()
    rows = [{"t": str(t), "o": "1"} for t in (300, 240, 180, 120)]  # newest first, as REST sends them
    got = c.merge_backfill(1, "BTCUSDT", [*rows, {"o": "no t"}], seen=180)
    assert [k.open_time_s for k in got if not isinstance(k, BadFrame)] == [180, 240, 300]
    assert all(k.backfill for k in got if not isinstance(k, BadFrame))
    assert isinstance(got[0], BadFrame)


# -- outcomes through the core --------------------------------------------------------------------------


def test_every_outcome_kind_gets_its_delay_and_side_effects() -> None:
    c = core(backoff_base=1.0, backoff_cap=8.0, long_backoff=60.0, healthy_after=10.0)
    budget = c.pacer.budget
    assert 0.2 <= c.closed(Outcome(UNREACHABLE, "refused", at=0.0), 0) <= 0.5
    assert 0 <= c.closed(Outcome(TIMEOUT, "slow", at=1.0), 0) <= 1.0
    assert 0 <= c.closed(Outcome(PROTOCOL, "not http", at=2.0), 0) <= 2.0
    assert 30 <= c.closed(Outcome(REFUSED, "quota", at=3.0, code=427), 0) <= 60
    assert 0 <= c.closed(Outcome(REFUSED, "rate", at=4.0, code=429), 0) <= 8.0
    assert c.pacer.budget == budget // 2
    assert 0 <= c.closed(Outcome(REFUSED, "bad gateway", at=5.0, code=502), 0) <= 8.0
    c.opened(10.0, 0)
    c.receive([orjson.dumps({"traceId": "", "code": RATE_LIMIT, "msg": "too fast"})], 10.5)
    assert 0 <= c.closed(Outcome(CLOSED, "closed 1008", at=11.0, code=1008), 0) <= 8.0
    assert c.take_notices()[-1].code == RATE_LIMIT and c.pacer.budget == budget // 4
    c.opened(20.0, 0)
    c.receive([orjson.dumps({"traceId": "", "code": HEARTBEAT_TIMEOUT, "msg": "late"})], 39.0)
    assert c.closed(Outcome(CLOSED, "closed", at=40.0, code=1000), 0) == 0.0  # healthy: straight back
    assert c.pacer.budget == budget // 2  # a healthy session wins the pacer back, step by step
    c.opened(41.0, 0)
    assert 0 <= c.closed(Outcome(LOCAL, "dead peer", at=42.0), 0) <= 1.0
    c.opened(43.0, 0)
    assert c.closed(Outcome(REFUSED, "HTTP 401 Unauthorized", at=44.0, code=401), 0) is None
    assert isinstance(c.fatal, AuthError)
    last = c.take_notices()[-1]
    assert isinstance(last, Disconnected) and last.retry_in is None and "401" in last.reason


def test_max_attempts_gives_up_with_a_reason() -> None:
    c = core(max_attempts=3)
    assert c.closed(Outcome(UNREACHABLE, "refused", at=0.0), 0) is not None
    assert c.closed(Outcome(UNREACHABLE, "refused", at=0.3), 0) is not None
    assert c.closed(Outcome(UNREACHABLE, "refused", at=0.6), 0) is None
    assert isinstance(c.fatal, GaveUp) and "3 failed attempts" in str(c.fatal)


def test_connected_event_shows_the_url_it_was_given_and_the_attempts_before() -> None:
    c = core()
    c.closed(Outcome(UNREACHABLE, "refused", at=0.0), 0)
    c.connecting(0.3)
    c.opened(0.4, 0)
    (ev,) = [n for n in c.take_notices() if isinstance(n, Connected)]
    assert ev.url == "ws://x/ws?apikey=de**mo" and ev.attempt == 1 and c.attempts == 1


# -- the reconnect policy -------------------------------------------------------------------------------


def policy(**cfg: Any) -> ReconnectPolicy:
    return ReconnectPolicy(PolicyConfig(**cfg), rng=random.Random(11))


def test_policy_unreachable_probes_quickly_for_a_bounded_time_then_backs_off() -> None:
    p = policy(probe_interval=(0.2, 0.5), probe_window=10.0, base=1.0, cap=30.0)
    t, probes = 0.0, 0
    while True:
        d = p.next(Outcome(UNREACHABLE, "refused", at=t))
        if d.rule != "probe":
            break
        assert 0.2 <= d.delay <= 0.5
        probes += 1
        t += d.delay
    assert 10.0 <= t < 10.5 and 20 <= probes <= 50
    delays = [p.next(Outcome(UNREACHABLE, "refused", at=t + i)).delay for i in range(8)]
    assert all(0 <= d <= 30.0 for d in delays) and max(delays) > 2.0, "past the window: backoff grows"


def test_policy_handshake_refusals_back_off_and_401_stops() -> None:
    p = policy(base=1.0, cap=8.0, long_delay=60.0)
    assert p.next(Outcome(REFUSED, "x", code=401)).rule == "stop"
    assert p.next(Outcome(REFUSED, "x", code=427)).rule == "long"
    for status in (429, 500, 502, 503):
        d = p.next(Outcome(REFUSED, "x", code=status))
        assert d.rule == "backoff" and 0 <= d.delay <= 8.0
    assert p.failures == 5


def test_policy_sessions_that_end_right_after_opening_back_off_with_growing_ceilings() -> None:
    # A server that accepts, then drops (no close frame, no outage in between): the storm to avoid.
    p = policy(base=1.0, cap=30.0, healthy_after=10.0)
    # The first drop might be a restart seen only through its reset: one quick retry, no more.
    assert p.next(Outcome(DROPPED, "reset", at=0.0, lasted=0.3)).rule == "probe"
    rng_max = [min(30.0, 2.0**i) for i in range(8)]
    for i in range(8):
        d = p.next(Outcome(DROPPED, "reset", at=float(i), lasted=0.3))
        assert d.rule == "backoff" and 0 <= d.delay <= rng_max[i]
    for code in (1000, 1008, 1011):
        assert p.next(Outcome(CLOSED, "closed", code=code, lasted=0.3)).rule == "backoff"


def test_policy_a_restart_is_probed_and_five_in_a_row_never_grow_the_delay() -> None:
    p = policy(healthy_after=10.0)
    assert p.next(Outcome(DROPPED, "reset", at=0.0, lasted=60.0)).rule == "probe"  # healthy, then reset
    t = 0.0
    for outage in range(5):
        for _ in range(6):  # the server is down: refused
            d = p.next(Outcome(UNREACHABLE, "refused", at=t))
            assert d.rule == "probe", outage
            t += d.delay
        # It came back; the session delivered for a second and was reset by the next restart.
        d = p.next(Outcome(DROPPED, "reset", at=t + 1.0, lasted=1.0))
        assert d.rule == "probe" and d.delay <= 0.5
        t += 1.0
    assert p.failures == 0


def test_policy_going_away_close_codes_count_as_a_restart() -> None:
    p = policy()
    assert p.next(Outcome(CLOSED, "closed 1012", code=1012, lasted=30.0)).rule == "probe"
    assert p.next(Outcome(CLOSED, "closed 1001", code=1001, lasted=30.0)).rule == "probe"
    assert p.next(Outcome(CLOSED, "closed 1012", code=1012, lasted=0.2)).rule == "probe"  # once
    assert p.next(Outcome(CLOSED, "closed 1012", code=1012, lasted=0.2)).rule == "backoff"


def test_policy_heartbeat_timeout_after_a_healthy_session_comes_straight_back() -> None:
    for cls in (ReconnectPolicy, BackoffPolicy):
        p = cls(PolicyConfig(healthy_after=10.0), rng=random.Random(1))
        assert p.next(Outcome(CLOSED, "513", code=HEARTBEAT_TIMEOUT, lasted=30.0)).delay == 0.0
        assert p.next(Outcome(CLOSED, "513", code=HEARTBEAT_TIMEOUT, lasted=1.0)).rule == "backoff"


def test_backoff_policy_is_todays_every_failure_backs_off() -> None:
    p = BackoffPolicy(PolicyConfig(base=1.0, cap=30.0), rng=random.Random(1))
    assert p.next(Outcome(UNREACHABLE, "refused")).rule == "backoff"
    assert p.next(Outcome(DROPPED, "reset", lasted=60.0)).rule == "backoff"
    assert p.next(Outcome(UNREACHABLE, "refused")).rule == "backoff" and p.failures == 2


def test_a_reconnect_storm_spreads_out() -> None:
    # 1,000 clients whose short sessions are reset at once: the first retry is spread over the probe
    # interval; if the server drops them all again, the second over [0, base] s, and so on, doubling.
    policies = [ReconnectPolicy(PolicyConfig(base=1.0), random.Random(i)) for i in range(1000)]

    def spread(delays: list[float], lo: float, hi: float) -> int:
        assert all(lo <= d <= hi for d in delays)
        slices = [
            sum(1 for d in delays if lo + k * (hi - lo) / 10 <= d < lo + (k + 1) * (hi - lo) / 10)
            for k in range(10)
        ]
        return max(slices)

    first = [p.next(Outcome(DROPPED, "reset", lasted=1.0)).delay for p in policies]
    assert spread(first, 0.2, 0.5) < 200  # about 100 per tenth of the interval
    second = [p.next(Outcome(DROPPED, "reset", lasted=1.0)).delay for p in policies]
    assert spread(second, 0.0, 1.0) < 200
    third = [p.next(Outcome(DROPPED, "reset", lasted=1.0)).delay for p in policies]
    assert spread(third, 0.0, 2.0) < 200 and all(p.failures == 2 for p in policies)


def test_outcome_kinds_are_checked() -> None:
    with pytest.raises(ValueError):
        Outcome("gone", "x")


# -- shape of the package -------------------------------------------------------------------------------


def test_no_client_function_is_over_60_lines() -> None:
    long = []
    for path in sorted((ROOT / "client").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 60:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_client_uses_codes_from_the_schema_table_not_literals() -> None:
    def code_like(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and type(node.value) is int and 500 <= node.value <= 11020

    literals = []
    for path in sorted((ROOT / "client").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                found = [n for n in (node.left, *node.comparators) if code_like(n)]
            elif isinstance(node, ast.Dict):
                found = [v for k, v in zip(node.keys, node.values, strict=True) if code_like(v)]
                found = (
                    found if any(isinstance(k, ast.Constant) and k.value == "code" for k in node.keys) else []
                )
            else:
                continue
            literals += [f"{path.name}:{node.lineno} {n.value}" for n in found]  # type: ignore[attr-defined]
    assert not literals, literals


def test_config_rejects_settings_out_of_range() -> None:
    for bad in (
        {"heartbeat_interval": 0},
        {"queue_size": -1},
        {"queue_policy": "yolo"},
        {"reconnect_policy": "hope"},
        {"probe_interval": (0.5, 0.2)},
        {"max_attempts": 0},
        {"headroom": 1.0},
    ):
        with pytest.raises(ValueError):
            ClientConfig(**bad).validate()


def test_trade_events_from_the_fast_path_equal_decoded_ones() -> None:
    c = core()
    c.opened(0.0, 0)
    (ev,) = c.receive([trade(t=7)], 0.1)
    assert ev == Trade({"s": "BTCUSDT", "p": "1", "v": "1", "vw": "1", "t": 7}) and ev.time_ms == 7
