"""Soak (opt-in: `make soak`, or `pytest -m soak`): 10,000 concurrent subscribed connections for a minute
against a group of two workers behind HAProxy, the clients spread over three processes of light clients
(loadtests/soak.py). Sizes: INFOWAY_SOAK_CONNECTIONS, INFOWAY_SOAK_WORKERS, INFOWAY_SOAK_SECONDS,
INFOWAY_SOAK_CLIENTS. Checks no errors, no contract violations, and every counter back at idle."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from loadtests.soak import run

pytestmark = pytest.mark.soak


def test_soak() -> None:
    workers = int(os.environ.get("INFOWAY_SOAK_WORKERS", "2"))
    if workers and shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (.ci/run installs Debian's haproxy)")
    connections = int(os.environ.get("INFOWAY_SOAK_CONNECTIONS", "10000"))
    result = run(
        connections,
        workers,
        float(os.environ.get("INFOWAY_SOAK_SECONDS", "60")),
        int(os.environ.get("INFOWAY_SOAK_CLIENTS", "3")),
        16,
    )
    print("\nsoak:", json.dumps(result, indent=2))
    Path("reports").mkdir(exist_ok=True)
    Path("reports/soak.json").write_text(json.dumps(result, indent=2))
    assert result["opened"] == connections and result["client_errors"] == 0
    assert result["alive_at_end"] == connections
    assert result["server_errors_sent"] == 0 and result["contract_violations"] == 0
    assert result["pushes_per_s"] > 0
    assert result["idle_after"], result["gauges_after"]
