"""Trading sessions: the tables in local time, daylight saving, lunch breaks, and the market obeying them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infoway_mock.mockserver.catalogue import Catalogue
from infoway_mock.mockserver.market import Market
from infoway_mock.mockserver.trading_hours import ALWAYS, SCHEDULES, check_mode


def ms(*args: int) -> int:
    """Epoch ms of a UTC wall time: ms(2026, 12, 1, 14, 30)."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


MIN = 60_000

# (schedule, UTC instant, open?) around each boundary; December is standard time, July daylight time.
CASES = [
    # US: 09:30-16:00 New York; 14:30 UTC in winter, 13:30 UTC in summer.
    ("US", ms(2026, 12, 1, 14, 29), False),
    ("US", ms(2026, 12, 1, 14, 30), True),
    ("US", ms(2026, 12, 1, 20, 59), True),
    ("US", ms(2026, 12, 1, 21, 0), False),
    ("US", ms(2026, 7, 1, 13, 29), False),
    ("US", ms(2026, 7, 1, 13, 30), True),
    ("US", ms(2026, 7, 1, 19, 59), True),
    ("US", ms(2026, 7, 1, 20, 0), False),
    ("US", ms(2026, 12, 5, 15, 0), False),  # Saturday
    # HK: 09:30-12:00, 13:00-16:00 (UTC+8): lunch 04:00-05:00 UTC.
    ("HK", ms(2026, 12, 1, 1, 30), True),
    ("HK", ms(2026, 12, 1, 3, 59), True),
    ("HK", ms(2026, 12, 1, 4, 0), False),
    ("HK", ms(2026, 12, 1, 4, 59), False),
    ("HK", ms(2026, 12, 1, 5, 0), True),
    ("HK", ms(2026, 12, 1, 8, 0), False),
    # CN: 09:30-11:30, 13:00-15:00 (UTC+8).
    ("CN", ms(2026, 12, 1, 3, 29), True),
    ("CN", ms(2026, 12, 1, 3, 30), False),
    ("CN", ms(2026, 12, 1, 5, 0), True),
    ("CN", ms(2026, 12, 1, 7, 0), False),
    # JP: 09:00-11:30, 12:30-15:30 (UTC+9).
    ("JP", ms(2026, 12, 1, 0, 0), True),
    ("JP", ms(2026, 12, 1, 2, 30), False),
    ("JP", ms(2026, 12, 1, 3, 30), True),
    ("JP", ms(2026, 12, 1, 6, 29), True),
    ("JP", ms(2026, 12, 1, 6, 30), False),
    # KS: 09:00-15:30 (UTC+9), no lunch break.
    ("KS", ms(2026, 12, 1, 3, 0), True),
    ("KS", ms(2026, 12, 1, 6, 30), False),
    # IN: 09:15-15:30 (UTC+5:30): 03:45-10:00 UTC.
    ("IN", ms(2026, 12, 1, 3, 44), False),
    ("IN", ms(2026, 12, 1, 3, 45), True),
    ("IN", ms(2026, 12, 1, 9, 59), True),
    ("IN", ms(2026, 12, 1, 10, 0), False),
    # TW: 09:00-13:30 (UTC+8).
    ("TW", ms(2026, 12, 1, 1, 0), True),
    ("TW", ms(2026, 12, 1, 5, 29), True),
    ("TW", ms(2026, 12, 1, 5, 30), False),
    # FOREX: Sunday 17:00 to Friday 17:00 New York, no daily break.
    ("FOREX", ms(2026, 12, 4, 21, 59), True),  # Friday 16:59 EST
    ("FOREX", ms(2026, 12, 4, 22, 0), False),
    ("FOREX", ms(2026, 12, 6, 21, 59), False),  # Sunday 16:59 EST
    ("FOREX", ms(2026, 12, 6, 22, 0), True),
    ("FOREX", ms(2026, 12, 1, 22, 30), True),  # Tuesday 17:30: no break
    # CFD: Sunday 18:00 to Friday 17:00 New York, daily break 17:00-18:00.
    ("CFD", ms(2026, 12, 1, 22, 0), False),
    ("CFD", ms(2026, 12, 1, 22, 59), False),
    ("CFD", ms(2026, 12, 1, 23, 0), True),
    ("CFD", ms(2026, 12, 6, 22, 30), False),  # Sunday 17:30
    ("CFD", ms(2026, 12, 6, 23, 0), True),
    ("CFD", ms(2026, 7, 1, 21, 0), False),  # summer: the break is 21:00-22:00 UTC
    ("CFD", ms(2026, 7, 1, 22, 0), True),
    # CRYPTO: always.
    ("CRYPTO", ms(2026, 12, 5, 3, 0), True),
]


@pytest.mark.parametrize(("name", "at", "is_open"), CASES)
def test_session_boundaries(name: str, at: int, is_open: bool) -> None:
    assert SCHEDULES[name].is_open(at) is is_open


