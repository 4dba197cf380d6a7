"""Write then read: the same events come back, in order, from sealed and growing files."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recordings.errors import RecordingClosedError, RecordingFormatError
from recordings.reader import RecordingReader, read_header
from recordings.verify import verify
from recordings.writer import RecordingWriter
from tests.recordings.helpers import sql_header, sql_session, write_recording

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=200),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
kinds = st.sampled_from(
    ["pg.query", "pg.rows", "ssh.output", "policy.decision", "future.kind", "x"]
) | st.text(min_size=1, max_size=12)


@st.composite
def event_lists(draw: st.DrawFn) -> list[list]:
    deltas = draw(st.lists(st.integers(min_value=0, max_value=5_000_000), max_size=120))
    events = []
    t_us = 0
    for delta in deltas:
        t_us += delta
        events.append([t_us, draw(kinds), *draw(st.lists(values, max_size=3))])
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_lists(), chunk_max_bytes=st.integers(min_value=1, max_value=4096))
def test_written_events_read_back_identically(signing_key, events: list[list], chunk_max_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_recording(
            Path(directory) / "r.hrec", events, signing_key, chunk_max_bytes=chunk_max_bytes
        )
        with RecordingReader(path) as reader:
            assert reader.sealed
            assert list(reader.iter_events()) == events
            assert reader.event_count == len(events)
            assert reader.duration_us == (events[-1][0] if events else 0)
            assert sum(chunk.event_count for chunk in reader.chunks) == len(events)
            for index in range(0, len(events), 7):
                assert reader.event_at(index) == events[index]
        assert verify(path).status == "intact"


def test_header_keeps_caller_keys_and_adds_format_keys(tmp_path: Path, signing_key) -> None:
    header = sql_header(custom_field={"ticket": "OPS-1"}, started_at="2030-01-02T03:04:05Z")
    path = write_recording(tmp_path / "h.hrec", [[0, "pg.query", "SELECT 1"]], signing_key, header)
    stored = read_header(path)
    assert stored["custom_field"] == {"ticket": "OPS-1"}
    assert stored["started_at"] == "2030-01-02T03:04:05Z"
    assert stored["session_id"] == "sess-sql-1" and stored["groups"] == ["ci-agents"]
    assert stored["format_version"] == 1
    assert len(stored["signing_public_key"]) == 32
    assert stored["signing_key_fingerprint"].startswith("SHA256:")


def test_header_without_identity_is_refused(tmp_path: Path, signing_key) -> None:
    header = sql_header()
    del header["identity"]
    with pytest.raises(ValueError, match="identity"):
        RecordingWriter(tmp_path / "x.hrec", header, signing_key)


def test_an_existing_file_is_never_overwritten(tmp_path: Path, signing_key) -> None:
    path = tmp_path / "taken.hrec"
    path.write_bytes(b"evidence")
    writer = RecordingWriter(path, sql_header(), signing_key)
    with pytest.raises(FileExistsError):
        writer.start()
    assert path.read_bytes() == b"evidence"


def test_late_timestamps_are_clamped_so_time_never_goes_back(tmp_path: Path, signing_key) -> None:
    events = [[100, "a"], [50, "b"], [-7, "c"], [300, "d"]]
    path = write_recording(tmp_path / "c.hrec", events, signing_key, chunk_max_bytes=1)
    with RecordingReader(path) as reader:
        assert [event[0] for event in reader.iter_events()] == [100, 100, 100, 300]


def test_malformed_events_are_refused_at_append(tmp_path: Path, signing_key) -> None:
    writer = RecordingWriter(tmp_path / "m.hrec", sql_header(), signing_key, durability="none")
    writer.start()
    for bad in ([], [1.5, "x"], ["1", "x"], [1, 2], "text"):
        with pytest.raises(TypeError):
            writer.append(bad)  # type: ignore[arg-type]
    writer.close()
    with pytest.raises(RecordingClosedError):
        writer.append([1, "late"])
    with RecordingReader(writer.path) as reader:
        assert reader.event_count == 0 and reader.sealed


def test_chunks_are_cut_by_time_when_traffic_is_slow(tmp_path: Path, signing_key) -> None:
    writer = RecordingWriter(
        tmp_path / "t.hrec", sql_header(), signing_key, durability="none", chunk_max_seconds=0.05
    )
    writer.start()
    writer.append([0, "pg.query", "SELECT 1"])
    deadline = time.monotonic() + 5
    while writer.pending_events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.pending_events == 0, "the chunk was not cut by time"
    with RecordingReader(writer.path) as reader:  # readable while still being written
        assert not reader.sealed
        assert list(reader.iter_events()) == [[0, "pg.query", "SELECT 1"]]
    writer.close()


def test_follow_yields_chunks_as_they_land_then_stops_at_the_seal(tmp_path: Path, signing_key) -> None:
    events = sql_session(300)
    writer = RecordingWriter(
        tmp_path / "live.hrec",
        sql_header(),
        signing_key,
        durability="none",
        chunk_max_bytes=512,
        chunk_max_seconds=0.05,
    )
    writer.start()
    writer.append(events[0])
    deadline = time.monotonic() + 5
    while writer.pending_events and time.monotonic() < deadline:
        time.sleep(0.01)

    def produce() -> None:
        for event in events[1:]:
            writer.append(event)
            if event[1] == "pg.complete":
                time.sleep(0.0005)
        writer.close()

    with RecordingReader(writer.path) as reader:
        assert not reader.sealed
        producer = threading.Thread(target=produce)
        producer.start()
        seen = list(reader.follow(poll_interval=0.01, idle_timeout=10))
        producer.join()
        assert seen == events
        assert reader.sealed


def test_a_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.hrec"
    path.write_text("hello, this is not a recording")
    with pytest.raises(RecordingFormatError, match="not a hoop recording"):
        RecordingReader(path)
