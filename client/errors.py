"""Errors the client raises (lifecycle problems travel as events, see events.py)."""

from __future__ import annotations


class InfowayError(Exception):
    pass


class AuthError(InfowayError):
    """The server refused the API key (HTTP 401 on the handshake). Retrying cannot help."""

    def __init__(self, status: int = 401, detail: str = "") -> None:
        super().__init__(f"API key rejected (HTTP {status}){': ' + detail if detail else ''}")
        self.status = status


class GaveUp(InfowayError):
    """Reconnecting stopped after max_attempts failures in a row (only when a limit is configured)."""
