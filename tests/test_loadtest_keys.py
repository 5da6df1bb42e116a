"""Load tests get room: the default config ships a load-test key, and the locustfile spreads users over keys.

Issue 13: the locustfile against a default `make serve` with 20 users got 427s (the demo key allows 9)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from infoway_mock.mockserver.config import DEFAULT_KEY, LOAD_TEST_KEY, ServerConfig
from infoway_mock.mockserver.server import MockServer
from loadtests.run import free_port, wait_listening
from tests.conftest import requires_locust

ROOT = Path(__file__).resolve().parent.parent


def test_default_config_ships_the_load_test_key() -> None:
    cfg = ServerConfig()
    assert cfg.keys == {DEFAULT_KEY: "pro", LOAD_TEST_KEY: "load"}
    assert cfg.plan_for(DEFAULT_KEY).max_connections == 9  # the vendor's Pro plan, unchanged
    load = cfg.plan_for(LOAD_TEST_KEY)
    assert load.max_connections >= 1000
    assert load.rate_limit == 60 and load.max_products_per_connection == 600  # live per-connection limits


async def test_twenty_connections_on_the_load_key_and_427_on_the_tenth_demo_one() -> None:
    async with MockServer(ServerConfig(port=0)) as srv:
        load = [await websockets.connect(srv.ws_url("crypto", LOAD_TEST_KEY)) for _ in range(20)]
        demo = [await websockets.connect(srv.ws_url("crypto", DEFAULT_KEY)) for _ in range(9)]
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(srv.ws_url("crypto", DEFAULT_KEY))
        assert info.value.response.status_code == 427
        for ws in load + demo:
            await ws.close()


def test_locustfile_spreads_users_over_keys() -> None:
    # In a child process: importing locust monkey-patches the standard library with gevent.
    code = (
        "from loadtests.locustfile import key_for, parse_keys, LOAD_TEST_KEY\n"
        "keys = parse_keys(' k1, k2 ,k3,')\n"
        "print([key_for(n, keys) for n in range(7)], LOAD_TEST_KEY)\n"
        "try:\n    parse_keys(' , ')\nexcept ValueError as e:\n    print('error:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "['k1', 'k2', 'k3', 'k1', 'k2', 'k3', 'k1'] load-test"
    assert lines[1].startswith("error: no API key given")


@requires_locust
def test_twenty_locust_users_against_a_default_serve(tmp_path: Path) -> None:
    """The issue's case: a plain `serve` (default config) and 20 locust users, no 427, no failure."""
    port = free_port()
    mock = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infoway_mock.mockserver.cli",
            "serve",
            "--port",
            str(port),
            "--trade-rate",
            "20",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, mock)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "loadtests.run",
                "--url",
                f"ws://127.0.0.1:{port}",
                "--users",
                "20",
                "--spawn-rate",
                "20",
                "--run-time",
                "4s",
                "--out",
                str(tmp_path),
                "--fail-on-failures",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        mock.terminate()
        mock.wait(15)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (tmp_path / "load_stats.csv").open() as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    assert int(rows["connect"]["Request Count"]) == 20
    assert int(rows["Aggregated"]["Failure Count"]) == 0
