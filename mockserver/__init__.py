"""The simulated Infoway exchange. `MockServer` and `ServerConfig` are the in-process entry points."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ServerConfig
    from .server import MockServer

__all__ = ["MockServer", "ServerConfig"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing infoway_mock.mockserver.market stays free of websockets and the schemas.
    if name == "MockServer":
        from .server import MockServer

        return MockServer
    if name == "ServerConfig":
        from .config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
