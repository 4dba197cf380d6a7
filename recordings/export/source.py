"""Walking recordings for an export: events without keyframes, with progress counted in file bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from recordings import events as ev
from recordings.layout import FRAMING_SIZE
from recordings.reader import RecordingReader

# Called with the number of recording-file bytes just processed; the totals add up to the files' sizes.
ProgressCallback = Callable[[int], None]


def total_bytes(paths: list[Path]) -> int:
    return sum(path.stat().st_size for path in paths)


def iter_events(
    reader: RecordingReader, on_progress: ProgressCallback | None = None, *, keyframes: bool = False
) -> Iterator[list]:
    """Every event of ``reader`` in order (``screen.keyframe`` only when asked), reporting progress."""
    done = 0
    for info, events in reader.iter_chunks():
        for event in events:
            if keyframes or event[1] != ev.SCREEN_KEYFRAME:
                yield event
        if on_progress is not None:
            step = FRAMING_SIZE + info.length
            done += step
            on_progress(step)
    if on_progress is not None:
        on_progress(max(0, reader.file_size - done))


def started_at(reader: RecordingReader) -> datetime | None:
    """The session start from the header, or None when it is missing or malformed."""
    text = reader.header.get("started_at")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def event_time(start: datetime | None, t_us: int) -> str:
    """The wall-clock time of an event as UTC ISO 8601, or its offset when the start is unknown."""
    if start is None:
        return f"+{t_us / 1_000_000:.6f}s"
    return (start + timedelta(microseconds=t_us)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
