"""Trading sessions per market: when a symbol trades, as a pure function of market time (epoch ms).

Live, a closed market acks a subscription and then stays silent until it opens. The mock models that
with weekly session tables in each market's own time zone (zoneinfo, so daylight saving is right; the
`tzdata` package supplies the zone data where the system has none). Sessions only: exchange holidays,
auctions and pre/post-market trading are not modelled.

The hours and their sources (regular continuous sessions, local time, Monday to Friday unless noted):

| schedule | zone | sessions | source |
|---|---|---|---|
| US | America/New_York | 09:30-16:00 | NYSE "Hours & Calendars" (nyse.com/markets/hours-calendars) |
| HK | Asia/Hong_Kong | 09:30-12:00, 13:00-16:00 | HKEX "Trading Hours" (hkex.com.hk, securities market) |
| CN | Asia/Shanghai | 09:30-11:30, 13:00-15:00 | SSE / SZSE trading rules (continuous auction) |
| JP | Asia/Tokyo | 09:00-11:30, 12:30-15:30 | JPX "Trading Hours" (close moved to 15:30 on 2024-11-05) |
| KS | Asia/Seoul | 09:00-15:30 | KRX "Trading Hours" (regular session, no lunch break) |
| IN | Asia/Kolkata | 09:15-15:30 | NSE "Market Timings" (normal market, no lunch break) |
| TW | Asia/Taipei | 09:00-13:30 | TWSE "Trading Hours" (no lunch break) |
| FOREX | America/New_York | Sun 17:00 - Fri 17:00, continuous | the interbank week (retail FX brokers) |
| CFD | America/New_York | Sun 18:00 - Fri 17:00, break 17-18 daily | CME Globex (metals, energy, indices) |
| CRYPTO | UTC | always | crypto venues never close |

FOREX and CFD are the mock's choice for the vendor's `common` business (forex, metals, energy, futures and
index CFDs: "nearly 24/5"); the vendor does not publish them. A symbol may name another schedule in the
catalogue (the CSI 300 future IF2401.CFE follows CN).

`market_hours` (server setting): "always" (the default) streams every symbol 24/7, so CI runs never
depend on the time of day; "real" applies these tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

MARKET_HOURS_MODES = ("always", "real")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAYS = range(5)
_LOOKAROUND_DAYS = 10  # longer than any closed stretch of any schedule (a weekend plus a day)


@dataclass(frozen=True, eq=False)  # identity hash: schedules are singletons and key a hot cache
class Schedule:
    """A weekly session table: (weekday 0=Mon, open minute, close minute) in local time, close <= 1440.

    Sessions that touch across midnight (Sun 18:00-24:00, Mon 00:00-17:00) are one session in time."""

    name: str
    timezone: str
    weekly: tuple[tuple[int, int, int], ...]
    summary: str
    source: str
    always: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def state_at(self, ms: int) -> tuple[bool, float]:
        """(open at ms, the epoch ms at which that changes); math.inf when it never does."""
        if self.always:
            return True, math.inf
        intervals = self._intervals(ms)
        for start, end in intervals:
            if start <= ms < end:
                return True, end
            if start > ms:
                return False, start
        return False, math.inf

    def is_open(self, ms: int) -> bool:
        return self.state_at(ms)[0]

    def next_open(self, ms: int) -> float:
        """ms itself when open at ms, else the next opening (math.inf if it never opens)."""
        is_open, change = self.state_at(ms)
        return ms if is_open else change

    def last_close(self, ms: int) -> float | None:
        """The end of the last session that closed at or before ms (None if open at ms or never closed)."""
        if self.always:
            return None
        last = None
        for start, end in self._intervals(ms):
            if start <= ms < end:
                return None
            if end <= ms:
                last = end
        return last

    def sessions_on(self, day: date) -> list[tuple[int, int]]:
        """(open minute, close minute) of the sessions that start on a local calendar day."""
        if self.always:
            return [(0, 1440)]
        return [(o, c) for wd, o, c in self.weekly if wd == day.weekday()]

    def is_trading_day(self, day: date) -> bool:
        return bool(self.sessions_on(day))

    def rows(self) -> list[dict[str, str]]:
        """The weekly sessions as JSON rows, merged across midnight: {"open": "Sun 18:00", "close": ...}."""
        if self.always:
            return [{"open": "Mon 00:00", "close": "Sun 24:00"}]
        merged: list[list[int]] = []
        for wd, o, c in sorted(self.weekly):
            a, b = wd * 1440 + o, wd * 1440 + c
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        if len(merged) > 1 and merged[-1][1] == 7 * 1440 and merged[0][0] == 0:
            merged[0][0] = merged.pop()[0] - 7 * 1440  # Sun evening runs on into Monday
        return [{"open": _week_minute(a), "close": _week_minute(b)} for a, b in merged]

    def _intervals(self, ms: int) -> list[tuple[int, int]]:
        """Sessions around ms as epoch-ms intervals, in time order, touching ones merged."""
        return _intervals(self, ms // 86_400_000)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=512)
def _intervals(schedule: Schedule, epoch_day: int) -> list[tuple[int, int]]:
    # Cached per UTC day (bounded): a pump asks about the same few days over and over.
    zone = schedule.zone
    centre = datetime.fromtimestamp(epoch_day * 86_400, UTC).astimezone(zone).date()
    out: list[tuple[int, int]] = []
    for offset in range(-_LOOKAROUND_DAYS, _LOOKAROUND_DAYS + 1):
        day = centre + timedelta(days=offset)
        for o, c in schedule.sessions_on(day):
            start, end = _local_ms(day, o, zone), _local_ms(day, c, zone)
            if out and out[-1][1] >= start:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
    return out


def _local_ms(day: date, minute: int, zone: ZoneInfo) -> int:
    if minute >= 1440:
        day, minute = day + timedelta(days=minute // 1440), minute % 1440
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    return int(local.timestamp() * 1000)


def _week_minute(m: int) -> str:
    m %= 7 * 1440
    return f"{_DAYS[m // 1440]} {m % 1440 // 60:02d}:{m % 60:02d}"


def _hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def _weekdays(*sessions: str) -> tuple[tuple[int, int, int], ...]:
    """Mon-Fri sessions given as "09:30-12:00"."""
    out = []
    for wd in _WEEKDAYS:
        for s in sessions:
            o, c = s.split("-")
            out.append((wd, _hm(o), _hm(c)))
    return tuple(out)


def _week(
    open_sun: str, close_fri: str, daily_break: tuple[str, str] | None
) -> tuple[tuple[int, int, int], ...]:
    """Sunday open to Friday close, optionally with a break every weekday (close at the break's start)."""
    o, c = _hm(open_sun), _hm(close_fri)
    out = [(6, o, 1440)]  # Sunday evening
    for wd in _WEEKDAYS:
        if daily_break is None:
            out.append((wd, 0, 1440) if wd < 4 else (wd, 0, c))
        else:
            b0, b1 = _hm(daily_break[0]), _hm(daily_break[1])
            out.append((wd, 0, b0 if wd < 4 else c))
            if wd < 4:
                out.append((wd, b1, 1440))
    return tuple(sorted(out))


SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule("US", "America/New_York", _weekdays("09:30-16:00"), "Mon-Fri 09:30-16:00", "nyse.com"),
        Schedule(
            "HK",
            "Asia/Hong_Kong",
            _weekdays("09:30-12:00", "13:00-16:00"),
            "Mon-Fri 09:30-12:00, 13:00-16:00",
            "hkex.com.hk",
        ),
        Schedule(
            "CN",
            "Asia/Shanghai",
            _weekdays("09:30-11:30", "13:00-15:00"),
            "Mon-Fri 09:30-11:30, 13:00-15:00",
            "sse.com.cn, szse.cn",
        ),
        Schedule(
            "JP",
            "Asia/Tokyo",
            _weekdays("09:00-11:30", "12:30-15:30"),
            "Mon-Fri 09:00-11:30, 12:30-15:30",
            "jpx.co.jp",
        ),
        Schedule("KS", "Asia/Seoul", _weekdays("09:00-15:30"), "Mon-Fri 09:00-15:30", "global.krx.co.kr"),
        Schedule("IN", "Asia/Kolkata", _weekdays("09:15-15:30"), "Mon-Fri 09:15-15:30", "nseindia.com"),
        Schedule("TW", "Asia/Taipei", _weekdays("09:00-13:30"), "Mon-Fri 09:00-13:30", "twse.com.tw"),
        Schedule(
            "FOREX",
            "America/New_York",
            _week("17:00", "17:00", None),
            "Sun 17:00 - Fri 17:00",
            "mock's choice (the interbank week)",
        ),
        Schedule(
            "CFD",
            "America/New_York",
            _week("18:00", "17:00", ("17:00", "18:00")),
            "Sun 18:00 - Fri 17:00, daily break 17:00-18:00",
            "mock's choice (CME Globex hours)",
        ),
        Schedule("CRYPTO", "UTC", (), "24/7", "crypto venues never close", always=True),
    )
}
ALWAYS = Schedule("ALWAYS", "UTC", (), "24/7 (market_hours: always)", "mock setting", always=True)

#: The schedule a symbol type follows unless its instrument names another.
SCHEDULE_FOR_TYPE: dict[str, str] = {
    "STOCK_US": "US",
    "STOCK_HK": "HK",
    "STOCK_CN": "CN",
    "STOCK_JP": "JP",
    "STOCK_KS": "KS",
    "STOCK_IN": "IN",
    "STOCK_TW": "TW",
    "CRYPTO": "CRYPTO",
    "FOREX": "FOREX",
    "METAL": "CFD",
    "ENERGY": "CFD",
    "FUTURES": "CFD",
    "INDICES": "CFD",
}


def schedule_named(name: str) -> Schedule:
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(
            f"unknown trading schedule {name!r}; expected one of {', '.join(SCHEDULES)}"
        ) from None


def check_mode(mode: str) -> str:
    if mode not in MARKET_HOURS_MODES:
        raise ValueError(f"market_hours must be one of {', '.join(MARKET_HOURS_MODES)}, not {mode!r}")
    return mode


__all__ = [
    "ALWAYS",
    "MARKET_HOURS_MODES",
    "SCHEDULES",
    "SCHEDULE_FOR_TYPE",
    "Schedule",
    "check_mode",
    "schedule_named",
]
