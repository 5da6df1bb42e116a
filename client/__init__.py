"""The reference Infoway client: reconnects with backoff, heartbeats, watches liveness, paces requests
under the 60/min limit, resubscribes exactly what is wanted, and reports the gaps."""

from __future__ import annotations

from .client import InfowayClient
from .config import ClientConfig
from .core import ClientCore
from .errors import AuthError, GaveUp, InfowayError
from .events import BadFrame, Connected, Depth, Disconnected, Gap, Kline, Resubscribed, ServerError, Trade
from .policy import Outcome

__all__ = [
    "AuthError",
    "BadFrame",
    "ClientConfig",
    "ClientCore",
    "Connected",
    "Depth",
    "Disconnected",
    "Gap",
    "GaveUp",
    "InfowayClient",
    "InfowayError",
    "Kline",
    "Outcome",
    "Resubscribed",
    "ServerError",
    "Trade",
]