def test_state_at_names_the_next_change() -> None:
    us = SCHEDULES["US"]
    assert us.state_at(ms(2026, 12, 4, 21, 0)) == (False, ms(2026, 12, 7, 14, 30))  # Friday close -> Monday
    assert us.state_at(ms(2026, 12, 7, 15, 0)) == (True, ms(2026, 12, 7, 21, 0))
    hk = SCHEDULES["HK"]
    assert hk.state_at(ms(2026, 12, 1, 4, 30)) == (False, ms(2026, 12, 1, 5, 0))  # lunch ends at 13:00
    # Sunday's evening session and Monday's run on as one session across midnight.
    assert SCHEDULES["FOREX"].state_at(ms(2026, 12, 6, 23, 0)) == (True, ms(2026, 12, 11, 22, 0))
    assert SCHEDULES["CRYPTO"].state_at(0)[0] is True
    assert ALWAYS.is_open(ms(2026, 12, 5, 3, 0))
    assert us.last_close(ms(2026, 12, 5, 12, 0)) == ms(2026, 12, 4, 21, 0)
    assert us.last_close(ms(2026, 12, 4, 15, 0)) is None  # open then
    assert us.next_open(ms(2026, 12, 5, 12, 0)) == ms(2026, 12, 7, 14, 30)


def test_mode_is_checked() -> None:
    assert check_mode("real") == "real"
    with pytest.raises(ValueError, match="market_hours must be one of always, real"):
        check_mode("sometimes")
    with pytest.raises(ValueError):
        Market(1, Catalogue.default().only(["BTCUSDT"]), start_ms=0, market_hours="never")


# -- the market obeys the sessions ---------------------------------------------------------------------


def market(mode: str, start: int, symbols: list[str] | None = None, rate: float = 2.0) -> Market:
    cat = Catalogue.default()
    return Market(
        5, cat.only(symbols) if symbols else cat, start_ms=start, trade_rate=rate, market_hours=mode
    )


def test_closed_symbols_do_not_trade_over_a_weekend() -> None:
    sat = ms(2026, 12, 5, 12, 0)
    m = market("real", sat, ["AAPL.US", "BTCUSDT", "EURUSD"])
    trades = m.advance(sat + 3_600_000)
    assert {t["s"] for t in trades} == {"BTCUSDT"}
    assert not m.is_open("AAPL.US", sat) and m.is_open("BTCUSDT", sat) and not m.is_open("EURUSD", sat)
    assert not m.is_open("NOPE", sat)
    # The default, "always", streams everything whatever the time: CI never depends on the clock.
    always = market("always", sat, ["AAPL.US", "BTCUSDT", "EURUSD"])
    assert {t["s"] for t in always.advance(sat + 60_000)} == {"AAPL.US", "BTCUSDT", "EURUSD"}
    assert always.is_open("AAPL.US", sat)


def test_walk_pauses_over_the_lunch_break_and_resumes() -> None:
    start = ms(2026, 12, 1, 3, 50)  # HK 11:50
    m = market("real", start, ["00700.HK"])
    before = m.advance(ms(2026, 12, 1, 4, 0))
    assert before and max(t["t"] for t in before) < ms(2026, 12, 1, 4, 0)
    last = m.last_trade("00700.HK")
    assert m.advance(ms(2026, 12, 1, 4, 59, 59)) == []  # lunch: silent
    assert not m.is_open("00700.HK", ms(2026, 12, 1, 4, 30))
    assert m.last_trade("00700.HK") is last
    after = m.advance(ms(2026, 12, 1, 5, 10))
    assert after and min(t["t"] for t in after) >= ms(2026, 12, 1, 5, 0)
    assert m.is_open("00700.HK", ms(2026, 12, 1, 5, 1))


def test_every_trade_falls_in_a_session_for_a_week() -> None:
    start = ms(2026, 11, 30, 0, 0)  # Monday 00:00 UTC
    cat = Catalogue.default()
    m = market("real", start, rate=0.001)
    trades = m.advance(start + 7 * 86_400_000)
    seen = {t["s"] for t in trades}
    assert seen == {i.symbol for i in cat.all()}  # every market opened at least once
    for t in trades:
        assert cat.get(t["s"]).schedule.is_open(t["t"]), t


def test_session_stream_does_not_depend_on_how_often_advance_is_called() -> None:
    start = ms(2026, 12, 4, 20, 0)  # Friday: US and FX close, the weekend, Monday's opens
    symbols = ["AAPL.US", "EURUSD", "XAUUSD", "00700.HK", "BTCUSDT"]
    one = market("real", start, symbols, rate=0.005).advance(start + 4 * 86_400_000)
    stepped = market("real", start, symbols, rate=0.005)
    many = []
    t = start
    while t < start + 4 * 86_400_000:
        t += 7 * MIN + 13
        many += stepped.advance(min(t, start + 4 * 86_400_000))
    assert many == one and len(one) > 1000


def test_opening_trade_when_the_market_starts_closed() -> None:
    sat = ms(2026, 12, 5, 12, 0)
    m = market("real", sat)
    aapl = m.last_trade("AAPL.US")
    assert aapl is not None and aapl["t"] == ms(2026, 12, 4, 21, 0) - 1  # Friday's close, 16:00 New York
    assert aapl["td"] == 0
    assert m.last_trade("BTCUSDT")["t"] == sat  # crypto never closes


def test_market_hours_setting(tmp_path) -> None:
    from infoway_mock.mockserver.config import ServerConfig, load_config
    from infoway_mock.schemas import ContractError

    assert ServerConfig().market_hours == "always"  # CI runs never depend on the time of day
    good = tmp_path / "real.yaml"
    good.write_text("server:\n  market_hours: real\n", encoding="utf-8")
    assert load_config(good).market_hours == "real"
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  market_hours: sometimes\n", encoding="utf-8")
    with pytest.raises(ContractError, match="market_hours"):
        load_config(bad)
