"""Reading a recording file off the event loop: batches of events, following the file as it grows.

A thread runs `RecordingReader.follow` and hands batches to the event loop through a bounded hand-off, so a
slow viewer slows the reading thread instead of filling memory. The thread stops within a poll interval of
the consumer going away.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from recordings.events import SCREEN_KEYFRAME
from recordings.reader import RecordingReader

BATCH_EVENTS = 256
HANDOFF_DEPTH = 8
POLL_INTERVAL = 0.1
_DONE = object()


class RecordingTailError(Exception):
    """The recording could not be read; one line."""


class _Handoff:
    """Thread → event loop, at most `HANDOFF_DEPTH` batches in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.slots = threading.Semaphore(HANDOFF_DEPTH)
        self.stopped = threading.Event()

    def put(self, item: Any) -> bool:
        """From the thread; False once the consumer is gone."""
        while not self.stopped.is_set():
            if self.slots.acquire(timeout=0.25):
                try:
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
                except RuntimeError:  # the loop is closed
                    self.stopped.set()
                    return False
                return True
        return False

    async def get(self) -> Any:
        item = await self.queue.get()
        self.slots.release()
        return item


def _read(path: Path, handoff: _Handoff, limit: int | None, idle_timeout: float | None, follow: bool) -> None:
    batch: list[list] = []
    counted = 0

    def flush() -> bool:
        nonlocal batch
        if batch:
            delivered, batch = handoff.put(batch), []
            return delivered
        return True

    def should_stop() -> bool:
        # follow() asks just before it sleeps: everything on disk so far has been read, so hand it over now.
        return not flush() or handoff.stopped.is_set() or not follow

    try:
        with RecordingReader(path) as reader:
            if limit != 0:
                for event in reader.follow(POLL_INTERVAL, stop=should_stop, idle_timeout=idle_timeout):
                    batch.append(event)
                    if event[1] != SCREEN_KEYFRAME:  # written by the writer itself, never appended
                        counted += 1
                    if limit is not None and counted >= limit:
                        break
                    if len(batch) >= BATCH_EVENTS and not flush():
                        return
            flush()
    except Exception as error:
        handoff.put(RecordingTailError(f"cannot read the recording {path.name}: {error}"))
    finally:
        handoff.put(_DONE)


async def recording_batches(
    path: Path, *, limit: int | None = None, idle_timeout: float | None = None, follow: bool = True
) -> AsyncGenerator[list[list], None]:
    """Batches of the recording's events from its start.

    Ends after `limit` appended events (screen keyframes the writer adds are passed on but not counted),
    when the file is sealed, after `idle_timeout` seconds without a new chunk, or, without `follow`, as
    soon as what is on disk now has been read.
    """
    handoff = _Handoff(asyncio.get_running_loop())
    thread = threading.Thread(
        target=_read, args=(path, handoff, limit, idle_timeout, follow), name="hoop-control-tail", daemon=True
    )
    thread.start()
    try:
        while True:
            item = await handoff.get()
            if item is _DONE:
                return
            if isinstance(item, RecordingTailError):
                raise item
            yield item
    finally:
        handoff.stopped.set()
        handoff.slots.release()  # wakes a reading thread that waits for a free slot, so it sees the stop
