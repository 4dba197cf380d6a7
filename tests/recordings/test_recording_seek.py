"""Seeking by time or position agrees with a full read, sealed or not, and reads one chunk, not the file."""

from __future__ import annotations

import bisect
import random
from pathlib import Path

import pytest

import recordings.reader as reader_module
from recordings.reader import RecordingReader
from tests.recordings.helpers import sql_session, write_recording


@pytest.fixture
def recorded(tmp_path: Path, signing_key) -> tuple[Path, list[list]]:
    events = sql_session(600)
    path = write_recording(tmp_path / "s.hrec", events, signing_key, chunk_max_bytes=2048)
    return path, events


def _unsealed_copy(path: Path, tmp_path: Path) -> Path:
    with RecordingReader(path) as reader:
        seal_offset = reader.chunks[-1].offset + 9 + reader.chunks[-1].length
    copy = tmp_path / "unsealed.hrec"
    copy.write_bytes(path.read_bytes()[:seal_offset])
    return copy


@pytest.mark.parametrize("sealed", [True, False])
def test_seek_and_windows_match_a_full_read(recorded, tmp_path: Path, sealed: bool) -> None:
    path, events = recorded
    if not sealed:
        path = _unsealed_copy(path, tmp_path)
    times = [event[0] for event in events]
    rng = random.Random(3)
    instants = [
        0,
        times[-1],
        times[-1] + 1,
        -5,
        *rng.sample(times, 40),
        *(rng.randint(0, times[-1]) for _ in range(40)),
    ]
    with RecordingReader(path) as reader:
        assert reader.sealed is sealed
        assert len(reader.chunks) > 20
        for instant in instants:
            expected = events[bisect.bisect_left(times, instant) :]
            assert list(reader.seek(instant)) == expected, instant
        for _ in range(30):
            start, end = sorted(rng.randint(0, times[-1]) for _ in range(2))
            expected = [event for event in events if start <= event[0] < end]
            assert list(reader.iter_events(start, end)) == expected
        for index in [0, len(events) - 1, -1, *rng.sample(range(len(events)), 50)]:
            assert reader.event_at(index) == events[index]
        with pytest.raises(IndexError):
            reader.event_at(len(events))


def test_seek_decompresses_one_chunk_not_the_whole_file(recorded, tmp_path: Path, monkeypatch) -> None:
    path, events = recorded
    unsealed = _unsealed_copy(path, tmp_path)
    calls: list[int] = []
    real = reader_module.decompress_frame

    def counting(frame: bytes, raw_length: int) -> bytes:
        calls.append(raw_length)
        return real(frame, raw_length)

    monkeypatch.setattr(reader_module, "decompress_frame", counting)
    middle = events[len(events) // 2]
    for candidate in (path, unsealed):
        calls.clear()
        with RecordingReader(candidate) as reader:
            assert next(reader.seek(middle[0]))[0] == middle[0]
            assert len(calls) == 1
            calls.clear()
            assert reader.event_at(len(events) // 3) == events[len(events) // 3]
            assert len(calls) == 1
