"""The recording writer: an O(1) ``append`` for the event loop and one disk thread that does everything else.

``append`` only puts the event on a deque; ``append_trusted`` (the Postgres relay's: a buffer's events at
once) puts them there already packed by one msgpack call. The disk thread packs the rest, cuts them into
chunks (~``chunk_max_bytes`` of packed events or ``chunk_max_seconds``, whichever first), compresses each
chunk into its own zstd frame, extends the SHA-256 chain, writes and fsyncs, and at close writes the signed
seal. For terminal sessions it also keeps a :class:`~recordings.terminal.TerminalModel` and starts every
chunk with a ``screen.keyframe`` event (plus extra keyframes inside a chunk when replaying from the last one
would cost too much), so any instant renders from one chunk.

Durability: ``"chunk"`` fsyncs after every chunk, ``"batch"`` every :data:`BATCH_FSYNC_SECONDS` and at close,
``"none"`` leaves it to the OS.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from array import array
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings import events as ev
from recordings.chunkcodec import DEFAULT_COMPRESSION_LEVEL, new_compressor, new_packer, unpack_events
from recordings.errors import RecordingClosedError, RecordingError
from recordings.keys import fingerprint, public_key_bytes
from recordings.layout import (
    BLOCK_CHUNK,
    BLOCK_HEADER,
    BLOCK_SEAL,
    FORMAT_VERSION,
    FRAMING_SIZE,
    INDEX_COLUMNS,
    MAX_HEADER_PAYLOAD,
    PREAMBLE,
    ChunkMeta,
    chain_next,
    encode_framing,
    encode_trailer,
    pack_column,
    seal_message,
)
from recordings.terminal import DEFAULT_COLS, DEFAULT_ROWS, TerminalModel, apply_terminal_event

DURABILITY_MODES = ("chunk", "batch", "none")
BATCH_FSYNC_SECONDS = 5.0
REQUIRED_HEADER_KEYS = ("session_id", "protocol", "connection", "identity")
# Wake the disk thread early once this many events wait, so a burst does not pile up for a whole second.
WAKE_AFTER_EVENTS = 2048
# Characters that rebuilding a screen from the last keyframe may have to draw before the writer adds another
# keyframe mid-chunk: pyte parses escape sequences at ~1 MB/s, so any frame costs a few ms of replay. Halving
# it from 8192 costs ~8% more bytes on disk for terminal sessions (bench/recordings_bench.py).
KEYFRAME_REPLAY_BUDGET = 4096
_ESTIMATED_EVENT_BYTES = 64


# Events `append_trusted` packed on the caller's thread, queued as a plain tuple (events are lists):
# (packed bytes, event count, first t_us, last t_us — or -1 when they are out of order).
_PackedRun = tuple[bytes, int, int, int]


def _out_of_order(events: list[list]) -> bool:
    if len(events) == 3:  # the relay's usual run (row description, rows, completion): one comparison
        middle = events[1][0]
        return not events[0][0] <= middle <= events[2][0]
    stamps = [event[0] for event in events]
    return stamps != sorted(stamps)


def build_header(
    header: dict[str, Any], signing_key: Ed25519PrivateKey, *, terminal: bool, chunk_max_bytes: int
) -> dict[str, Any]:
    """The header map written to disk: the caller's keys plus the format's own (which win)."""
    missing = [key for key in REQUIRED_HEADER_KEYS if key not in header]
    if missing:
        raise ValueError(f"recording header lacks {', '.join(missing)}")
    public_key = signing_key.public_key()
    full: dict[str, Any] = {"groups": [], "gateway_id": "", "storage_masking": {}}
    full.update(header)
    full.setdefault("started_at", datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"))
    full.update(
        {
            "format_version": FORMAT_VERSION,
            "signing_public_key": public_key_bytes(public_key),
            "signing_key_fingerprint": fingerprint(public_key),
            "compression": "zstd",
            "chunk_max_bytes": chunk_max_bytes,
            "terminal": terminal,
        }
    )
    if terminal:
        cols, rows = full.get("terminal_size") or (DEFAULT_COLS, DEFAULT_ROWS)
        full["terminal_size"] = [int(cols), int(rows)]
    return full


class RecordingWriter:
    """Writes one session's recording file; see the module docstring for the threading model."""

    def __init__(
        self,
        path: Path,
        header: dict,
        signing_key: Ed25519PrivateKey,
        *,
        durability: str = "chunk",
        chunk_max_bytes: int = 65536,
        chunk_max_seconds: float = 1.0,
        terminal: bool = False,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
        keyframe_replay_budget: int = KEYFRAME_REPLAY_BUDGET,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_MODES)}, not {durability!r}")
        if chunk_max_bytes < 1:
            raise ValueError("chunk_max_bytes must be positive")
        if chunk_max_seconds <= 0:
            raise ValueError("chunk_max_seconds must be positive")
        self.path = Path(path)
        self.header = build_header(header, signing_key, terminal=terminal, chunk_max_bytes=chunk_max_bytes)
        try:
            self._header_payload = msgpack.packb(self.header, use_bin_type=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"recording header is not msgpack-serialisable: {exc}") from None
        if len(self._header_payload) > MAX_HEADER_PAYLOAD:
            raise ValueError("recording header is too large")
        self._signing_key = signing_key
        self._durability = durability
        self._chunk_max_bytes = chunk_max_bytes
        self._chunk_max_seconds = chunk_max_seconds
        self._terminal = terminal
        self._keyframe_replay_budget = keyframe_replay_budget
        self._packer = new_packer()  # the disk thread's
        self._caller_packer = new_packer()  # append_trusted's (a Packer is not thread-safe)
        self._compressor = new_compressor(compression_level)

        self._queue: deque[list | _PackedRun] = deque()
        self._wake = threading.Event()
        self._thread_idle = False
        self._nudged = False
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._error: BaseException | None = None

        # Owned by the disk thread once it runs.
        self._chunk_parts: list[bytes] = []
        self._chunk_bytes = 0
        self._chunk_events = 0
        self._chunk_first_t = 0
        self._chunk_deadline = 0.0
        self._last_t = 0
        self._offset = 0
        self._seq = 0
        self._events_written = 0
        self._header_hash = b""
        self._chain = b""
        self._index = {name: array(typecode) for name, typecode in INDEX_COLUMNS.items()}
        self._average_event_bytes = float(_ESTIMATED_EVENT_BYTES)
        self._last_fsync = 0.0
        self._unsynced = False
        self._model: TerminalModel | None = None

    # -- the event-loop side -----------------------------------------------------------------------------

    def start(self) -> None:
        """Create the file (never overwriting one), write preamble and header, start the disk thread."""
        if self._thread is not None:
            raise RecordingError("recording already started")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o640)
        try:
            prefix = PREAMBLE + encode_framing(BLOCK_HEADER, len(self._header_payload)) + self._header_payload
            _write_all(fd, prefix)
            if self._durability != "none":
                os.fsync(fd)
                _fsync_directory(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._offset = len(prefix)
        self._header_hash = hashlib.sha256(prefix).digest()
        self._chain = self._header_hash
        self._last_fsync = time.monotonic()
        if self._terminal:
            cols, rows = self.header["terminal_size"]
            self._model = TerminalModel(cols, rows)
        self._thread = threading.Thread(target=self._run, name=f"recording-{self.path.name}", daemon=True)
        self._thread.start()

    def append(self, event: list) -> None:
        """Queue one event ``[t_us, kind, *fields]``. O(1): never touches the disk, never blocks."""
        if self._closing:
            raise RecordingClosedError("recording is closed")
        if type(event) is not list:
            if not isinstance(event, tuple | list):
                raise TypeError("an event is a list [t_us, kind, *fields]")
            event = list(event)
        if len(event) < 2 or type(event[0]) is not int or type(event[1]) is not str:
            raise TypeError("an event is a list [t_us: int, kind: str, *fields]")
        if self._error is not None:
            return  # the disk thread has stopped: queueing would only grow memory (see .error)
        self._enqueue(event)  # packed on the disk thread (a terminal session's model reads it there too)

    def append_trusted(self, events: list[list]) -> None:
        """Queue events the caller built itself, each a ``[t_us: int, kind: str, *fields]`` list, in order.

        The gateway's own producers use this (the Postgres relay hands over all events of one received
        buffer at once). It skips the shape checks of :meth:`append` and packs the events right here, with
        one msgpack call: the disk thread then only compresses and writes, so it hardly competes with the
        caller's thread for the GIL (per-event packing on the disk thread cost the relay a third of its
        throughput under pgbench).
        """
        if self._closing:
            raise RecordingClosedError("recording is closed")
        if self._error is not None:
            return  # the disk thread has stopped: queueing would only grow memory (see .error)
        count = len(events)
        if not count:
            return
        # The array header (fixarray, array 16 or array 32) dropped: the events back to back.
        packed = self._caller_packer.pack(events)[1 if count < 16 else 3 if count < 65536 else 5 :]
        first, last = events[0][0], events[-1][0]
        if first > last or (count > 2 and _out_of_order(events)):
            last = -1  # the disk thread unpacks the run and puts it in time order event by event
        self._enqueue((packed, count, first, last))

    def _enqueue(self, item: list | _PackedRun) -> None:
        queue = self._queue
        queue.append(item)
        if self._thread_idle:
            self._thread_idle = False
            self._wake.set()
        elif len(queue) >= WAKE_AFTER_EVENTS and not self._nudged:
            self._nudged = True
            self._wake.set()

    @property
    def pending_events(self) -> int:
        """Events appended but not yet on disk (approximate)."""
        return len(self._queue) + self._chunk_events

    @property
    def pending_bytes(self) -> int:
        """Bytes of packed events not yet on disk (approximate: queued events are estimated)."""
        return int(len(self._queue) * self._average_event_bytes) + self._chunk_bytes

    @property
    def error(self) -> BaseException | None:
        """Why writing failed, or ``None``. Once set, nothing more reaches the file."""
        return self._error

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, end_event: list | None = None) -> None:
        """Append ``end_event`` (if given), flush, write the seal, fsync and join the disk thread. Blocking.

        Does not raise for write failures: check :attr:`error` (the file is then unsealed).
        """
        if self._closed:
            return
        if self._thread is None:
            raise RecordingError("recording was never started")
        if end_event is not None and not self._closing:
            self.append(end_event)
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._closed = True

    # -- the disk thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
            self._cut_chunk()
            self._write_seal()
        except BaseException as exc:  # the proxy reads .error; a dead thread must not hide the cause
            self._error = exc
        finally:
            self._release_file()

    def _loop(self) -> None:
        queue = self._queue
        popleft = queue.popleft
        while True:
            while queue:
                item = popleft()
                if type(item) is tuple:
                    self._add_run(item)
                else:
                    self._add(item)
            self._nudged = False
            now = time.monotonic()
            if self._chunk_events and now >= self._chunk_deadline:
                self._cut_chunk()
            if self._unsynced and now - self._last_fsync >= BATCH_FSYNC_SECONDS:
                self._fsync()
            if self._closing and not queue:
                return
            timeout = self._next_timeout(now)
            self._wake.clear()
            if not self._chunk_events:
                self._thread_idle = True
            if queue or self._closing:
                self._thread_idle = False
                continue
            self._wake.wait(timeout)
            self._thread_idle = False

    def _next_timeout(self, now: float) -> float | None:
        deadlines = []
        if self._chunk_events:
            deadlines.append(self._chunk_deadline - now)
        if self._unsynced:
            deadlines.append(self._last_fsync + BATCH_FSYNC_SECONDS - now)
        return max(0.0, min(deadlines)) if deadlines else None

    def _add(self, event: list) -> None:
        t_us = event[0]
        if t_us < self._last_t:
            event[0] = t_us = self._last_t
        if not self._chunk_events:
            self._chunk_first_t = t_us
            self._chunk_deadline = time.monotonic() + self._chunk_max_seconds
            if self._model is not None:
                self._pack([t_us, ev.SCREEN_KEYFRAME, self._model.keyframe()])
        self._last_t = t_us
        self._pack(event)
        model = self._model
        screen_changed = model is not None and apply_terminal_event(model, event)
        if screen_changed and model.replay_cost >= self._keyframe_replay_budget:
            self._pack([t_us, ev.SCREEN_KEYFRAME, model.keyframe()])
        if self._chunk_bytes >= self._chunk_max_bytes:
            self._cut_chunk()

    def _add_run(self, run: _PackedRun) -> None:
        """Add events packed by `append_trusted`: no per-event work unless they need reordering."""
        packed, count, first_t, last_t = run
        if first_t < self._last_t or last_t < 0 or self._model is not None:
            for event in unpack_events(packed, count):
                self._add(event)
            return
        if not self._chunk_events:
            self._chunk_first_t = first_t
            self._chunk_deadline = time.monotonic() + self._chunk_max_seconds
        self._last_t = last_t
        self._chunk_parts.append(packed)
        self._chunk_bytes += len(packed)
        self._chunk_events += count
        self._average_event_bytes += (len(packed) / count - self._average_event_bytes) / 8
        if self._chunk_bytes >= self._chunk_max_bytes:
            self._cut_chunk()

    def _pack(self, event: list) -> None:
        packed = self._packer.pack(event)
        self._chunk_parts.append(packed)
        self._chunk_bytes += len(packed)
        self._chunk_events += 1
        self._average_event_bytes += (len(packed) - self._average_event_bytes) / 64

    def _cut_chunk(self) -> None:
        if not self._chunk_events:
            return
        raw = b"".join(self._chunk_parts)
        frame = self._compressor.compress(raw)
        meta = ChunkMeta(self._seq, self._chunk_first_t, self._last_t, self._chunk_events, len(raw)).pack()
        chain = chain_next(self._chain, meta, frame)
        payload_length = len(meta) + len(chain) + len(frame)
        _write_all(self._fd, b"".join((encode_framing(BLOCK_CHUNK, payload_length), meta, chain, frame)))
        index = self._index
        index["offset"].append(self._offset)
        index["length"].append(payload_length)
        index["first_t"].append(self._chunk_first_t)
        index["last_t"].append(self._last_t)
        index["event_count"].append(self._chunk_events)
        index["first_event"].append(self._events_written)
        self._offset += FRAMING_SIZE + payload_length
        self._events_written += self._chunk_events
        self._chain = chain
        self._seq += 1
        self._chunk_parts = []
        self._chunk_bytes = 0
        self._chunk_events = 0
        if self._durability == "chunk":
            self._fsync()
        elif self._durability == "batch":
            self._unsynced = True

    def _write_seal(self) -> None:
        duration_us = self._last_t
        body = msgpack.packb(
            {
                "chunk_count": self._seq,
                "event_count": self._events_written,
                "duration_us": duration_us,
                "header_hash": self._header_hash,
                "final_chain": self._chain,
                "sealed_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "index": {name: pack_column(column) for name, column in self._index.items()},
            },
            use_bin_type=True,
        )
        message = seal_message(
            self._header_hash, self._chain, self._events_written, duration_us, self._seq, body
        )
        payload = msgpack.packb(
            {"body": body, "signature": self._signing_key.sign(message)}, use_bin_type=True
        )
        seal_offset = self._offset
        _write_all(self._fd, encode_framing(BLOCK_SEAL, len(payload)) + payload + encode_trailer(seal_offset))
        if self._durability != "none":
            self._fsync()

    def _fsync(self) -> None:
        os.fsync(self._fd)
        self._last_fsync = time.monotonic()
        self._unsynced = False

    def _release_file(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    # The new file's directory entry must survive a crash too; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
