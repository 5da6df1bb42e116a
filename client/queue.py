"""A bounded event queue with an overflow policy; lifecycle events skip the line and are never dropped.

Events arrive in batches (everything one read of the socket decoded to) and the consumer is woken once
per batch, not once per event: that hand-off is most of what a consumer task costs per event.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
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
    """`maxsize` bounds the pushes held. Under "block" a producer that finds the queue full stops reading
    (back-pressure reaches the socket) until the consumer has drained it to half; the queue can then
    hold one read's worth of events past `maxsize`, never more. "drop-oldest" and "keep-latest" never
    stop the producer and count what they drop in `dropped`."""

    def __init__(self, maxsize: int = 10_000, policy: str = "block") -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self._low = maxsize // 2
        self._data: deque[Any] = deque()
        self._control: deque[Any] = deque()
        self._latest: dict[str, _Latest] = {}
        self._getter: asyncio.Future[None] | None = None
        self._room: list[Callable[[], Any]] = []  # producers waiting for the consumer to make room
        self._closed = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._data) + len(self._control)

    @property
    def full(self) -> bool:
        return len(self._data) >= self.maxsize

    def _wake_getter(self) -> None:
        # A waiter is forgotten once woken, so the hot paths test `is not None` and nothing more.
        g = self._getter
        if g is not None:
            self._getter = None
            if not g.done():
                g.set_result(None)

    def _made_room(self) -> None:
        waiting = list(self._room)
        self._room.clear()  # in place: the consumer's generator holds this very list
        for callback in waiting:
            callback()

    # -- producers ---------------------------------------------------------------------------------------

    def put_many(self, events: Iterable[Any]) -> bool:
        """Queue a batch without waiting and wake the consumer once. Returns False when, under "block",
        the queue is now full: the producer should stop until `when_room` calls back."""
        data = self._data
        if self.policy == "keep-latest":
            for ev in events:
                self._enqueue(ev)
        else:
            data.extend(events)
            if self.policy == "drop-oldest" and len(data) > self.maxsize:
                self._trim()
        if self._getter is not None:
            self._wake_getter()
        return len(data) < self.maxsize

    def when_room(self, callback: Callable[[], Any]) -> None:
        """Call `callback` once, as soon as the consumer has drained the queue to half its size."""
        if len(self._data) <= self._low:
            callback()
        else:
            self._room.append(callback)

    async def put(self, event: Any) -> None:
        """Queue one push; under "block" this waits for room."""
        while self.policy == "block" and len(self._data) >= self.maxsize:
            room = asyncio.get_running_loop().create_future()
            self.when_room(lambda f=room: f.done() or f.set_result(None))
            await room
        self._enqueue(event)
        self._wake_getter()

    def put_control(self, event: Any) -> None:
        """A lifecycle event: delivered before any queued push, never dropped."""
        self._control.append(event)
        self._wake_getter()

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
        self._data.append(event)
        if self.policy != "block" and len(self._data) > self.maxsize:
            self._trim()

    def _trim(self) -> None:
        data = self._data
        while len(data) > self.maxsize:
            old = data.popleft()
            if type(old) is _Latest:
                del self._latest[old.symbol]
            self.dropped += 1

    def close(self, error: BaseException | None = None) -> None:
        """No more events after those queued; `events()` raises `error` (if any) once drained."""
        self._closed = True
        if error is not None:
            self._error = error
        self._wake_getter()

    # -- the consumer ------------------------------------------------------------------------------------

    def get_nowait(self) -> Any:
        """The next event, or EMPTY: the consumer's fast path when events are already waiting."""
        if self._control:
            return self._control.popleft()
        data = self._data
        if not data:
            return EMPTY
        item = data.popleft()
        if self._room and len(data) <= self._low:
            self._made_room()
        if type(item) is _Latest:
            del self._latest[item.symbol]
            return item.event
        return item

    async def get(self) -> Any:
        """The next event; lifecycle first. Once closed and drained: the close error, or
        StopAsyncIteration."""
        while True:
            item = self.get_nowait()
            if item is not EMPTY:
                return item
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter

    async def events(self) -> AsyncIterator[Any]:
        """Every event until closed and drained, then the close error if there was one. get() as a
        generator, with get_nowait's fast path inlined: resuming one generator per event is the
        cheapest way to hand events over."""
        data, control, latest, room = self._data, self._control, self._latest, self._room
        popleft = data.popleft
        while True:
            if control:
                yield control.popleft()
            elif data:
                item = popleft()
                if room and len(data) <= self._low:
                    self._made_room()
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
