"""The control channel: a token-protected WebSocket at /control, for loopback clients only.

Commands are JSON objects with an `op`; every reply is a JSON object with `ok` (and `error` when not ok).
`infoway-mock fault` and `infoway-mock report` are thin clients of this channel. It sees the fault engine,
the report and a listing of connections, nothing else of the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from .faults import Fault, FaultEngine, FaultError, schema


class ControlChannel:
    def __init__(
        self,
        faults: FaultEngine,
        report: Callable[[], dict[str, Any]],
        connections: Callable[[], list[dict[str, Any]]],
        html_report: Callable[[], str] | None = None,
    ) -> None:
        self.faults = faults
        self.report = report
        self.connections = connections
        self.html_report = html_report

    def handle(self, message: str | bytes) -> dict[str, Any]:
        try:
            cmd = orjson.loads(message)
        except orjson.JSONDecodeError:
            return {"ok": False, "error": "a command is a JSON object with an op"}
        if not isinstance(cmd, dict):
            return {"ok": False, "error": "a command is a JSON object with an op"}
        op = cmd.get("op")
        try:
            if op == "fault":
                return {"ok": True, **self.faults.apply_now(Fault.from_dict(cmd.get("fault"), at="$.fault"))}
            if op == "clear":
                fid = cmd.get("id")
                if fid is not None and (type(fid) is not int or fid < 1):
                    raise FaultError("$.id: a fault id is a positive integer")
                return {"ok": True, "cleared": self.faults.clear(fid)}
            if op == "faults":
                return {"ok": True, "active": self.faults.listing()}
            if op == "schema":
                return {"ok": True, "schema": schema()}
            if op == "connections":
                return {"ok": True, "connections": self.connections()}
            if op == "report":
                if cmd.get("format") == "html" and self.html_report is not None:
                    return {"ok": True, "html": self.html_report(), "verdict": self.report()["verdict"]}
                return {"ok": True, "report": self.report()}
        except FaultError as e:
            return {"ok": False, "error": str(e)}
        return {
            "ok": False,
            "error": f"unknown op {op!r}; expected fault, clear, faults, schema, connections or report",
        }


class ControlError(Exception):
    """The control endpoint could not be reached or refused us (a one-line reason, for the CLI)."""


async def send_command(
    url: str, token: str, command: dict[str, Any], timeout: float = 10.0
) -> dict[str, Any]:
    """One command over the control channel (used by the `infoway-mock fault` and `report` CLIs)."""
    import websockets
    from websockets.exceptions import InvalidStatus, WebSocketException

    try:
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=timeout, max_size=2**24
        ) as ws:
            await ws.send(orjson.dumps(command).decode())
            return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    except InvalidStatus as e:
        status = e.response.status_code
        why = {
            401: "wrong or missing control token",
            403: "the control endpoint serves loopback clients only",
        }
        raise ControlError(
            f"{url}: refused with HTTP {status} ({why.get(status, 'not a control endpoint?')})"
        ) from None
    except (OSError, TimeoutError) as e:
        raise ControlError(f"{url}: cannot connect ({e.__class__.__name__}: {e})") from None
    except WebSocketException as e:
        raise ControlError(f"{url}: {e}") from None
