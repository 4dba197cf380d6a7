"""A bounded FIFO from a producer on one event loop to a consumer on another (or the same) loop.

The embedded TUI runs its own event loop while the gateway runs on another thread's loop; streams cross
between them here. Neither side ever blocks its loop: each waits on an asyncio.Event of its own loop, set
by the other side through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

DEFAULT_CAPACITY = 1024


class CrossLoopChannel:
    """`put` on the producer's loop, `get` on the consumer's; `close` ends it (get then raises EOFError)."""

    def __init__(
        self,
        producer_loop: asyncio.AbstractEventLoop,
        consumer_loop: asyncio.AbstractEventLoop,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._producer_loop = producer_loop
        self._consumer_loop = consumer_loop
        self._capacity = capacity
        self._items: deque[Any] = deque()  # append/popleft are atomic: no lock needed between the threads
        self._data = asyncio.Event()  # waited on by the consumer's loop only
        self._space = asyncio.Event()  # waited on by the producer's loop only
        self._consumer_waiting = False
        self._producer_waiting = False
        self._closed = False

    @staticmethod
    def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is left to wake
            loop.call_soon_threadsafe(event.set)

    async def put(self, item: Any) -> bool:
        """From the producer's loop; waits while the channel is full. False once the channel is closed."""
        while len(self._items) >= self._capacity and not self._closed:
            self._space.clear()
            self._producer_waiting = True
            if len(self._items) < self._capacity or self._closed:
                break
            await self._space.wait()
        self._producer_waiting = False
        if self._closed:
            return False
        self._items.append(item)
        if self._consumer_waiting:
            self._wake(self._consumer_loop, self._data)
        return True

    async def get(self) -> Any:
        """From the consumer's loop; EOFError once the channel is closed and drained."""
        while True:
            if self._items:
                item = self._items.popleft()
                if self._producer_waiting:
                    self._wake(self._producer_loop, self._space)
                return item
            if self._closed:
                raise EOFError
            self._data.clear()
            self._consumer_waiting = True
            if self._items or self._closed:
                self._consumer_waiting = False
                continue
            await self._data.wait()
            self._consumer_waiting = False

    def close(self) -> None:
        """From either side: wakes both, drops nothing already queued."""
        self._closed = True
        self._wake(self._consumer_loop, self._data)
        self._wake(self._producer_loop, self._space)
