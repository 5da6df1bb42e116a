"""`make demo`: start the mock and print live trades, depth and klines for a few symbols.

Uses the reference client against an in-process mock, so one command shows both working together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from infoway_mock.client import InfowayClient
from infoway_mock.client.events import Depth, Kline, Trade
from infoway_mock.mockserver.config import ServerConfig
from infoway_mock.mockserver.server import MockServer


async def main(host: str, port: int, limit: int) -> None:
    async with MockServer(ServerConfig(host=host, port=port, strict=True)) as srv:
        print(f"mock serving {srv.ws_url('crypto')}")
        async with InfowayClient(srv.ws_url("crypto")) as client:
            await client.subscribe_trades(["BTCUSDT", "ETHUSDT"])
            await client.subscribe_depth(["BTCUSDT"])
            await client.subscribe_klines(["BTCUSDT"], [1])
            n = 0
            async for event in client:
                if isinstance(event, Trade):
                    print(f"trade  {event.symbol:8} {event.price:>12} x {event.volume}")
                elif isinstance(event, Depth):
                    print(f"depth  {event.symbol:8} bid {event.bids[0][0]} / ask {event.asks[0][0]}")
                elif isinstance(event, Kline):
                    print(
                        f"kline  {event.symbol:8} 1m o={event.open} h={event.high} "
                        f"l={event.low} c={event.close}"
                    )
                else:
                    print(f"event  {event}")
                    continue
                n += 1
                if limit and n >= limit:
                    break


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--limit", type=int, default=0, help="stop after this many pushes (0 = until Ctrl-C)")
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port, args.limit))
