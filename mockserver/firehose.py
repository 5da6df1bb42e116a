"""The firehose: a seeded market rendered ahead of time, for throughput tests (`serve --firehose SECONDS`).

The market is run through the mock's own pump and outbox (strict: every frame checked against the
contract once, here) into one template episode that every connection plays, by default at `--speed max`:
pre-joined frames in large writes, as fast as the client drains them (replay.ReplayFeed). The mock is then
no longer what limits a load test of a client in any language; the client and the kernel are.
"""

from __future__ import annotations

from typing import Any

import orjson

from infoway_mock import schemas
from infoway_mock.schemas.capture import header_len

from .catalogue import Catalogue
from .clock import Clock
from .config import ServerConfig
from .hub import Hub
from .market import Market
from .metrics import Metrics
from .outbox import Outbox
from .pump import Pump
from .replay import PUSH, Episode, Item, Timeline, push_key
from .session import DEPTH, TRADE, kline_channel

DEFAULT_START_MS = 1_786_000_000_000  # a fixed start, so a firehose is the same frames every time
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
ANY_BUSINESS = "*"


class _Sink:
    """A connection that keeps what the outbox writes to it (subscribed to everything)."""

    kind = "ws"
    ws_open = True
    conn_id = 0

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write_frames(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)

    def buffered(self) -> int:
        return 0


def render(
    cfg: ServerConfig,
    seconds: float,
    *,
    kline_types: tuple[int, ...] = tuple(range(1, 13)),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Timeline:
    """`seconds` of market time, every symbol of `cfg` (all of them unless cfg.symbols), trades, depth and
    klines at cfg's rates and intervals, as one template episode. Raises ValueError past `max_bytes`."""
    if not 0 < seconds <= 86_400:
        raise ValueError(f"--firehose takes 0 < SECONDS <= 86400, not {seconds}")
    start_ms = cfg.start_ms if cfg.start_ms is not None else DEFAULT_START_MS
    catalogue = Catalogue.default()
    if cfg.symbols:
        catalogue = catalogue.only(cfg.symbols)
    market = Market(
        cfg.seed,
        catalogue,
        start_ms=start_ms,
        trade_rate=cfg.trade_rate,
        max_trades_per_advance=cfg.max_trades_per_advance,
        market_hours=cfg.market_hours,
    )
    clock = Clock(1.0, start_ms)
    sink = _Sink()
    hub: Hub[Any] = Hub()
    for inst in catalogue.all():
        hub.add(TRADE, {inst.symbol}, sink)
        hub.add(DEPTH, {inst.symbol}, sink)
        for ty in kline_types:
            hub.add(kline_channel(ty), {inst.symbol}, sink)
    violations: list[str] = []

    def violation(frame: dict[str, Any], err: schemas.ContractError) -> None:
        if len(violations) < 100:
            violations.append(f"{err} frame={frame!r}"[:300])

    def failed(conn: Any, exc: BaseException) -> None:
        raise exc

    outbox = Outbox(
        Metrics(),
        strict=True,
        max_send_buffer=1 << 62,
        shaped={},
        on_violation=violation,
        on_slow=lambda conn: None,
        on_write_error=failed,
        wall_ms=clock.wall_ms,
    )
    pump = Pump(
        market,
        clock,
        hub,
        outbox,
        Metrics(),
        interval=cfg.pump_interval,
        depth_interval=cfg.depth_interval,
        kline_interval=cfg.kline_interval,
        is_open=market.is_open,
    )
    step_ms = max(1, round(cfg.pump_interval * 1000))
    end_ms = start_ms + round(seconds * 1000)
    items: list[Item] = []
    size = 0
    t = start_ms
    while t < end_ms:
        t = min(t + step_ms, end_ms)
        pump.step(t)
        at = (t - start_ms) / 1000
        for wire in sink.frames:
            obj = orjson.loads(wire[header_len(wire) :])
            key = push_key(obj)
            assert key is not None  # the sink only hears pushes
            items.append(Item(at, PUSH, wire, code=obj["code"], channel=key[0], key=key[1]))
            size += len(wire)
        sink.frames.clear()
        if size > max_bytes:
            raise ValueError(
                f"the firehose would hold over {max_bytes >> 20} MiB: render fewer seconds, "
                "fewer symbols (--config symbols) or a lower --trade-rate"
            )
    episode = Episode(1, "/ws", ANY_BUSINESS, 0.0, 0.0, True, items, end=seconds)
    header = {
        "capture": "infoway",
        "version": 1,
        "source": "firehose",
        "started": None,
        "seed": cfg.seed,
        "start_ms": start_ms,
        "seconds": seconds,
        "frames": len(items),
        "bytes": size,
    }
    return Timeline(
        "",
        header,
        {("/ws", ANY_BUSINESS): [episode]},
        violations=violations,
        template=True,
        duration=seconds,
    )
