"""Reading recordings: header, chunk index, events by time or position, terminal frames, and a live tail.

A sealed file's index comes from its seal (found through the trailer, one read at the end of the file). An
unsealed file -- still being written, or cut short by a crash -- is indexed by walking the chunk prefixes
(one small read per chunk, no decompression) up to the last whole chunk. Only the chunks an operation needs
are read and decompressed, so files of any size open in milliseconds.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from recordings import events as ev
from recordings.chunkcodec import decompress_frame, unpack_events, unpack_map
from recordings.errors import RecordingFormatError
from recordings.layout import (
    BLOCK_CHUNK,
    BLOCK_HEADER,
    BLOCK_SEAL,
    BLOCK_TRAILER,
    CHUNK_PREFIX_SIZE,
    FRAMING_SIZE,
    INDEX_COLUMNS,
    PREAMBLE,
    TRAILER_BLOCK_SIZE,
    ZERO_FRAMING,
    ChunkMeta,
    check_preamble,
    decode_framing,
    decode_trailer_payload,
    split_chunk_payload,
    unpack_column,
)
from recordings.terminal import DEFAULT_COLS, DEFAULT_ROWS, ScreenFrame, TerminalModel, apply_terminal_event

_CACHED_CHUNKS = 4
_SCAN_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """Where one chunk is and what it covers."""

    seq: int
    offset: int
    length: int
    first_t: int
    last_t: int
    event_count: int
    first_event: int


class ChunkIndex(Sequence[ChunkInfo]):
    """The chunk index as columns (cheap to hold for 100k+ chunks); items are built on access."""

    def __init__(self, columns: dict[str, array] | None = None) -> None:
        self.columns = columns or {name: array(typecode) for name, typecode in INDEX_COLUMNS.items()}

    def __len__(self) -> int:
        return len(self.columns["offset"])

    @overload
    def __getitem__(self, index: int) -> ChunkInfo: ...
    @overload
    def __getitem__(self, index: slice) -> list[ChunkInfo]: ...
    def __getitem__(self, index: int | slice) -> ChunkInfo | list[ChunkInfo]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("chunk index out of range")
        c = self.columns
        return ChunkInfo(
            index,
            c["offset"][index],
            c["length"][index],
            c["first_t"][index],
            c["last_t"][index],
            c["event_count"][index],
            c["first_event"][index],
        )

    def append(self, offset: int, length: int, meta: ChunkMeta) -> None:
        c = self.columns
        first_event = c["first_event"][-1] + c["event_count"][-1] if len(self) else 0
        c["offset"].append(offset)
        c["length"].append(length)
        c["first_t"].append(meta.first_t)
        c["last_t"].append(meta.last_t)
        c["event_count"].append(meta.event_count)
        c["first_event"].append(first_event)

    @property
    def total_events(self) -> int:
        c = self.columns
        return c["first_event"][-1] + c["event_count"][-1] if len(self) else 0


class RecordingReader:
    """One recording file, open for reading. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()/__exit__
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    # -- opening -----------------------------------------------------------------------------------------

    def _read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._file.fileno(), size, offset)

    def _file_size(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def _open(self) -> None:
        preamble = self._read_at(0, len(PREAMBLE))
        check_preamble(preamble)
        framing = self._read_at(len(PREAMBLE), FRAMING_SIZE)
        if len(framing) < FRAMING_SIZE:
            raise RecordingFormatError("file ends before its header")
        block_type, length = decode_framing(framing)
        if block_type != BLOCK_HEADER:
            raise RecordingFormatError("the first block is not a header")
        header_end = len(PREAMBLE) + FRAMING_SIZE + length
        payload = self._read_at(len(PREAMBLE) + FRAMING_SIZE, length)
        if len(payload) < length:
            raise RecordingFormatError("file ends inside its header")
        self.header: dict[str, Any] = unpack_map(payload, "header")
        self.header_hash = hashlib.sha256(self._read_at(0, header_end)).digest()
        self._header_end = header_end
        self._scan_offset = header_end
        self._cache: OrderedDict[int, list[list]] = OrderedDict()
        self.seal: dict[str, Any] | None = None
        self.chunks = ChunkIndex()
        # Why indexing an unsealed file stopped before the end of the file, when it was not a clean cut.
        self.scan_problem: str | None = None
        if not self._load_seal():
            self._scan_chunks()

    def _load_seal(self) -> bool:
        size = self._file_size()
        if size < self._header_end + FRAMING_SIZE + TRAILER_BLOCK_SIZE:
            return False
        trailer = self._read_at(size - TRAILER_BLOCK_SIZE, TRAILER_BLOCK_SIZE)
        try:
            if decode_framing(trailer[:FRAMING_SIZE])[0] != BLOCK_TRAILER:
                return False
            seal_offset = decode_trailer_payload(trailer[FRAMING_SIZE:])
            if not self._header_end <= seal_offset <= size - TRAILER_BLOCK_SIZE - FRAMING_SIZE:
                return False
            block_type, length = decode_framing(self._read_at(seal_offset, FRAMING_SIZE))
            if block_type != BLOCK_SEAL or seal_offset + FRAMING_SIZE + length != size - TRAILER_BLOCK_SIZE:
                return False
            envelope = unpack_map(self._read_at(seal_offset + FRAMING_SIZE, length), "seal")
            seal = unpack_map(envelope["body"], "seal body")
            columns = {name: unpack_column(seal["index"][name], code) for name, code in INDEX_COLUMNS.items()}
        except (RecordingFormatError, KeyError, TypeError):
            return False
        if any(len(column) != seal.get("chunk_count") for column in columns.values()):
            return False
        self.seal = seal
        self.chunks = ChunkIndex(columns)
        self._scan_offset = seal_offset
        return True

    def _scan_chunks(self) -> bool:
        """Index whole chunks after the ones already known; True when any were found.

        Stops at the first incomplete block, torn tail or damaged framing: what precedes it stays readable.
        Reads the file forward in large blocks: on a cold cache that beats one small read per chunk.
        """
        size = self._file_size()
        offset = self._scan_offset
        found = False
        window = b""
        window_start = offset
        head_size = FRAMING_SIZE + CHUNK_PREFIX_SIZE
        while offset + FRAMING_SIZE <= size:
            if offset + head_size > window_start + len(window):
                window_start = offset
                window = self._read_at(offset, max(_SCAN_BLOCK, head_size))
            head = window[offset - window_start : offset - window_start + head_size]
            if head[:FRAMING_SIZE] == ZERO_FRAMING:
                break  # a torn write left zeros after the last whole chunk
            try:
                block_type, length = decode_framing(head[:FRAMING_SIZE])
            except RecordingFormatError as exc:
                self.scan_problem = f"at byte {offset}: {exc}"
                break
            if block_type != BLOCK_CHUNK or offset + FRAMING_SIZE + length > size:
                break
            if length < CHUNK_PREFIX_SIZE:
                self.scan_problem = f"chunk {len(self.chunks)} is shorter than its fixed prefix"
                break
            meta = ChunkMeta.unpack(head[FRAMING_SIZE:])
            if meta.seq != len(self.chunks):
                self.scan_problem = f"chunk {len(self.chunks)} carries sequence number {meta.seq}"
                break
            self.chunks.append(offset, length, meta)
            offset += FRAMING_SIZE + length
            found = True
        self._scan_offset = offset
        return found

    # -- what the file holds -----------------------------------------------------------------------------

    @property
    def sealed(self) -> bool:
        return self.seal is not None

    @property
    def terminal(self) -> bool:
        return bool(self.header.get("terminal"))

    @property
    def duration_us(self) -> int:
        if self.seal is not None:
            return int(self.seal["duration_us"])
        return self.chunks[-1].last_t if len(self.chunks) else 0

    @property
    def event_count(self) -> int:
        if self.seal is not None:
            return int(self.seal["event_count"])
        return self.chunks.total_events

    @property
    def file_size(self) -> int:
        return self._file_size()

    # -- events ------------------------------------------------------------------------------------------

    def chunk_events(self, index: int) -> list[list]:
        """The decoded events of chunk ``index`` (a fresh list the caller may change)."""
        info = self.chunks[index]
        payload = self._read_at(info.offset + FRAMING_SIZE, info.length)
        if len(payload) != info.length:
            raise RecordingFormatError(f"chunk {index} is cut short")
        meta, _, _, frame = split_chunk_payload(payload)
        return unpack_events(decompress_frame(frame, meta.raw_length), meta.event_count)

    def _cached_chunk_events(self, index: int) -> list[list]:
        events = self._cache.get(index)
        if events is None:
            events = self.chunk_events(index)
            self._cache[index] = events
            if len(self._cache) > _CACHED_CHUNKS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return events

    def clear_cache(self) -> None:
        """Forget the decoded chunks kept for random access (the next access decodes again)."""
        self._cache.clear()

    def iter_chunks(self, start: int = 0) -> Iterator[tuple[ChunkInfo, list[list]]]:
        """``(chunk, events)`` for every chunk from ``start`` on."""
        for index in range(start, len(self.chunks)):
            yield self.chunks[index], self.chunk_events(index)

    def iter_events(self, start_us: int = 0, end_us: int | None = None) -> Iterator[list]:
        """Events with ``start_us <= t_us < end_us`` (``end_us=None``: to the end), in order."""
        first_t = self.chunks.columns["first_t"]
        start = bisect.bisect_left(self.chunks.columns["last_t"], start_us)
        for index in range(start, len(self.chunks)):
            if end_us is not None and first_t[index] >= end_us:
                return
            for event in self.chunk_events(index):
                t_us = event[0]
                if t_us < start_us:
                    continue
                if end_us is not None and t_us >= end_us:
                    return
                yield event

    def seek(self, t_us: int) -> Iterator[list]:
        """An iterator from the first event at or after ``t_us`` to the end of the recording."""
        return self.iter_events(start_us=t_us)

    def event_at(self, index: int) -> list:
        """Event number ``index`` (0-based, counting every event in the file). Treat it as read-only."""
        total = self.event_count
        if index < 0:
            index += total
        if not 0 <= index < total:
            raise IndexError("event index out of range")
        chunk = bisect.bisect_right(self.chunks.columns["first_event"], index) - 1
        return self._cached_chunk_events(chunk)[index - self.chunks.columns["first_event"][chunk]]

    def screen_at(self, t_us: int) -> ScreenFrame:
        """The terminal as it looked after every event with ``t_us`` at or before the given instant."""
        if not self.terminal:
            raise ValueError(f"{self.path.name} is not a terminal recording")
        chunk = bisect.bisect_right(self.chunks.columns["first_t"], t_us) - 1
        if chunk < 0:
            cols, rows = self.header.get("terminal_size") or (DEFAULT_COLS, DEFAULT_ROWS)
            return TerminalModel(cols, rows).frame()
        events = self._cached_chunk_events(chunk)
        start = None
        for position, event in enumerate(events):
            if event[0] > t_us:
                break
            if event[1] == ev.SCREEN_KEYFRAME:
                start = position
        if start is None:
            raise RecordingFormatError(f"chunk {chunk} of a terminal recording has no screen keyframe")
        try:
            model = TerminalModel.from_keyframe(events[start][2])
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise RecordingFormatError(f"chunk {chunk} holds a malformed screen keyframe: {exc}") from None
        for event in events[start + 1 :]:
            if event[0] > t_us:
                break
            apply_terminal_event(model, event)
        return model.frame()

    # -- live tail ---------------------------------------------------------------------------------------

    def follow(
        self,
        poll_interval: float = 0.25,
        *,
        start_us: int = 0,
        stop: Callable[[], bool] | None = None,
        idle_timeout: float | None = None,
    ) -> Iterator[list]:
        """Events from ``start_us`` on, then new ones as whole chunks land, until the seal is written.

        Polls the file every ``poll_interval`` seconds. Ends early when ``stop()`` returns true or when no new
        chunk arrived for ``idle_timeout`` seconds.
        """
        next_chunk = bisect.bisect_left(self.chunks.columns["last_t"], start_us)
        last_progress = time.monotonic()
        while True:
            while next_chunk < len(self.chunks):
                for event in self.chunk_events(next_chunk):
                    if event[0] >= start_us:
                        yield event
                next_chunk += 1
                last_progress = time.monotonic()
            if self.sealed:
                return
            if self._scan_chunks():
                continue
            if self._load_seal():
                continue
            if stop is not None and stop():
                return
            if idle_timeout is not None and time.monotonic() - last_progress >= idle_timeout:
                return
            time.sleep(poll_interval)

    # -- lifetime ----------------------------------------------------------------------------------------

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_header(path: Path | str) -> dict[str, Any]:
    """Just the header map of a recording (two small reads, no chunk indexing)."""
    with open(path, "rb") as stream:
        preamble = stream.read(len(PREAMBLE))
        check_preamble(preamble)
        framing = stream.read(FRAMING_SIZE)
        if len(framing) < FRAMING_SIZE:
            raise RecordingFormatError("file ends before its header")
        block_type, length = decode_framing(framing)
        if block_type != BLOCK_HEADER:
            raise RecordingFormatError("the first block is not a header")
        payload = stream.read(length)
    if len(payload) < length:
        raise RecordingFormatError("file ends inside its header")
    return unpack_map(payload, "header")


def open_recording(path: Path | str) -> RecordingReader:
    """Open a recording for reading."""
    return RecordingReader(path)
