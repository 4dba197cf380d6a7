"""Follows a store's approval change log and fans each change out to decision waiters and watchers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proxy.store.base import PENDING, ApprovalRecord, RecordNotFound, StoreUnavailable

log = logging.getLogger("hoop.store")

WATCH_QUEUE_SIZE = 4096
FETCH_BATCH = 500
SEEN_WINDOW = 10_000  # change numbers remembered for de-duplication when a backend re-reads a lookback window
_FAILURE_LOG_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class ApprovalChange:
    """One entry of the change log: its sequence number and the request as of that change."""

    seq: int
    record: ApprovalRecord


# Changes with seq above the cursor, oldest first; a backend may also return some at or below it (they are
# de-duplicated), which is how PostgreSQL catches commits that finished out of sequence order.
FetchChanges = Callable[[int, int], Awaitable[list[ApprovalChange]]]  # (cursor, limit)
LatestSeq = Callable[[], Awaitable[int]]


class _End:
    """Marks the end of a watch."""


_END = _End()


class ApprovalWatch:
    """Async iterator over approval creations and decisions; ends on `aclose()` or when the store closes."""

    def __init__(self, registry: weakref.WeakSet[ApprovalWatch], maxsize: int = WATCH_QUEUE_SIZE) -> None:
        self._queue: asyncio.Queue[ApprovalRecord | _End] = asyncio.Queue(maxsize)
        self._registry = registry
        self._finished = False
        self._warned_overflow = False
        registry.add(self)

    def __aiter__(self) -> ApprovalWatch:
        return self

    async def __anext__(self) -> ApprovalRecord:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._finished = True
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        self._registry.discard(self)
        self.end()

    def push(self, record: ApprovalRecord) -> None:
        if self._queue.full():
            # A watcher that stopped reading must not grow memory without bound; it can re-list to catch up.
            self._queue.get_nowait()
            if not self._warned_overflow:
                log.warning(
                    "an approvals watcher fell %d changes behind; dropping its oldest", WATCH_QUEUE_SIZE
                )
                self._warned_overflow = True
        self._queue.put_nowait(record)

    def end(self) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)


class ApprovalFeed:
    """One follower task per store. Wake it after a local change; otherwise it polls every poll_interval()."""

    def __init__(self, fetch_after: FetchChanges, latest_seq: LatestSeq, poll_interval: Callable[[], float]):
        self._fetch_after = fetch_after
        self._latest_seq = latest_seq
        self._poll_interval = poll_interval
        self._cursor = 0
        self._seen: set[int] = set()
        self._waiters: dict[str, set[asyncio.Future[ApprovalRecord]]] = {}
        self._watches: weakref.WeakSet[ApprovalWatch] = weakref.WeakSet()
        self._woken = False
        self._sleeper: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_failure_log = 0.0

    async def start(self) -> None:
        """Take the current end of the change log as the cursor, then follow it. Only new changes fan out."""
        self._loop = asyncio.get_running_loop()
        self._cursor = await self._latest_seq()
        self._task = asyncio.create_task(self._follow(), name="hoop-store-approval-feed")

    def wake(self) -> None:
        self._woken = True
        sleeper = self._sleeper
        if sleeper is not None and not sleeper.done():
            sleeper.set_result(None)

    def wake_threadsafe(self) -> None:
        """Wake from any thread (another store on the same SQLite file may live on another event loop)."""
        loop = self._loop
        if loop is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # that loop has already been closed
            loop.call_soon_threadsafe(self.wake)

    def waiter(self, approval_id: str) -> asyncio.Future[ApprovalRecord]:
        """A future resolved with the record when `approval_id` leaves pending. Release it when done."""
        future: asyncio.Future[ApprovalRecord] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(StoreUnavailable("the state store is closed"))
        else:
            self._waiters.setdefault(approval_id, set()).add(future)
        return future

    def release_waiter(self, approval_id: str, future: asyncio.Future[ApprovalRecord]) -> None:
        waiting = self._waiters.get(approval_id)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiters[approval_id]
        if not future.done():
            future.cancel()

    def watch(self) -> ApprovalWatch:
        """Every change fanned out from now on (which may include one committed just before this call)."""
        watch = ApprovalWatch(self._watches)
        if self._closed:
            watch.end()
        return watch

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for watch in list(self._watches):
            watch.end()
        self._watches.clear()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(StoreUnavailable("the state store was closed while waiting"))
        self._waiters.clear()

    async def _follow(self) -> None:
        while True:
            await self._sleep(self._poll_interval())
            self._woken = False  # before reading: a change made during the read wakes the next round
            try:
                await self.catch_up()
            except StoreUnavailable as error:
                self._log_failure(str(error))
            except Exception:  # a bug here must not silently stop every waiter from ever being released
                log.exception("approval feed failed; retrying")
                await asyncio.sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        """Until woken or `seconds` pass: one future and one timer, no task per round."""
        if self._woken:
            return
        loop = asyncio.get_running_loop()
        sleeper: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _settle, sleeper)
        self._sleeper = sleeper
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleeper = None

    async def catch_up(self) -> None:
        """Read and fan out everything after the cursor."""
        while True:
            changes = await self._fetch_after(self._cursor, FETCH_BATCH)
            for change in changes:
                if change.seq not in self._seen:
                    self._seen.add(change.seq)
                    self._dispatch(change.record)
            newest = max((change.seq for change in changes), default=self._cursor)
            advanced = newest > self._cursor
            self._cursor = max(self._cursor, newest)
            if len(self._seen) > 2 * SEEN_WINDOW:
                floor = self._cursor - SEEN_WINDOW
                self._seen = {seq for seq in self._seen if seq > floor}
            if len(changes) < FETCH_BATCH or not advanced:
                return

    def _dispatch(self, record: ApprovalRecord) -> None:
        for watch in list(self._watches):
            watch.push(record)
        if record.state == PENDING:
            return
        for future in self._waiters.get(record.id, ()):
            if not future.done():
                future.set_result(record)

    def _log_failure(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= _FAILURE_LOG_INTERVAL:
            self._last_failure_log = now
            log.warning("approval feed cannot read the store (%s); still retrying", reason)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def await_decision(
    feed: ApprovalFeed,
    get_approval: Callable[[str], Awaitable[ApprovalRecord | None]],
    approval_id: str,
    timeout: float,
) -> ApprovalRecord:
    """The record once it leaves pending, or as it stands when `timeout` seconds have passed."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or math.isnan(timeout):
        raise ValueError("timeout must be a number of seconds")
    # Subscribe before reading, so a decision landing between the read and the wait is not missed.
    future = feed.waiter(approval_id)
    try:
        record = await get_approval(approval_id)
        if record is None:
            raise RecordNotFound(f"no approval request {approval_id!r}")
        if record.state != PENDING or timeout <= 0:
            return record
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if math.isinf(timeout) else timeout):
                return await future
        record = await get_approval(approval_id)
        if record is None:  # requests are never deleted; a vanished one means the store was replaced
            raise StoreUnavailable(f"approval request {approval_id!r} disappeared from the store")
        return record
    finally:
        feed.release_waiter(approval_id, future)
