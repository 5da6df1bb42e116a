"""The conformance runner (issue 16): the mock's own acceptance test, a differing mock, and live parity.

The live service is not reachable from here: the runner and the parity marker are pointed at second mocks
on other ports, one of them configured to differ from what the mock encodes by default.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from infoway_mock.mockserver import cli
from infoway_mock.mockserver.conformance import FAIL, PASS, SKIP, Options, Pacer, Target, run
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]

# What the mock serves in the suite: short timings so that the destructive probes finish in seconds.
FAST = {"heartbeat_timeout": 1.0, "max_connections": 3}


def fast_options(**overrides: Any) -> Options:
    opts = Options(
        push_seconds=2.0,
        quiet_seconds=0.5,
        settle_seconds=0.2,
        reply_timeout=3.0,
        heartbeat_interval=0.3,  # well inside the 1 s heartbeat timeout of FAST
        heartbeat_timeout=1.0,
        max_connections=3,
    )
    for name, value in overrides.items():
        setattr(opts, name, value)
    return opts


def target_of(srv: Any, key: str = "demo") -> Target:
    return Target.parse(f"ws://127.0.0.1:{srv.port}", key)


def verdicts(report: Any) -> dict[str, str]:
    return {r.check: r.verdict for r in report.results}


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The installed command in a subprocess, while the mock keeps serving on this test's loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infoway_mock.mockserver",
        "conformance",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_pacer_holds_any_window_to_the_budget() -> None:
    p = Pacer(3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert p.delay(t) == 0.0
        p.record(t)
    assert p.delay(30.0) == pytest.approx(30.0)  # the 4th waits until the 1st leaves the window
    assert p.delay(60.0) == 0.0
    p.record(60.0)
    assert p.delay(60.5) == pytest.approx(0.5)
    assert (p.total, p.peak) == (4, 3)
    with pytest.raises(ValueError):
        Pacer(0)


@pytest.mark.parametrize(
    ("url", "rest", "ws"),
    [
        ("wss://data.infoway.io", None, "wss://data.infoway.io/ws?business=crypto&apikey=k%26y"),
        (
            "https://data.infoway.io/ws?business=x",
            None,
            "wss://data.infoway.io/ws?business=crypto&apikey=k%26y",
        ),
        (
            "ws://127.0.0.1:8765/",
            "http://127.0.0.1:8765",
            "ws://127.0.0.1:8765/ws?business=crypto&apikey=k%26y",
        ),
        (
            "ws://127.0.0.1:9/gw/ws",
            "http://127.0.0.1:9",
            "ws://127.0.0.1:9/gw/ws?business=crypto&apikey=k%26y",
        ),
    ],
)
def test_target_urls(url: str, rest: str | None, ws: str) -> None:
    t = Target.parse(url, "k&y")
    assert t.ws_url("crypto") == ws
    assert t.http_url == (rest or "https://data.infoway.io")
    assert t.ws_url("stock", key=None) == ws.split("?")[0] + "?business=stock"
    assert "k&y" not in json.dumps(t.describe())


@pytest.mark.parametrize("url", ["data.infoway.io", "ftp://x", "wss://"])
def test_target_refuses_what_is_not_a_server_url(url: str) -> None:
    with pytest.raises(ValueError, match="not a server URL"):
        Target.parse(url, "k")


async def test_safe_run_against_the_mock_passes_inside_the_live_limits(make_server: Any) -> None:
    """The acceptance run: the mock at its default timings, the runner at its defaults (as for live)."""
    srv = await make_server(heartbeat_timeout=60.0, depth_interval=0.1, kline_interval=1.0, trade_rate=2.0)
    report = await run(target_of(srv), Options())
    failed = [r for r in report.results if r.verdict != PASS]
    assert failed == [], report.table()
    assert len(report.results) >= 35
    assert report.duration_s < 60
    assert report.frames_sent <= 30 and report.peak_frames_per_minute <= 30 and report.probe_frames == 0
    # The mock's contract report, judged on its own records, confirms how the runner behaved.
    await wait_until(lambda: srv.counters()["quota_connections"] == 0)
    (client,) = srv.report()["clients"]
    assert client["rules"]["request_rate"]["verdict"] == PASS
    assert client["rules"]["heartbeat"]["verdict"] == PASS
    assert client["rules"]["limits"]["verdict"] == PASS
    # The three malformed frames are the runner's error probes, and nothing else was refused.
    assert "3 invalid frame(s)" in client["rules"]["valid_frames"]["detail"]
    conns = client["connections"]
    assert len(conns) == 3  # one at a time: the stock banner, the apiKey header, the stream
    assert sum(c["frames_received"] for c in conns) <= 30  # the whole run is well inside one minute
    assert all(c["closed"] is not None and c["close_code"] == 1000 for c in conns)


async def test_destructive_run_against_the_mock_passes(make_server: Any) -> None:
    srv = await make_server(**FAST)
    report = await run(target_of(srv), fast_options(destructive=True))
    assert [r for r in report.results if r.verdict != PASS] == [], report.table()
    got = verdicts(report)
    for check in (
        "limit.rate_501",
        "limit.rate_501_close",
        "limit.heartbeat_513",
        "limit.heartbeat_513_close",
        "limit.connections_427",
    ):
        assert got[check] == PASS
    assert report.probe_frames == 61  # the rate probe's frames are its own, outside the safe budget
    assert srv.metrics.errors_sent[501] == 1 and srv.metrics.errors_sent[513] == 1


async def test_a_differing_mock_shows_each_difference_and_exits_1(make_server: Any, tmp_path: Path) -> None:
    srv = await make_server(**FAST, error_close_code=4000, subscribe_mode="replace")
    out_json = tmp_path / "conformance.json"
    code, out, err = await run_cli(
        "--url",
        f"ws://127.0.0.1:{srv.port}",
        "--api-key",
        "demo",
        "--destructive",
        "--push-seconds",
        "2",
        "--quiet-seconds",
        "0.5",
        "--settle-seconds",
        "0.2",
        "--heartbeat-interval",
        "0.3",
        "--heartbeat-timeout",
        "1",
        "--max-connections",
        "3",
        "--json",
        str(out_json),
    )
    assert code == 1, out + err
    doc = json.loads(out_json.read_text(encoding="utf-8"))
    failed = {r["check"]: r for r in doc["results"] if r["verdict"] == FAIL}
    assert set(failed) == {"subscribe.second_adds", "limit.rate_501_close", "limit.heartbeat_513_close"}
    assert "replaces" in failed["subscribe.second_adds"]["observed"]
    assert "4000" in failed["limit.heartbeat_513_close"]["observed"]
    assert all(r["source"] == "our choice" for r in failed.values())  # each one an OPEN item we guessed
    assert doc["verdict"] == FAIL and doc["counts"]["fail"] == 3
    # The table says the same, one row per check, and explains what a FAIL of that source means.
    for check in failed:
        assert re.search(rf"^{re.escape(check)} .* FAIL +our choice$", out, re.M), out
    assert "our choice: an OPEN or undocumented item" in out
    assert "verdict: FAIL" in out


async def test_a_server_that_drops_the_stream_midway_gets_verdicts_not_a_crash(make_server: Any) -> None:
    srv = await make_server(rate_limit=8)  # the stream's 9th frame gets 501 and the connection closes
    report = await run(target_of(srv), fast_options(rest=False))
    got = verdicts(report)
    assert not [c for c in got if c.startswith("runner.")], report.table()
    assert got["error.connection_survives"] == FAIL
    assert got["unsubscribe.trade"] == got["unsubscribe.silence"] == got["heartbeat.no_ack"] == SKIP
    row = next(r for r in report.results if r.check == "unsubscribe.trade")
    assert "closed by the server with code 1008" in row.observed
    assert report.verdict == FAIL


def test_unreachable_server_and_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    assert cli.main(["conformance", "--url", f"ws://127.0.0.1:{port}", "--api-key", "k"]) == 2
    assert f"cannot reach 127.0.0.1:{port}" in capsys.readouterr().err
    env_free = ["conformance", "--url", "ws://127.0.0.1:1"]
    monkeypatch.delenv("INFOWAY_API_KEY", raising=False)
    assert cli.main(env_free) == 2  # no key anywhere
    assert "an API key is needed" in capsys.readouterr().err
    for bad in (["--symbols", "BTCUSDT"], ["--max-frames-per-minute", "100"], ["--business", "forex"]):
        assert cli.main([*env_free, "--api-key", "k", *bad]) == 2
        assert capsys.readouterr().err.startswith("infoway-mock conformance: ")


async def test_parity_marked_tests_pass_against_a_second_mock_given_by_url(make_server: Any) -> None:
    # Another key than the in-process mock's demo key, so every marked test must use the given one.
    second = await make_server(keys={"parity-key": "pro"})
    env = {k: v for k, v in os.environ.items() if k not in ("INFOWAY_URL", "INFOWAY_API_KEY")}
    env["INFOWAY_API_KEY"] = "parity-key"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        "tests/test_server.py",
        "tests/test_parity.py",
        "--infoway-url",
        f"ws://127.0.0.1:{second.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    out = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
    assert proc.returncode == 0, out
    passed = int(re.search(r"(\d+) passed", out)[1])  # type: ignore[index]
    skipped = int(re.search(r"(\d+) skipped", out)[1])  # type: ignore[index]
    assert passed >= 20 and skipped >= 10, out
    assert "not marked infoway_parity" in out
    # They ran against the second mock, with its key.
    (client,) = second.report()["clients"]
    assert client["key"] == "pa******ey" and len(client["connections"]) >= 10


async def test_parity_url_without_a_key_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("INFOWAY_URL", "INFOWAY_API_KEY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_schemas.py",
        "--infoway-url",
        "ws://127.0.0.1:1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert proc.returncode == 4, out  # pytest's usage error
    assert "INFOWAY_API_KEY" in out
