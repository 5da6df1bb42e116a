"""The protocol state machine, driven directly: no sockets, no clocks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from infoway_mock.mockserver.config import Plan, ServerConfig
from infoway_mock.mockserver.limits import QuotaBook, SlidingWindow
from infoway_mock.mockserver.session import (
    DEPTH,
    TRADE,
    Close,
    Send,
    Session,
    Subscribe,
    Unsubscribe,
    kline_channel,
)

CRYPTO = {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def make(plan: Plan | None = None, quotas: QuotaBook | None = None, conn_id: int = 1, **cfg: Any) -> Session:
    config = ServerConfig(**cfg)
    quotas = quotas or QuotaBook()
    return Session(
        conn_id,
        "demo",
        "crypto",
        plan or Plan(),
        config,
        quotas.account("demo"),
        now=0.0,
        streams=CRYPTO.__contains__,
        trace_factory=lambda: "srv-trace",
    )


def req(code: int, data: Any = None, trace: str = "t1", **extra: Any) -> str:
    obj: dict[str, Any] = {"code": code, "trace": trace, **extra}
    if data is not None:
        obj["data"] = data
    return orjson.dumps(obj).decode()


def sent(actions: list[Any]) -> list[Any]:
    return [a.frame for a in actions if isinstance(a, Send)]


def test_open_sends_welcome_and_stock_banner() -> None:
    assert sent(make().open()) == [{"code": 200, "msg": "ws connect success"}]
    s = Session(1, "k", "stock", Plan(), ServerConfig(), QuotaBook().account("k"), 0.0)
    frames = sent(s.open())
    assert frames[0] == "You have permission to subscribe to all market data"
    assert frames[1]["code"] == 200


def test_subscribe_trades_acks_with_trace_and_subscribes() -> None:
    s = make()
    actions = s.receive(req(10000, {"codes": "BTCUSDT,ETHUSDT"}), 1.0)
    assert Subscribe(TRADE, frozenset({"BTCUSDT", "ETHUSDT"})) in actions
    assert sent(actions) == [{"code": 10001, "trace": "t1", "msg": "ok"}]


def test_symbol_of_other_business_is_acked_but_not_streamed() -> None:
    s = make()
    actions = s.receive(req(10003, {"codes": "AAPL.US"}), 1.0)
    assert sent(actions) == [{"code": 10004, "trace": "t1", "msg": "ok"}]
    assert not [a for a in actions if isinstance(a, Subscribe)]
    assert s.depth == {"AAPL.US"}


def test_kline_subscribe_several_entries_one_ack() -> None:
    s = make()
    arr = [{"type": 1, "codes": "BTCUSDT,ETHUSDT"}, {"type": 8, "codes": "BTCUSDT"}]
    actions = s.receive(req(10006, {"arr": arr}), 1.0)
    assert sent(actions) == [{"code": 10007, "trace": "t1", "msg": "ok"}]
    assert Subscribe(kline_channel(1), frozenset({"BTCUSDT", "ETHUSDT"})) in actions
    assert Subscribe(kline_channel(8), frozenset({"BTCUSDT"})) in actions


def test_second_subscribe_adds_by_default_and_replaces_when_configured() -> None:
    s = make()
    s.receive(req(10000, {"codes": "BTCUSDT"}), 1.0)
    s.receive(req(10000, {"codes": "ETHUSDT"}), 2.0)
    assert s.trades == {"BTCUSDT", "ETHUSDT"}
    r = make(subscribe_mode="replace")
    r.receive(req(10000, {"codes": "BTCUSDT"}), 1.0)
    actions = r.receive(req(10000, {"codes": "ETHUSDT"}), 2.0)
    assert r.trades == {"ETHUSDT"}
    assert Unsubscribe(TRADE, frozenset({"BTCUSDT"})) in actions


def test_unsubscribe_acks_11010_and_without_codes_cancels_all() -> None:
    s = make()
    s.receive(req(10000, {"codes": "BTCUSDT,ETHUSDT"}), 1.0)
    actions = s.receive(req(11000, {"codes": "BTCUSDT"}), 2.0)
    assert sent(actions) == [{"code": 11010, "trace": "t1", "msg": "ok"}]
    assert s.trades == {"ETHUSDT"}
    actions = s.receive(req(11000, trace="t2"), 3.0)
    assert s.trades == set()
    assert Unsubscribe(TRADE, frozenset({"ETHUSDT"})) in actions


def test_kline_unsubscribe_narrowed_by_types() -> None:
    s = make()
    arr = [{"type": t, "codes": "BTCUSDT"} for t in (1, 2, 4)]
    s.receive(req(10006, {"arr": arr}), 1.0)
    s.receive(req(11002, {"codes": "BTCUSDT", "klineTypes": "1,4"}), 2.0)
    assert set(s.klines) == {2}
    s.receive(req(11002, {}), 3.0)
    assert s.klines == {}


def test_unsubscribe_acks_can_be_turned_off_per_code() -> None:
    s = make(ack_unsubscribe=(11001,))
    assert sent(s.receive(req(11000, {"codes": "BTCUSDT"}), 1.0)) == []
    assert sent(s.receive(req(11001, {"codes": "BTCUSDT"}), 1.0))[0]["code"] == 11010


def test_heartbeat_no_reply_unless_ack_requested() -> None:
    s = make()
    assert s.receive(req(10010), 1.0) == []
    assert sent(s.receive(req(10010, ack=1), 2.0)) == [{"code": 10011, "trace": "t1", "msg": "ok"}]


def test_heartbeat_timeout_sends_513_then_closes() -> None:
    s = make(heartbeat_timeout=10.0)
    assert s.tick(9.9) == []
    s.receive(req(10010), 5.0)
    assert s.deadline() == 15.0
    assert s.tick(14.0) == []
    actions = s.tick(15.0)
    assert sent(actions) == [{"traceId": "srv-trace", "code": 513, "msg": "Websocket heartbeat timeout"}]
    assert isinstance(actions[-1], Close)
    assert s.closed and s.receive(req(10010), 16.0) == []


def test_only_heartbeats_reset_idle_timer_by_default() -> None:
    s = make(heartbeat_timeout=10.0)
    s.receive(req(10000, {"codes": "BTCUSDT"}), 8.0)
    assert sent(s.tick(10.0))[0]["code"] == 513
    t = make(heartbeat_timeout=10.0, idle_reset_on_any_frame=True)
    t.receive(req(10000, {"codes": "BTCUSDT"}), 8.0)
    assert t.tick(10.0) == []


@pytest.mark.parametrize(
    ("frame", "code", "msg"),
    [
        ("not json", 515, "Param error：The param is not JSON"),
        (b"\x00\x01", 515, None),
        (req(10000), 507, "Param lost：data"),
        (req(10000, {}), 507, "Param lost：codes"),
        (req(12345, {"codes": "BTCUSDT"}), 506, "Param error：The code is out of range"),
        (req(10000, {"codes": 5}), 506, None),
        ('{"trace": "t1"}', 507, "Param lost：code"),
        ("[1, 2]", 506, None),
    ],
)
def test_bad_requests_get_the_protocol_error(frame: str | bytes, code: int, msg: str | None) -> None:
    s = make()
    frames = sent(s.receive(frame, 1.0))
    assert len(frames) == 1
    err = frames[0]
    assert err["code"] == code and "data" not in err and "traceId" in err
    if msg is not None:
        assert err["msg"] == msg
    assert not s.closed


def test_error_echoes_trace_as_trace_id() -> None:
    s = make()
    (err,) = sent(s.receive(req(10000, trace="abc-1"), 1.0))
    assert err["traceId"] == "abc-1"


def test_rate_limit_counts_every_frame_then_501_and_close() -> None:
    s = make(plan=Plan(rate_limit=5), rate_window=60.0)
    for i in range(5):
        s.receive("garbage" if i % 2 else req(10010), float(i))
    actions = s.receive(req(10010), 5.0)
    (err,) = sent(actions)
    assert err["code"] == 501
    assert err["msg"] == "Request frequency exceed the limit：5 times per minute"
    assert isinstance(actions[-1], Close) and actions[-1].code == 1008


def test_rate_window_slides() -> None:
    w = SlidingWindow(3, 10.0)
    assert all(w.hit(t) for t in (0.0, 1.0, 2.0))
    assert not w.hit(9.0)
    assert w.hit(10.5)  # the hit at 0.0 has left the window


def test_product_limit_per_connection_505_leaves_state_unchanged() -> None:
    s = make(plan=Plan(max_products_per_connection=2))
    s.receive(req(10000, {"codes": "BTCUSDT"}), 1.0)
    # The same symbol on another channel counts once.
    assert sent(s.receive(req(10003, {"codes": "BTCUSDT,ETHUSDT"}), 2.0))[0]["code"] == 10004
    (err,) = sent(s.receive(req(10000, {"codes": "SOLUSDT"}), 3.0))
    assert err["code"] == 505 and err["msg"] == "Single WS subscribe exceeds the limit 2"
    assert s.trades == {"BTCUSDT"}


def test_product_limit_across_connections_of_a_key_516() -> None:
    quotas = QuotaBook()
    plan = Plan(max_products=3, max_products_per_connection=3)
    a = make(plan=plan, quotas=quotas, conn_id=1)
    b = make(plan=plan, quotas=quotas, conn_id=2)
    a.receive(req(10000, {"codes": "BTCUSDT,ETHUSDT"}), 1.0)
    (err,) = sent(b.receive(req(10000, {"codes": "BTCUSDT,SOLUSDT"}), 1.0))
    assert err["code"] == 516
    a.release()
    assert sent(b.receive(req(10000, {"codes": "BTCUSDT,SOLUSDT"}), 2.0))[0]["code"] == 10001


def test_too_many_codes_in_one_request_is_506() -> None:
    s = make(max_codes_per_request=10)
    codes = ",".join(f"S{i}" for i in range(11))
    (err,) = sent(s.receive(req(10000, {"codes": codes}), 1.0))
    assert err["code"] == 506


def test_depth_and_kline_limits_504_503() -> None:
    s = make(plan=Plan(max_depth_products=1, max_kline_subscriptions=2))
    assert sent(s.receive(req(10003, {"codes": "BTCUSDT,ETHUSDT"}), 1.0))[0]["code"] == 504
    arr = [{"type": 1, "codes": "BTCUSDT,ETHUSDT"}, {"type": 2, "codes": "BTCUSDT"}]
    assert sent(s.receive(req(10006, {"arr": arr}), 1.0))[0]["code"] == 503


def test_daily_request_limit_502() -> None:
    s = make(plan=Plan(daily_request_limit=2))
    s.receive(req(10010), 1.0)
    s.receive(req(10010), 2.0)
    assert sent(s.receive(req(10010), 3.0))[0]["code"] == 502


def test_extra_fields_are_accepted_and_ignored() -> None:
    s = make()
    frames = sent(s.receive(req(10000, {"codes": "BTCUSDT", "includeTy": True}), 1.0))
    assert frames == [{"code": 10001, "trace": "t1", "msg": "ok"}]


def test_channels_and_release_return_to_idle() -> None:
    quotas = QuotaBook()
    assert quotas.try_connect("demo", 1)
    s = make(quotas=quotas)
    s.receive(req(10000, {"codes": "BTCUSDT"}), 1.0)
    assert dict(s.channels())[TRADE] == {"BTCUSDT"}
    assert dict(s.channels())[DEPTH] == set()
    assert quotas.total_products() == 1
    s.release()
    quotas.disconnect("demo", 1)
    assert quotas.total_products() == 0 and quotas.total_connections() == 0


# -- issue 12: deafness lives in the session; unknown codes have their own arm ---------------------------


def test_deadline_is_infinite_while_reading_is_paused_and_restarts_on_resume() -> None:
    """A timer armed at deadline() must never find itself due with nothing to do: that spun a core."""
    s = make(heartbeat_timeout=5.0)
    assert s.deadline() == 5.0
    s.pause_reading(now=4.0)
    assert s.deadline() == float("inf")
    assert s.tick(now=100.0) == []  # deaf: the client could not be heard, so it is not timed out
    s.resume_reading(now=100.0)
    assert s.deadline() == 105.0  # a fresh heartbeat window from the moment we listen again
    assert s.tick(now=104.9) == []
    assert [a.frame["code"] for a in s.tick(now=105.0) if isinstance(a, Send)] == [513]


def test_deadline_is_infinite_once_closed() -> None:
    s = make(heartbeat_timeout=5.0)
    assert s.tick(now=5.0)  # 513 and close
    assert s.closed and s.deadline() == float("inf")
    assert s.tick(now=50.0) == []


def test_unknown_code_past_the_schema_gate_is_506_not_a_kline_unsubscribe(monkeypatch: Any) -> None:
    """Should the schema gate ever let an unknown code through, dispatch refuses it explicitly (it used
    to fall into the last branch and be handled as an 11002 kline unsubscribe, acked 11010)."""
    from infoway_mock import schemas

    monkeypatch.setattr(schemas, "validate_client_frame", lambda obj, fast=False, socket="ws": None)
    s = make()
    (frame,) = sent(s.receive(req(10042, {"codes": "BTCUSDT"}), now=1.0))
    assert frame["code"] == 506 and frame["msg"] == "Param error：The code is out of range"


def test_heartbeat_ack_inside_data_is_honoured() -> None:
    s = make()
    (frame,) = sent(s.receive(req(10010, {"ack": 1}, trace="hb"), now=1.0))
    assert frame == {"code": 10011, "trace": "hb", "msg": "ok"}


def test_requests_without_trace_are_counted() -> None:
    s = make()
    s.receive(orjson.dumps({"code": 10010}).decode(), now=1.0)
    s.receive(req(10010), now=2.0)
    assert s.requests_without_trace == 1


def test_include_ty_on_equity_trades_only() -> None:
    stock = Session(1, "demo", "stock", Plan(), ServerConfig(), QuotaBook().account("demo"), 0.0)
    out = stock.receive(req(10000, {"codes": "AAPL.US,TSLA.US", "includeTy": True}), now=1.0)
    ty = [a for a in out if isinstance(a, Subscribe) and a.channel == ("trade_ty", 0)]
    assert ty and ty[0].symbols == {"AAPL.US", "TSLA.US"}
    assert isinstance(out[-1], Send) and out[-1].frame["code"] == 10001  # the ack still comes last
    # A later subscribe without includeTy takes it away for the symbols it names; unsubscribe too.
    out = stock.receive(req(10000, {"codes": "TSLA.US"}), now=2.0)
    assert any(isinstance(a, Unsubscribe) and a.symbols == {"TSLA.US"} for a in out)
    out = stock.receive(req(11000, {"codes": "AAPL.US"}), now=3.0)
    assert any(isinstance(a, Unsubscribe) and a.channel == ("trade_ty", 0) for a in out)
    assert stock.with_ty == set()
    crypto = make()
    out = crypto.receive(req(10000, {"codes": "BTCUSDT", "includeTy": True}), now=1.0)
    assert not any(getattr(a, "channel", None) == ("trade_ty", 0) for a in out)  # crypto never sends ty
