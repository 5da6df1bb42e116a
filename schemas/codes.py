"""The one table of Infoway message codes: requests, their acks, pushes, errors, and their schema files.

The session, the reference client, the locustfile and the schema registry read codes from here instead
of repeating literals. Plain int constants, not an IntEnum: they are compared on every frame of the hot
paths, and an enum member costs a little on each comparison and hash.

Sources: PROTOCOL.md (live captures 2026-08-15) and the vendor SDK `infoway-sdk` 0.4.1 (`WsCode`,
`WsErrorCode`); the news socket's codes come from the SDK only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# -- the /ws market-data socket ----------------------------------------------------------------------------
WELCOME = 200
SUB_TRADE, SUB_TRADE_ACK, PUSH_TRADE = 10000, 10001, 10002
SUB_DEPTH, SUB_DEPTH_ACK, PUSH_DEPTH = 10003, 10004, 10005
SUB_KLINE, SUB_KLINE_ACK, PUSH_KLINE = 10006, 10007, 10008
HEARTBEAT, HEARTBEAT_ACK = 10010, 10011
UNSUB_TRADE, UNSUB_DEPTH, UNSUB_KLINE = 11000, 11001, 11002
UNSUB_ACK = 11010  # every unsubscribe, of any kind, is acked with this one code
LEGACY_TRADE_PUSH = 10000  # the tutorial's old trade push; the same number as SUB_TRADE, other direction

# -- the /news socket (SDK): subscribe 10020 -> ack 10021 -> pushes 10022; unsubscribe 11020 -> 11010 ------
SUB_NEWS, SUB_NEWS_ACK, PUSH_NEWS = 10020, 10021, 10022
UNSUB_NEWS = 11020

# -- error frames (they carry traceId, not trace, and no data) --------------------------------------------
SERVER_ERROR = 500
RATE_LIMIT = 501  # then the connection is closed
DAILY_LIMIT = 502
KLINE_LIMIT = 503
DEPTH_LIMIT = 504
PRODUCTS_PER_CONNECTION = 505
PARAM_ERROR = 506
PARAM_LOST = 507
KEY_EXPIRED, KEY_INVALID, KEY_EMPTY, KEY_BLACKLISTED = 508, 509, 510, 511
CONNECTIONS_LIMIT = 512
HEARTBEAT_TIMEOUT = 513  # then the connection is closed
URL_WRONG = 514
NOT_JSON = 515
PRODUCTS_PER_KEY = 516
NEWS_KEY_MISSING, NEWS_KEY_UNKNOWN, NEWS_NO_PERMISSION, NEWS_ALREADY_CONNECTED, NEWS_MAX_CONNECTIONS = (
    517,
    518,
    519,
    520,
    521,
)

#: Meaning of every error frame code, the wording the live service uses where it is known.
ERRORS: dict[int, str] = {
    SERVER_ERROR: "Server error",
    RATE_LIMIT: "Request frequency exceed the limit",
    DAILY_LIMIT: "Daily request limit reached",
    KLINE_LIMIT: "Kline quantity exceeds the limit",
    DEPTH_LIMIT: "Order book depth exceeds the limit",
    PRODUCTS_PER_CONNECTION: "Single WS subscribe exceeds the limit",
    PARAM_ERROR: "Param error",
    PARAM_LOST: "Param lost",
    KEY_EXPIRED: "API key expired",
    KEY_INVALID: "API key invalid",
    KEY_EMPTY: "API key empty",
    KEY_BLACKLISTED: "API key is blacklisted",
    CONNECTIONS_LIMIT: "WebSocket connections over the limit",
    HEARTBEAT_TIMEOUT: "Websocket heartbeat timeout",
    URL_WRONG: "WebSocket URL wrong",
    NOT_JSON: "Param error：The param is not JSON",
    PRODUCTS_PER_KEY: "Subscribe products exceed the limit of the key",
    NEWS_KEY_MISSING: "API key missing",
    NEWS_KEY_UNKNOWN: "API key does not exist",
    NEWS_NO_PERMISSION: "No permission",
    NEWS_ALREADY_CONNECTED: "Already connected",
    NEWS_MAX_CONNECTIONS: "Max connections reached",
}
ERROR_CODES = frozenset(ERRORS)


def is_error(code: object) -> bool:
    return type(code) is int and code in ERROR_CODES


Direction = Literal["client", "server"]
Socket = Literal["ws", "news"]


@dataclass(frozen=True, slots=True)
class Message:
    """One kind of frame: its code, which way it travels, on which socket, and its schema file."""

    code: int
    name: str
    direction: Direction
    sockets: tuple[Socket, ...]
    schema: str  # relative to schemas/json
    ack: int | None = None  # for a request: the code of its ack (None: not acked)
    channel: str | None = None  # for subscriptions and pushes: trade, depth, kline, news


MESSAGES: tuple[Message, ...] = (
    # client -> server
    Message(
        SUB_TRADE,
        "subscribe trades",
        "client",
        ("ws",),
        "client/subscribe-trades.json",
        SUB_TRADE_ACK,
        "trade",
    ),
    Message(
        SUB_DEPTH, "subscribe depth", "client", ("ws",), "client/subscribe-depth.json", SUB_DEPTH_ACK, "depth"
    ),
    Message(
        SUB_KLINE,
        "subscribe klines",
        "client",
        ("ws",),
        "client/subscribe-klines.json",
        SUB_KLINE_ACK,
        "kline",
    ),
    Message(
        UNSUB_TRADE,
        "unsubscribe trades",
        "client",
        ("ws",),
        "client/unsubscribe-trades.json",
        UNSUB_ACK,
        "trade",
    ),
    Message(
        UNSUB_DEPTH,
        "unsubscribe depth",
        "client",
        ("ws",),
        "client/unsubscribe-depth.json",
        UNSUB_ACK,
        "depth",
    ),
    Message(
        UNSUB_KLINE,
        "unsubscribe klines",
        "client",
        ("ws",),
        "client/unsubscribe-klines.json",
        UNSUB_ACK,
        "kline",
    ),
    Message(HEARTBEAT, "heartbeat", "client", ("ws", "news"), "client/heartbeat.json", HEARTBEAT_ACK),
    Message(
        SUB_NEWS, "subscribe news", "client", ("news",), "client/subscribe-news.json", SUB_NEWS_ACK, "news"
    ),
    Message(
        UNSUB_NEWS, "unsubscribe news", "client", ("news",), "client/unsubscribe-news.json", UNSUB_ACK, "news"
    ),
    # server -> client
    Message(WELCOME, "welcome", "server", ("ws", "news"), "server/welcome.json"),
    Message(SUB_TRADE_ACK, "trade subscribe ack", "server", ("ws",), "server/ack.json"),
    Message(SUB_DEPTH_ACK, "depth subscribe ack", "server", ("ws",), "server/ack.json"),
    Message(SUB_KLINE_ACK, "kline subscribe ack", "server", ("ws",), "server/ack.json"),
    Message(SUB_NEWS_ACK, "news subscribe ack", "server", ("news",), "server/ack.json"),
    Message(UNSUB_ACK, "unsubscribe ack", "server", ("ws", "news"), "server/ack.json"),
    Message(HEARTBEAT_ACK, "heartbeat ack", "server", ("ws", "news"), "server/heartbeat-ack.json"),
    Message(PUSH_TRADE, "trade push", "server", ("ws",), "server/trade-push.json", channel="trade"),
    Message(PUSH_DEPTH, "depth push", "server", ("ws",), "server/depth-push.json", channel="depth"),
    Message(PUSH_KLINE, "kline push", "server", ("ws",), "server/kline-push.json", channel="kline"),
    Message(PUSH_NEWS, "news push", "server", ("news",), "server/news-push.json", channel="news"),
    Message(
        LEGACY_TRADE_PUSH,
        "legacy trade push",
        "server",
        ("ws",),
        "server/legacy-trade-push.json",
        channel="trade",
    ),
    *(
        Message(code, f"error {code}", "server", ("ws", "news"), "server/error.json")
        for code in sorted(ERRORS)
    ),
)

REQUESTS: dict[int, Message] = {m.code: m for m in MESSAGES if m.direction == "client"}
SUBSCRIBE_CODES = frozenset({SUB_TRADE, SUB_DEPTH, SUB_KLINE})
ACK_CODES = frozenset({SUB_TRADE_ACK, SUB_DEPTH_ACK, SUB_KLINE_ACK, SUB_NEWS_ACK, UNSUB_ACK, HEARTBEAT_ACK})
PUSH_CODES = frozenset({PUSH_TRADE, PUSH_DEPTH, PUSH_KLINE, PUSH_NEWS, LEGACY_TRADE_PUSH})

SUBSCRIBE_FOR_CHANNEL = {"trade": SUB_TRADE, "depth": SUB_DEPTH, "kline": SUB_KLINE, "news": SUB_NEWS}

#: Kline `type` -> interval name (1=1m ... 12=1Y).
KLINE_TYPES: dict[int, str] = {
    1: "1m",
    2: "5m",
    3: "15m",
    4: "30m",
    5: "1h",
    6: "2h",
    7: "4h",
    8: "1d",
    9: "1w",
    10: "1M",
    11: "1Q",
    12: "1Y",
}
