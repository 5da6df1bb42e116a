"""CI smoke run of the locust suite: a few users for a few seconds against a mock on loopback; any
locust failure (error frame, lost connection, failed connect) fails the test."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.conftest import requires_locust

ROOT = Path(__file__).resolve().parent.parent


@requires_locust
def test_locust_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.run",
            "--users",
            "5",
            "--spawn-rate",
            "5",
            "--run-time",
            "8s",
            "--out",
            str(tmp_path),
            "--fail-on-failures",
            "--trade-rate",  # passed through to the mock: enough pushes to see in a few seconds
            "20",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (tmp_path / "load_stats.csv").open() as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert int(rows["connect"]["Request Count"]) >= 5
    assert any(name.startswith("ack ") for name in rows)
    assert int(rows["push 10002"]["Request Count"]) > 0
    assert (tmp_path / "load.html").stat().st_size > 0
