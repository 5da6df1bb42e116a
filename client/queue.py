"""A bounded event queue with an overflow policy; lifecycle events skip the line and are never dropped."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from .events import Depth

POLICIES = ("block", "drop-oldest", "keep-latest")
EMPTY = object()


class _Latest:
    """A queue slot holding the newest depth of one symbol; newer snapshots overwrite it in place."""

    __slots__ = ("event", "symbol")

    def __init__(self, symbol: str, event: Any) -> None:
        self.symbol, self.event = symbol, event


class EventQueue:
    def __init__(self, maxsize: int = 10_000, policy: str = "block") -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self._data: deque[Any] = deque()
        self._control: deque[Any] = deque()
        self._latest: dict[str, _Latest] = {}
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._data) + len(self._control)

    # A waiter is forgotten once woken, so the hot paths test `is not None` and nothing more.
    def _wake_getter(self) -> None:
        g = self._getter
        if g is not None:
            self._getter = None
            if not g.done():
                g.set_result(None)

    def _wake_putter(self) -> None:
        p = self._putter
        if p is not None:
            self._putter = None
            if not p.done():
                p.set_result(None)

    def offer(self, event: Any) -> bool:
        """Queue a push without waiting; False only under "block" with the queue full (then await put)."""
        data = self._data
        if len(data) < self.maxsize and (self.policy != "keep-latest" or type(event) is not Depth):
            data.append(event)
            if self._getter is not None:
                self._wake_getter()
            return True
        if self.policy == "block":
            return False
        self._enqueue(event)
        return True

    def _enqueue(self, event: Any) -> None:
        """Append, making room by the policy: keep-latest folds depth per symbol, else the oldest goes."""
        if self.policy == "keep-latest" and type(event) is Depth:
            slot = self._latest.get(event.symbol)
            if slot is not None:
                slot.event = event
                self.dropped += 1
                return
            slot = self._latest[event.symbol] = _Latest(event.symbol, event)
            event = slot
        data = self._data
        while len(data) >= self.maxsize:
            old = data.popleft()
            if type(old) is _Latest:
                del self._latest[old.symbol]
            self.dropped += 1
        data.append(event)
        self._wake_getter()

    def get_nowait(self) -> Any:
        """The next event, or EMPTY: the consumer's fast path when events are already waiting."""
        if self._control:
            return self._control.popleft()
        data = self._data
        if not data:
            return EMPTY
        item = data.popleft()
        if self._putter is not None:
            self._wake_putter()
        if type(item) is _Latest:
            del self._latest[item.symbol]
            return item.event
        return item

    async def put(self, event: Any) -> None:
        """Queue a push; under "block" this waits for room (back-pressure reaches the socket)."""
        while self.policy == "block" and len(self._data) >= self.maxsize:
            self._putter = asyncio.get_running_loop().create_future()
            await self._putter
        self._enqueue(event)

    def put_control(self, event: Any) -> None:
        self._control.append(event)
        self._wake_getter()

    def close(self, error: BaseException | None = None) -> None:
        """No more events after those queued; `events()` raises `error` (if any) once drained."""
        self._closed = True
        if error is not None:
            self._error = error
        self._wake_getter()

    async def get(self) -> Any:
        """The next event; lifecycle first. Raises StopAsyncIteration once closed and drained."""
        while True:
            item = self.get_nowait()
            if item is not EMPTY:
                return item
            if self._closed:
                raise StopAsyncIteration
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter

    async def events(self) -> AsyncIterator[Any]:
        """Every event until closed and drained: get() as a generator, with get_nowait's fast path
        inlined, since resuming one generator per event is the cheapest way to hand events over."""
        data, control, latest = self._data, self._control, self._latest
        popleft = data.popleft
        while True:
            if control:
                yield control.popleft()
            elif data:
                item = popleft()
                if self._putter is not None:
                    self._wake_putter()
                if type(item) is _Latest:
                    del latest[item.symbol]
                    item = item.event
                yield item
            elif self._closed:
                if self._error is not None:
                    raise self._error
                return
            else:
                self._getter = asyncio.get_running_loop().create_future()
                await self._getter
