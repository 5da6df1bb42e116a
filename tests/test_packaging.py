"""Installed into someone else's project, the wheel must not clash with their `schemas` or `client` package.

The wheel is built from this checkout (offline, no build isolation), installed into a fresh virtualenv,
and a small user project with its own `schemas/` and `client/` packages runs its tests there: the pytest
plugin's fixtures, the reference client and `python -m infoway_mock.schemas check`. The fresh venv gets its
third-party dependencies from this venv through a .pth line (no network): a plain path entry, so the
editable install's import hook in this venv is never run there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASHING = ("schemas", "client", "mockserver")

pytestmark = pytest.mark.slow

USER_TEST = """
import asyncio
import json
import subprocess
import sys

import client  # the user's own packages, imported before the mock is used
import schemas
from infoway_mock.client import InfowayClient, Trade


def test_own_packages_are_theirs():
    assert schemas.OWNER == "user" and client.OWNER == "user"


def test_fixtures_and_reference_client(infoway_server, infoway_url):
    async def first_trade():
        async with InfowayClient(infoway_url) as c:
            await c.subscribe_trades("BTCUSDT")
            async for ev in c:
                if isinstance(ev, Trade):
                    return ev

    ev = asyncio.run(asyncio.wait_for(first_trade(), 20))
    assert ev.symbol == "BTCUSDT"
    assert infoway_server.report()["verdict"] == "pass"


def test_schemas_check_cli(tmp_path):
    f = tmp_path / "capture.jsonl"
    f.write_text(json.dumps({"code": 200, "msg": "ws connect success"}) + "\\n")
    res = subprocess.run([sys.executable, "-m", "infoway_mock.schemas", "check", str(f)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 violations" in res.stdout
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
    return res


def test_wheel_in_a_project_with_its_own_schemas_and_client(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".venv", ".git", "build", "reports", "__pycache__", "*.egg-info", ".*cache")
    shutil.copytree(ROOT, src, ignore=skip)
    dist = tmp_path / "dist"
    wheel_cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(dist),
    ]
    _run([*wheel_cmd, "."], src)
    wheel = next(dist.glob("infoway_mock-*.whl"))
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert not tops & set(CLASHING), f"the wheel installs top-level {sorted(tops & set(CLASHING))}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], ROOT
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).stdout.strip()
    )
    installed = {p.name for p in site.iterdir()}
    assert not installed & set(CLASHING), f"site-packages got {sorted(installed & set(CLASHING))}"
    assert "infoway_mock" in installed
    # Third-party dependencies (websockets, jsonschema, pytest, ...) from this venv, without its hooks.
    (site / "deps-from-dev-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    proj = tmp_path / "proj"
    for pkg in ("schemas", "client"):
        (proj / pkg).mkdir(parents=True)
        (proj / pkg / "__init__.py").write_text(f'OWNER = "user"\nNAME = "{pkg}"\n')
    (proj / "tests").mkdir()
    (proj / "tests" / "test_app.py").write_text(textwrap.dedent(USER_TEST))
    (proj / "pytest.ini").write_text("[pytest]\npythonpath = .\ntestpaths = tests\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV")}
    res = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], proj, env)
    assert "3 passed" in res.stdout, res.stdout
