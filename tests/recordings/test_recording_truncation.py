"""A file cut short by a crash reads up to its last whole chunk; verify calls it unsealed with that count."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.reader import RecordingReader
from recordings.verify import verify_stream
from tests.recordings.helpers import sql_session, write_recording


def _whole_chunks_before(reader: RecordingReader, cut: int) -> int:
    ends = [chunk.offset + 9 + chunk.length for chunk in reader.chunks]
    return sum(1 for end in ends if end <= cut)


def _check_cut(
    data: bytes, cut: int, path: Path, full_events: list[list], chunk_ends: list[tuple[int, int]]
) -> None:
    truncated = data[:cut]
    whole = sum(1 for end, _ in chunk_ends if end <= cut)
    expected_events = chunk_ends[whole - 1][1] if whole else 0
    report = verify_stream(io.BytesIO(truncated), name="cut")
    assert report.status == "unsealed", (cut, report)
    assert report.chunks_intact == whole, (cut, report)
    path.write_bytes(truncated)
    with RecordingReader(path) as reader:
        assert not reader.sealed
        assert len(reader.chunks) == whole
        assert list(reader.iter_events()) == full_events[:expected_events]


def _layout(path: Path) -> tuple[bytes, list[tuple[int, int]], list[list], int]:
    with RecordingReader(path) as reader:
        ends = [(c.offset + 9 + c.length, c.first_event + c.event_count) for c in reader.chunks]
        events = list(reader.iter_events())
        header_end = reader.chunks[0].offset
    return path.read_bytes(), ends, events, header_end


def test_every_cut_in_the_last_chunks_and_seal_reads_the_whole_chunks(tmp_path: Path, signing_key) -> None:
    source = write_recording(tmp_path / "full.hrec", sql_session(45), signing_key, chunk_max_bytes=700)
    data, ends, events, _ = _layout(source)
    assert len(ends) >= 6
    first_cut = ends[-4][0] - 1  # three whole chunks, the seal and the trailer: every byte offset
    for cut in range(first_cut, len(data)):
        _check_cut(data, cut, tmp_path / "cut.hrec", events, ends)


def test_cuts_inside_the_header_are_unsealed_with_no_chunks(tmp_path: Path, signing_key) -> None:
    source = write_recording(tmp_path / "full.hrec", sql_session(5), signing_key)
    data, _, _, header_end = _layout(source)
    for cut in range(0, header_end + 1):
        report = verify_stream(io.BytesIO(data[:cut]), name="cut")
        assert report.status == "unsealed" and report.chunks_intact == 0, (cut, report)


def test_zeros_left_by_a_torn_write_count_as_a_cut(tmp_path: Path, signing_key) -> None:
    source = write_recording(tmp_path / "full.hrec", sql_session(60), signing_key, chunk_max_bytes=500)
    data, ends, events, _ = _layout(source)
    cut = ends[2][0]
    torn = data[:cut] + bytes(700)
    report = verify_stream(io.BytesIO(torn), name="torn")
    assert (report.status, report.chunks_intact) == ("unsealed", 3)
    path = tmp_path / "torn.hrec"
    path.write_bytes(torn)
    with RecordingReader(path) as reader:
        assert list(reader.iter_events()) == events[: ends[2][1]]


@settings(max_examples=40, deadline=None)
@given(
    sessions=st.integers(min_value=1, max_value=80),
    chunk_max_bytes=st.integers(min_value=200, max_value=3000),
    cut_fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_random_recordings_cut_anywhere(
    signing_key, sessions: int, chunk_max_bytes: int, cut_fraction: float
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        source = write_recording(
            root / "full.hrec",
            sql_session(sessions, seed=sessions),
            signing_key,
            chunk_max_bytes=chunk_max_bytes,
        )
        data, ends, events, header_end = _layout(source)
        cut = header_end + int(cut_fraction * (len(data) - header_end))
        _check_cut(data, cut, root / "cut.hrec", events, ends)
