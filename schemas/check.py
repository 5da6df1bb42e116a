"""Validate a recorded WebSocket stream: `python -m infoway_mock.schemas check FILE [--no-semantic]`.

A capture (`infoway-mock proxy --record`, `infoway-client stream --record`: its first line is a capture
header) is checked line by line against schemas/json/capture.schema.json, and every frame in it against the
contract, by its recorded direction and socket (`/news` connections use the news table).

Otherwise, input is one frame per line (blank lines are skipped). A line is either

- a bare JSON frame, e.g. `{"code":10002,"data":{...}}`, or
- a recorded frame `{"_dir": "send"|"recv", "_raw": "<the frame as sent on the wire>", ...}`: `send` is a
  client -> server frame, `recv` a server -> client frame; other keys (timestamps...) are ignored.

Direction of a bare frame: it is a **client** frame when its `code` is a request code (10000, 10003,
10006, 11000, 11001, 11002, 10010) and it carries neither `msg` nor `traceId` (replies and errors
always do); 10000 is also the legacy trade push, so a 10000 frame whose `data` holds a symbol `s` (pushes
do, subscribes carry `codes`) is a server frame. Everything else is a **server** frame. Record `_dir`
when this guess is not good enough.

Violations: a line (or a `_raw`) that is not JSON, except the stock banner text frame on the receive
side; a `_dir` other than send/recv; every schema violation, and for server frames every semantic one
(crossed book, OHLC, turnover...) unless `--no-semantic`.

Output: counts by direction and code, then one line per violation, `line N: $.path: rule (value)`.
Exit status: 0 clean, 1 any violation, 2 file unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import capture as capture_format
from .errors import ContractError, Violation
from .registry import CLIENT_SCHEMAS
from .validate import validate_client_frame, validate_server_frame

BANNER = "You have permission to subscribe to all market data"
SEND, RECV = "send", "recv"


@dataclass
class Report:
    lines: int = 0  # non-blank lines read
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (direction, code) -> frames
    violations: list[tuple[int, Violation]] = field(default_factory=list)  # (line number, violation)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def by_direction(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (direction, _), n in self.counts.items():
            out[direction] += n
        return out

    @property
    def by_code(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (_, code), n in self.counts.items():
            out[code] += n
        return out

    def bad_lines(self) -> list[int]:
        return sorted({n for n, _ in self.violations})

    def format(self) -> str:
        dirs = self.by_direction
        out = [
            f"{self.lines} lines, {sum(dirs.values())} frames "
            f"(send {dirs[SEND]}, recv {dirs[RECV]}), {len(self.violations)} violations"
        ]
        for (direction, code), n in sorted(
            self.counts.items(), key=lambda kv: (kv[0][0], _code_key(kv[0][1]))
        ):
            out.append(f"  {direction:<4}  {code:>6}  {n}")
        out += [f"line {n}: {v.path}: {v.rule} ({_short(v.value)})" for n, v in self.violations]
        return "\n".join(out)


def _code_key(code: str) -> tuple[int, str]:
    return (0, f"{int(code):09d}") if code.lstrip("-").isdigit() else (1, code)


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_client_frame(obj: Any) -> bool:
    """The direction rule for bare frames (see the module docstring)."""
    if not isinstance(obj, dict) or "msg" in obj or "traceId" in obj:
        return False
    code = obj.get("code")
    if type(code) is not int or code not in CLIENT_SCHEMAS:
        return False
    data = obj.get("data")
    return not (code == 10000 and isinstance(data, dict) and "s" in data)


def _code_label(obj: Any) -> str:
    code = obj.get("code") if isinstance(obj, dict) else None
    return str(code) if type(code) is int else "?"


def _parse(text: str) -> tuple[Any, bool]:
    try:
        return json.loads(text), True
    except ValueError:
        return None, False


def check_frame(obj: Any, direction: str, *, semantic: bool = True, socket: str = "ws") -> list[Violation]:
    """Every violation of one decoded frame, sent (client) or received (server)."""
    try:
        if direction == SEND:
            validate_client_frame(obj, fast=True, socket=socket)
        else:
            validate_server_frame(obj, fast=True, semantic=semantic, socket=socket)
    except ContractError as err:
        return list(err.violations)
    return []


def _first_object(lines: list[str]) -> Any:
    for line in lines:
        if line.strip():
            return _parse(line.strip())[0]
    return None


_NOT_JSON = {"$": "line is not JSON", "$.text": "text is not JSON", "$._raw": "_raw is not JSON"}


def _frame_json(report: Report, number: int, direction: str, text: str, path: str) -> tuple[Any, bool]:
    """A frame's text parsed, and whether it was JSON. A received stock banner (the one text frame that is
    not JSON) is counted; any other text that is not JSON is a violation at `path`."""
    frame, parsed = _parse(text)
    if not parsed:
        if direction == RECV and text.strip() == BANNER:
            report.counts[(RECV, "text")] += 1
        else:
            report.violations.append((number, Violation(path, text, "json", _NOT_JSON[path])))
    return frame, parsed


def check_capture(lines: Iterable[str], *, semantic: bool = True) -> Report:
    """Check a capture: each line against the capture schema, each frame against the contract."""
    report = Report()
    check_line = capture_format.line_checker()
    sockets: dict[int, str] = {}  # conn -> "ws" | "news", from its open event
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        report.lines += 1
        obj, parsed = _parse(text)
        if not parsed:
            report.violations.append((number, Violation("$", text, "json", "line is not JSON")))
            continue
        found = check_line(obj)
        if found:
            report.violations += [(number, v) for v in found]
            continue
        ev = obj.get("ev")
        if ev == "open":
            sockets[obj["conn"]] = "news" if obj["path"] == "/news" else "ws"
        if ev != "frame":
            continue
        direction = obj["dir"]
        if "binary" in obj:
            report.counts[(direction, "binary")] += 1
            msg = "a binary frame: the contract has only JSON text frames"
            report.violations.append((number, Violation("$.binary", obj["binary"][:40], "binary", msg)))
            continue
        frame, parsed = _frame_json(report, number, direction, obj["text"], "$.text")
        if not parsed:
            continue
        report.counts[(direction, _code_label(frame))] += 1
        socket = sockets.get(obj["conn"], "ws")
        report.violations += [
            (number, v) for v in check_frame(frame, direction, semantic=semantic, socket=socket)
        ]
    return report


def check_lines(lines: Iterable[str], *, semantic: bool = True) -> Report:
    """Check every line of a recorded stream; line numbers count from 1 and include blank lines."""
    lines = list(lines)
    if capture_format.is_header(_first_object(lines)):
        return check_capture(lines, semantic=semantic)
    report = Report()
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        report.lines += 1
        obj, parsed = _frame_json(report, number, RECV, text, "$")
        if not parsed:
            continue
        if isinstance(obj, dict) and "_raw" in obj:
            direction, raw = obj.get("_dir"), obj["_raw"]
            if direction not in (SEND, RECV):
                msg = "_dir must be 'send' or 'recv'"
                report.violations.append((number, Violation("$._dir", direction, "direction", msg)))
                continue
            if not isinstance(raw, str):
                msg = "_raw must be the frame as a string"
                report.violations.append((number, Violation("$._raw", raw, "type", msg)))
                continue
            obj, parsed = _frame_json(report, number, direction, raw, "$._raw")
            if not parsed:
                continue
        else:
            direction = SEND if is_client_frame(obj) else RECV
        report.counts[(direction, _code_label(obj))] += 1
        report.violations += [(number, v) for v in check_frame(obj, direction, semantic=semantic)]
    return report


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="validate a capture, or a recorded stream of frames, one per line")
    p.add_argument(
        "file", help="a capture (proxy/client --record), or JSON frames or {_dir, _raw} objects, one per line"
    )
    p.add_argument(
        "--semantic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the semantic checks on server frames (default: on)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        print(f"cannot read {args.file}: {err}", file=sys.stderr)
        return 2
    report = check_lines(text.splitlines(), semantic=args.semantic)
    print(report.format())
    return 0 if report.ok else 1
