"""Scenario files: the shipped library validates, broken files are refused with the error's path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infoway_mock import schemas
from infoway_mock.mockserver import scenario as sc
from infoway_mock.mockserver.faults import Fault

SHIPPED = sorted(sc.SCENARIO_DIR.glob("*.yaml"))
EXPECTED = {
    "flaky-network",
    "silent-stall",
    "heartbeat-timeout-storm",
    "rate-limit-disconnect",
    "quota-exhaustion",
    "origin-timeout-524",
    "server-restart",
    "slow-consumer",
}


def test_library_has_every_scenario() -> None:
    assert {p.stem for p in SHIPPED} == EXPECTED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_validates_and_parses(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    schemas.validate_document(raw, "scenario.schema.json")
    scenario = sc.load(path)
    assert scenario.name == path.stem and scenario.schedule()


def test_broken_scenario_is_refused_with_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration: 10\ntimeline:\n  - at: 1\n    fault: {kind: explode}\n")
    with pytest.raises(ValueError) as info:  # the fault registry's FaultError, with the file and the path
        sc.load(bad)
    assert "$.timeline[0].fault.kind" in str(info.value) and "bad.yaml" in str(info.value)
    proc = subprocess.run(
        [sys.executable, "-m", "infoway_mock.mockserver", "serve", "--port", "0", "--scenario", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "$.timeline[0].fault.kind" in proc.stderr


def test_schedule_repeats_and_scales() -> None:
    scenario = sc.Scenario(
        "x",
        "",
        10.0,
        (sc.Step(at=1.0, every=3.0, fault=Fault("reset")), sc.Step(at=2.0, fault=Fault("stall", seconds=4))),
    )
    times = [(t, f.kind) for t, _, f in scenario.schedule()]
    assert times == [(1.0, "reset"), (2.0, "stall"), (4.0, "reset"), (7.0, "reset"), (10.0, "reset")]
    scaled = scenario.schedule(scale=0.1)
    assert [round(t, 3) for t, _, _ in scaled][:2] == [0.1, 0.2]
    assert scaled[1][2].seconds == pytest.approx(0.4)


def test_scenarios_command_lists_them() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infoway_mock.mockserver", "scenarios"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert {line.split()[0] for line in proc.stdout.splitlines()} == EXPECTED
