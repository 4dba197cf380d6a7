"""The writer never blocks the event loop, reports how far behind it is, and reports disk failures."""

from __future__ import annotations

import asyncio
import errno
import time
from pathlib import Path

from recordings.reader import RecordingReader
from recordings.verify import verify
from recordings.writer import RecordingWriter
from tests.recordings.helpers import sql_header, sql_session


class SlowDiskWriter(RecordingWriter):
    """A writer whose disk takes 300 ms per fsync: a busy or network-backed volume."""

    def _fsync(self) -> None:
        time.sleep(0.3)
        super()._fsync()


class FullDiskWriter(RecordingWriter):
    """A writer whose disk fills up after the first chunk."""

    def _fsync(self) -> None:
        if self._seq > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        super()._fsync()


async def test_append_from_the_event_loop_never_waits_for_a_slow_disk(tmp_path: Path, signing_key) -> None:
    events = sql_session(2000)
    writer = SlowDiskWriter(
        tmp_path / "slow.hrec", sql_header(), signing_key, durability="chunk", chunk_max_bytes=131072
    )
    writer.start()
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    slowest_append = 0.0
    started = time.perf_counter()
    for number, event in enumerate(events):
        before = time.perf_counter()
        writer.append(list(event))
        slowest_append = max(slowest_append, time.perf_counter() - before)
        if number % 500 == 0:
            await asyncio.sleep(0)
    appending = time.perf_counter() - started
    backlog = writer.pending_events
    await asyncio.sleep(0.05)
    beat.cancel()

    assert backlog > 1000, "the disk thread kept up with a 300 ms fsync: the test proves nothing"
    assert writer.pending_bytes > 0
    assert appending < 1.0  # ten thousand appends, each a deque push
    # Neither an append nor the loop ever waited as long as one fsync (the margin absorbs a busy CI host).
    assert slowest_append < 0.25
    assert max(gaps) < 0.25, "the event loop stalled"

    await asyncio.to_thread(writer.close, [events[-1][0] + 1, "session.end", {"reason": "test"}])
    assert writer.error is None
    assert writer.pending_events == 0
    with RecordingReader(writer.path) as reader:
        assert reader.event_count == len(events) + 1
    assert verify(writer.path).status == "intact"


def test_a_disk_failure_is_reported_and_leaves_an_unsealed_file(tmp_path: Path, signing_key) -> None:
    writer = FullDiskWriter(
        tmp_path / "full.hrec", sql_header(), signing_key, durability="chunk", chunk_max_bytes=512
    )
    writer.start()
    for event in sql_session(200):
        writer.append(event)
    deadline = time.monotonic() + 10
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(writer.error, OSError) and writer.error.errno == errno.ENOSPC
    stranded = writer.pending_events
    for event in sql_session(200):
        writer.append(event)  # the proxy may not notice at once: appends must not pile up
    assert writer.pending_events == stranded
    writer.close()
    report = verify(writer.path)
    assert report.status == "unsealed" and report.chunks_intact >= 2


def test_batch_durability_seals_like_the_others(tmp_path: Path, signing_key) -> None:
    for mode in ("batch", "none", "chunk"):
        writer = RecordingWriter(tmp_path / f"{mode}.hrec", sql_header(), signing_key, durability=mode)
        writer.start()
        for event in sql_session(50):
            writer.append(event)
        writer.close()
        assert writer.error is None
        assert verify(writer.path).status == "intact"


def test_runs_packed_by_the_caller_read_back_in_order_with_single_events(tmp_path: Path, signing_key) -> None:
    """`append_trusted` (the relay's path) packs runs on the caller's thread: whatever the run's length (the
    msgpack array header it drops is 1, 3 or 5 bytes), mixed with `append`, cut into many chunks, every event
    reads back in order and the file verifies."""
    events = sql_session(70_000)
    writer = RecordingWriter(tmp_path / "runs.hrec", sql_header(), signing_key, chunk_max_bytes=4096)
    writer.start()
    position = 0
    for size in (1, 3, 15, 16, 200, 65_535, 65_536, 1, 0, 2):
        writer.append_trusted(events[position : position + size])
        position += size
        if position < len(events):
            writer.append(events[position])
            position += 1
    writer.append_trusted(events[position:])
    writer.close()
    assert writer.error is None
    assert verify(writer.path).status == "intact"
    with RecordingReader(writer.path) as reader:
        assert list(reader.iter_events()) == events
        assert len(list(reader.iter_chunks())) >= 3  # a run is never split: a chunk ends after one


def test_a_run_whose_times_go_backwards_is_stored_in_time_order(tmp_path: Path, signing_key) -> None:
    writer = RecordingWriter(tmp_path / "order.hrec", sql_header(), signing_key)
    writer.start()
    writer.append_trusted([[100, "pg.query", "SELECT 1"], [90, "pg.complete", "SELECT 1"], [95, "x", 1]])
    writer.append_trusted([[50, "pg.query", "SELECT 2"]])  # older than what is already stored
    writer.append_trusted([[300, "pg.query", "SELECT 3"], [200, "pg.complete", "SELECT 3"]])
    writer.close()
    with RecordingReader(writer.path) as reader:
        stamps = [event[0] for event in reader.iter_events()]
    assert stamps == [100, 100, 100, 100, 300, 300]


def test_a_run_whose_middle_event_goes_back_in_time_still_verifies(tmp_path: Path, signing_key) -> None:
    """[5, 3, 5]: first and last agree, the middle goes back; stored in time order, the file verifies deep."""
    writer = RecordingWriter(tmp_path / "dip.hrec", sql_header(), signing_key)
    writer.start()
    writer.append_trusted([[5, "pg.query", "SELECT 1"], [3, "pg.complete", "SELECT 1"], [5, "x", 1]])
    writer.close()
    assert writer.error is None
    with RecordingReader(writer.path) as reader:
        stamps = [event[0] for event in reader.iter_events()]
    assert stamps == sorted(stamps), f"stored out of time order: {stamps}"
    assert verify(writer.path, deep=True).ok
