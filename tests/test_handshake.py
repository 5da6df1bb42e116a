"""The handshake decisions, sans I/O: path, query, headers, peer and time in, a verdict out."""

from __future__ import annotations

from typing import Any

import pytest

from infoway_mock.mockserver.catalogue import BUSINESSES
from infoway_mock.mockserver.config import Plan, ServerConfig
from infoway_mock.mockserver.handshake import Accept, Gate, Refusals, Refuse, Upgrade
from infoway_mock.mockserver.limits import QuotaBook


def gate(**cfg: Any) -> Gate:
    config = ServerConfig(**cfg)
    return Gate(config, QuotaBook(), Refusals(), "tok3n-secret", BUSINESSES)


def up(
    path: str = "/ws", peer: str = "127.0.0.1", headers: dict[str, str] | None = None, **query: str
) -> Upgrade:
    return Upgrade(path, query, headers or {}, peer)


def test_accepts_a_known_key_on_a_known_business_and_takes_a_slot() -> None:
    g = gate()
    verdict = g.decide(up(business="crypto", apikey="demo"), now=0.0)
    assert verdict == Accept("ws", "demo", "crypto", slot_held=True)
    assert g.quotas.connections("demo") == 1


@pytest.mark.parametrize(
    ("upgrade", "status"),
    [
        (up(business="crypto"), 401),
        (up(business="crypto", apikey="nope"), 401),
        (up("/nowhere", business="crypto", apikey="demo"), 404),
        (up("/control"), 401),
        (up("/control", peer="10.0.0.7", token="tok3n-secret"), 403),
    ],
)
def test_refusals(upgrade: Upgrade, status: int) -> None:
    verdict = gate().decide(upgrade, now=0.0)
    assert isinstance(verdict, Refuse) and verdict.status == status


def test_401_carries_the_www_authenticate_header() -> None:
    verdict = gate().decide(up(business="crypto"), now=0.0)
    assert isinstance(verdict, Refuse) and ("WWW-Authenticate", 'apikey realm="key"') in verdict.headers


def test_key_in_header_or_camel_case_query() -> None:
    g = gate()
    assert isinstance(g.decide(up(headers={"apikey": "demo"}, business="crypto"), 0.0), Accept)
    assert isinstance(g.decide(up(business="crypto", apiKey="demo"), 0.0), Accept)


def test_unknown_business_and_banned_key_are_accepted_then_told_by_a_frame() -> None:
    g = gate()
    g.config.banned_keys = frozenset({"demo"})
    assert g.decide(up(business="forex", apikey="demo"), 0.0).error[0] == 514  # type: ignore[union-attr]
    banned = g.decide(up(business="crypto", apikey="demo"), 0.0)
    assert isinstance(banned, Accept) and banned.error is not None and banned.error[0] == 511
    assert g.quotas.connections("demo") == 0  # neither took a slot


def test_connection_quota_427_and_release() -> None:
    g = gate()
    g.config.plans["pro"] = Plan(max_connections=2)
    assert isinstance(g.decide(up(business="crypto", apikey="demo"), 0.0), Accept)
    assert isinstance(g.decide(up(business="crypto", apikey="demo"), 0.0), Accept)
    verdict = g.decide(up(business="crypto", apikey="demo"), 0.0)
    assert isinstance(verdict, Refuse) and verdict.status == 427
    g.quotas.disconnect("demo", 1)
    assert isinstance(g.decide(up(business="crypto", apikey="demo"), 0.0), Accept)


def test_refusal_faults_by_key_expire_with_time() -> None:
    g = gate(keys={"demo": "pro", "other": "pro"})
    g.refusals.add(1, 503, "demo", until=10.0)
    refused = g.decide(up(business="crypto", apikey="demo"), now=5.0)
    assert isinstance(refused, Refuse) and refused.status == 503
    assert isinstance(g.decide(up(business="crypto", apikey="other"), now=5.0), Accept)
    assert isinstance(g.decide(up(business="crypto", apikey="demo"), now=10.0), Accept)
    assert g.refusals.ids() == []


def test_control_with_token_from_loopback_only() -> None:
    g = gate()
    assert g.decide(up("/control", token="tok3n-secret"), 0.0) == Accept("control")
    bearer = up("/control", headers={"authorization": "Bearer tok3n-secret"}, peer="::1")
    assert g.decide(bearer, 0.0) == Accept("control")


def test_news_socket_one_per_key_and_needs_the_entitlement() -> None:
    g = gate(keys={"demo": "pro", "cheap": "free"})
    assert g.decide(up("/news", apikey="demo"), 0.0) == Accept("news", "demo", slot_held=True)
    second = g.decide(up("/news", apikey="demo"), 0.0)
    assert isinstance(second, Accept) and second.error is not None and second.error[0] == 520
    refused = g.decide(up("/news", apikey="cheap"), 0.0)
    assert isinstance(refused, Refuse) and refused.status == 401
