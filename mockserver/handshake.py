"""Who may open a socket, decided without sockets: path, query, headers, peer and time in, a verdict out.

Like the session, this is sans-I/O: the shell parses the upgrade request and applies the verdict. Every
refusal the live gateway gives on the handshake is decided here (404 unknown path, 401 bad or missing key,
427 over the plan's connections, refusal faults with any status), and so are the cases the live server
accepts and then rejects in a frame (514 unknown business, 511 banned key, 520 a second news socket).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from infoway_mock.schemas.codes import KEY_BLACKLISTED, NEWS_ALREADY_CONNECTED, URL_WRONG

from .config import ServerConfig
from .limits import QuotaBook

WS_PATH, NEWS_PATH, CONTROL_PATH, CONSOLE_WS_PATH = "/ws", "/news", "/control", "/console/ws"


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A WebSocket upgrade request, as the decision needs it."""

    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    peer_host: str


@dataclass(frozen=True, slots=True)
class Accept:
    kind: str  # "ws", "news", "control" or "console"
    key: str = ""
    business: str = ""
    slot_held: bool = False  # a connection slot of the key's plan was taken (give it back on close)
    error: tuple[int, str] | None = None  # send this error frame at once, then close


@dataclass(frozen=True, slots=True)
class Refuse:
    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()


class Refusals:
    """Handshake refusals in force (the `refuse` fault): status, key (None = every key), until when."""

    def __init__(self) -> None:
        self._active: dict[int, tuple[int, str | None, float]] = {}

    def add(self, fault_id: int, status: int, key: str | None, until: float) -> None:
        self._active[fault_id] = (status, key, until)

    def remove(self, fault_id: int) -> bool:
        return self._active.pop(fault_id, None) is not None

    def ids(self) -> list[int]:
        return list(self._active)

    def status_for(self, key: str | None, now: float) -> int | None:
        for fid, (status, fkey, until) in list(self._active.items()):
            if now >= until:
                del self._active[fid]
            elif fkey is None or fkey == key:
                return status
        return None


def presented_key(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The API key as clients send it: `apikey` (or `apiKey`) in the query, or an `apiKey` header."""
    return query.get("apikey") or query.get("apiKey") or headers.get("apikey") or None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_loopback_origin(origin: str) -> bool:
    """An Origin header naming a loopback host (127.0.0.0/8, ::1 or localhost), any port."""
    host = urlsplit(origin).hostname or ""
    return host == "localhost" or is_loopback(host)


class Gate:
    """The handshake decisions of one server. Pure apart from the quota it takes on acceptance."""

    def __init__(
        self,
        config: ServerConfig,
        quotas: QuotaBook,
        refusals: Refusals,
        control_token: str,
        businesses: Iterable[str],
    ) -> None:
        self.config = config
        self.quotas = quotas
        self.refusals = refusals
        self.control_token = control_token
        self.businesses = frozenset(businesses)

    def authenticate(self, presented: str | None) -> str | None:
        """The configured key matching `presented`, compared in constant time against every key."""
        if not presented:
            return None
        found = None
        for key in self.config.keys:
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = key
        return found

    def decide(self, up: Upgrade, now: float) -> Accept | Refuse:
        if up.path == CONTROL_PATH:
            return self._control(up)
        if up.path == CONSOLE_WS_PATH:
            return self._console(up)
        if up.path not in (WS_PATH, NEWS_PATH):
            return Refuse(404, "Not Found\n")
        presented = presented_key(up.query, up.headers)
        refused = self.refusals.status_for(presented, now)
        if refused is not None:
            return Refuse(refused, f"{refused} refused by fault injection\n")
        key = self.authenticate(presented)
        if key is None:
            return Refuse(
                401,
                "Unauthorized: missing or invalid API key\n",
                (("WWW-Authenticate", 'apikey realm="key"'),),
            )
        if up.path == NEWS_PATH:
            return self._news(key)
        business = up.query.get("business", "")
        if business not in self.businesses:
            return Accept(
                "ws", key, business, error=(URL_WRONG, f"WebSocket URL wrong：unknown business {business!r}")
            )
        if key in self.config.banned_keys:
            return Accept("ws", key, business, error=(KEY_BLACKLISTED, "API key is blacklisted"))
        plan = self.config.plan_for(key)
        if not self.quotas.try_connect(key, plan.max_connections):
            return Refuse(427, f"Too many WebSocket connections: the plan allows {plan.max_connections}\n")
        return Accept("ws", key, business, slot_held=True)

    def _control(self, up: Upgrade) -> Accept | Refuse:
        # The control channel can break every client: loopback peers only, and only with the token.
        if not is_loopback(up.peer_host):
            return Refuse(403, "Forbidden: the control endpoint is for loopback clients only\n")
        auth = up.headers.get("authorization", "")
        presented = auth.removeprefix("Bearer ").strip() or up.query.get("token", "")
        if not hmac.compare_digest(presented.encode(), self.control_token.encode()):
            return Refuse(401, "Unauthorized: control token required\n")
        return Accept("control")

    def _console(self, up: Upgrade) -> Accept | Refuse:
        # The console page's socket: the control channel's rule (loopback, token: browsers send it in
        # the query), and a page from another origin may not open it even if it learnt the token.
        origin = up.headers.get("origin")
        if origin is not None and not is_loopback_origin(origin):
            return Refuse(403, "Forbidden: the console socket is for pages served by this mock\n")
        verdict = self._control(up)
        return Accept("console") if isinstance(verdict, Accept) else verdict

    def _news(self, key: str) -> Accept | Refuse:
        plan = self.config.plan_for(key)
        if not plan.news:
            # The SDK: without the news entitlement the gateway rejects the handshake with 401.
            return Refuse(401, "Unauthorized: this API key has no news permission\n")
        if not self.quotas.try_connect_news(key, plan.max_news_connections):
            return Accept(
                "news", key, error=(NEWS_ALREADY_CONNECTED, "Already connected：one news connection per key")
            )
        return Accept("news", key, slot_held=True)
