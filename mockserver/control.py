"""The control channel: a token-protected WebSocket at /control, for loopback clients only.

Commands are JSON objects with an `op`; every reply is a JSON object with `ok`. `infoway-mock fault`
is a thin client of this channel.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import orjson
from websockets.exceptions import ConnectionClosed

from .config import mask_key
from .faults import Fault

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from .server import MockServer


def is_loopback(conn: ServerConnection) -> bool:
    try:
        host = conn.remote_address[0]
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False


class ControlChannel:
    def __init__(self, server: MockServer) -> None:
        self.server = server

    async def serve(self, conn: ServerConnection) -> None:
        try:
            async for message in conn:
                await conn.send(orjson.dumps(await self.handle(message)).decode())
        except ConnectionClosed:
            pass

    async def handle(self, message: str | bytes) -> dict[str, Any]:
        try:
            cmd = orjson.loads(message)
            if not isinstance(cmd, dict):
                raise ValueError("a command is a JSON object with an op")
            op = cmd.get("op")
            if op == "fault":
                result = await self.server.faults.apply(Fault.from_dict(cmd.get("fault") or {}))
                return {"ok": True, **result}
            if op == "clear":
                return {"ok": True, "cleared": self.server.faults.clear(cmd.get("id"))}
            if op == "faults":
                return {
                    "ok": True,
                    "active": [{"id": a.id, **a.fault.to_dict()} for a in self.server.faults.active.values()],
                }
            if op == "connections":
                return {"ok": True, "connections": self.connections()}
            if op == "report":
                return {"ok": True, "report": self.server.report()}
            raise ValueError(f"unknown op {op!r}; expected fault, clear, faults, connections or report")
        except (ValueError, TypeError) as e:
            return {"ok": False, "error": str(e)}

    def connections(self) -> list[dict[str, Any]]:
        out = []
        for session, conn in self.server.sessions.values():
            info = conn.infoway
            out.append(
                {
                    "id": session.conn_id,
                    "key": mask_key(session.key),
                    "business": session.business,
                    "peer": info.peer if info else "?",
                    "products": len(session.products()),
                }
            )
        return out


async def send_command(
    url: str, token: str, command: dict[str, Any], timeout: float = 10.0
) -> dict[str, Any]:
    """One command over the control channel (used by the `infoway-mock fault` CLI)."""
    import asyncio

    import websockets

    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=timeout
    ) as ws:
        await ws.send(orjson.dumps(command).decode())
        return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
