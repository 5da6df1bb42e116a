"""`make load`: start a mock, run locust headless against it, leave CSV + HTML under reports/, stop the mock.

    python -m loadtests.run --users 200 --spawn-rate 50 --run-time 60s
    python -m loadtests.run --scenario flaky-network   # the reconnect variant (make load-reconnect)
    python -m loadtests.run --workers 2                # one master, two workers (make load-distributed)

Workers on other machines: start the mock and the master here with `--workers N --bind 0.0.0.0`, then on
each other machine run `locust -f loadtests/locustfile.py --worker --master-host THIS_HOST`.
(Our own test traffic stays on 127.0.0.1; only a deliberate --bind opens the master port.)
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from loadtests.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


def wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"mock exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)  # polling a port with a deadline: there is no event to wait on
    raise RuntimeError(f"mock not listening on {port} after {deadline} s")


LOAD_PLAN_CONNECTIONS = 10_000  # the mock's `load` plan (key `load-test`), the locustfile's default key


def start_mock(
    port: int, scenario: str | None, users: int, extra: list[str], keys: str | None = None
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "infoway_mock.mockserver.cli",
        "serve",
        "--port",
        str(port),
        "--send-timestamp",
        "--no-strict",  # load runs measure the server as users would run it
    ]
    if keys:
        # Explicit keys get the demo key's plan (9 connections each): the run shows users spread over them.
        cmd += ["--keys", keys]
    elif users * 2 > LOAD_PLAN_CONNECTIONS:
        cmd += ["--max-connections", str(users * 2)]  # room for every user plus its reconnects
    if scenario:
        cmd += ["--scenario", scenario]
    return subprocess.Popen([*cmd, *extra], cwd=ROOT)


def locust_cmd(args: argparse.Namespace, url: str, prefix: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--stop-timeout",
        "5",
        "--infoway-symbols",
        str(args.symbols),
        "--infoway-channels",
        args.channels,
        *(["--infoway-keys", args.keys] if args.keys else []),
    ]


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (one line per option)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--spawn-rate", type=float, default=50)
    ap.add_argument("--run-time", default="60s")
    ap.add_argument("--symbols", type=int, default=3, help="symbols per user")
    ap.add_argument("--channels", default="trade,depth,kline")
    ap.add_argument(
        "--keys", help="API keys to spread users over (default: the mock's load-test key, plan `load`)"
    )
    ap.add_argument("--scenario", help="mock scenario to play (e.g. flaky-network, server-restart)")
    ap.add_argument("--workers", type=int, default=0, help="run distributed: one master and N workers")
    ap.add_argument("--bind", default="127.0.0.1", help="master bind address in distributed mode")
    ap.add_argument("--out", default=str(ROOT / "reports"))
    ap.add_argument("--url", help="load-test this server instead of starting a mock")
    ap.add_argument("--fail-on-failures", action="store_true", help="exit 1 if locust recorded a failure")
    args, extra = ap.parse_known_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "load" + (f"-{Path(args.scenario).stem}" if args.scenario else "")
    name += f"-distributed{args.workers}" if args.workers else ""
    prefix = out / name

    mock = None
    url = args.url
    if url is None:
        port = free_port()
        mock = start_mock(port, args.scenario, args.users, extra, args.keys)
        wait_listening(port, mock)
        url = f"ws://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers: list[subprocess.Popen[bytes]] = []
    try:
        cmd = locust_cmd(args, url, prefix)
        if args.workers:
            master_port = free_port()
            cmd += [
                "--master",
                "--master-bind-host",
                args.bind,
                "--master-bind-port",
                str(master_port),
                "--expect-workers",
                str(args.workers),
            ]
            for _ in range(args.workers):
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "locust",
                            "-f",
                            str(LOCUSTFILE),
                            "--worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(master_port),
                        ],
                        cwd=ROOT,
                        env=env,
                    )
                )
        print("running:", " ".join(cmd), flush=True)
        rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=_seconds(args.run_time) + 120).returncode
    finally:
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        if mock is not None:
            mock.terminate()
            try:
                mock.wait(15)
            except subprocess.TimeoutExpired:
                mock.kill()
    failures = summary_failures(prefix)
    print(f"reports: {prefix}_stats.csv, {prefix}.html; locust exit {rc}; failures {failures}")
    if args.fail_on_failures and failures:
        return 1
    return 0 if rc in (0, 1) else rc  # locust exits 1 when any request failed; a drop scenario expects some


def summary_failures(prefix: Path) -> int:
    """Total failures from locust's stats CSV (the Aggregated row)."""
    import csv

    path = Path(f"{prefix}_stats.csv")
    if not path.exists():
        return -1
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("Name") == "Aggregated":
                return int(row.get("Failure Count", 0))
    return 0


def _seconds(run_time: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    total, num = 0.0, ""
    for ch in run_time:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total, num = total + float(num) * units[ch], ""
    return total + (float(num) if num else 0.0)


if __name__ == "__main__":
    sys.exit(main())
