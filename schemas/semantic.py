"""Rules JSON Schema cannot say, as named checks reporting in the same shape as schema violations."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import Violation

CHECKS = (
    "book-not-crossed",
    "asks-ascending",
    "bids-descending",
    "levels-equal-length",
    "ohlc-consistent",
    "turnover-matches",
)


def _dec(s: Any) -> Decimal | None:
    try:
        return Decimal(s)
    except (InvalidOperation, TypeError, ValueError):
        return None


def check_depth(data: dict[str, Any], path: str = "$.data") -> list[Violation]:
    out: list[Violation] = []
    sides = {}
    for side, order in (("a", "asks-ascending"), ("b", "bids-descending")):
        cols = data.get(side)
        if not (isinstance(cols, list) and len(cols) == 2):
            continue
        prices, vols = cols
        if len(prices) != len(vols):
            out.append(
                Violation(
                    f"{path}.{side}",
                    cols,
                    "levels-equal-length",
                    f"{len(prices)} prices but {len(vols)} volumes",
                )
            )
        ps = [_dec(p) for p in prices]
        if None in ps:
            continue
        sides[side] = ps
        for i in range(1, len(ps)):
            bad = ps[i] <= ps[i - 1] if side == "a" else ps[i] >= ps[i - 1]
            if bad:
                word = "ascending" if side == "a" else "descending"
                out.append(
                    Violation(
                        f"{path}.{side}[0][{i}]",
                        prices[i],
                        order,
                        f"{prices[i]} after {prices[i - 1]}: not strictly {word}",
                    )
                )
                break
    if sides.get("a") and sides.get("b") and sides["b"][0] >= sides["a"][0]:
        out.append(
            Violation(
                f"{path}.b[0][0]",
                data["b"][0][0],
                "book-not-crossed",
                f"best bid {data['b'][0][0]} is not below best ask {data['a'][0][0]}",
            )
        )
    return out


def check_ohlc(bar: dict[str, Any], path: str = "$.data") -> list[Violation]:
    o, h, lo, c = (_dec(bar.get(k)) for k in ("o", "h", "l", "c"))
    if None in (o, h, lo, c):
        return []
    if not (lo <= o <= h and lo <= c <= h and lo <= h):  # type: ignore[operator]
        return [
            Violation(
                path,
                {k: bar.get(k) for k in "ohlc"},
                "ohlc-consistent",
                f"need l <= o,c <= h; got o={bar['o']} h={bar['h']} l={bar['l']} c={bar['c']}",
            )
        ]
    return []


def check_turnover(trade: dict[str, Any], path: str = "$.data") -> list[Violation]:
    try:
        p, v, vw_s = float(trade["p"]), float(trade["v"]), trade["vw"]
        vw = float(vw_s)
    except (KeyError, TypeError, ValueError):
        return []
    # One unit in the last place vw was printed with, plus float slack: exact enough, and ~5x cheaper
    # than Decimal on the strict-mode hot path.
    dot = vw_s.find(".")
    unit = 10.0 ** -(len(vw_s) - dot - 1) if dot >= 0 else 1.0
    if abs(p * v - vw) > unit + abs(vw) * 1e-12:
        expected = Decimal(trade["p"]) * Decimal(trade["v"])
        return [
            Violation(
                f"{path}.vw", vw_s, "turnover-matches", f"vw {vw_s} is not p*v = {expected.normalize()}"
            )
        ]
    return []


RULES = {10005: check_depth, 10008: check_ohlc, 10002: check_turnover}


def check(frame: dict[str, Any]) -> list[Violation]:
    """Semantic violations of one server frame (none for frames without such rules)."""
    code = frame.get("code")
    data = frame.get("data")
    if not isinstance(data, dict):
        return []
    if code == 10005:
        return check_depth(data)
    if code == 10008:
        return check_ohlc(data)
    if code == 10002:
        return check_turnover(data)
    return []
