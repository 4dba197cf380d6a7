"""The bridge from a live session to its recording file: header, non-blocking appends, sealing at the end."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.gateway import Gateway
    from proxy.sessions import Session
    from recordings.writer import RecordingWriter

log = logging.getLogger("hoop.recorder")


class SessionRecorder:
    """Owns one session's RecordingWriter. `append` queues an event for the disk thread in O(1).

    In-process subscribers (the control API's live tail) see every appended event too; with none, the
    cost on the hot path is one counter and one truthiness check per event.
    """

    __slots__ = (
        "_end_event", "_started_ns", "_subscribers", "_write", "_write_many", "_writer", "appended", "path",
    )  # fmt: skip

    def __init__(self, writer: RecordingWriter, path: Path, started_ns: int) -> None:
        self._writer = writer
        self._write = writer.append
        self._write_many = writer.append_trusted
        self._started_ns = started_ns
        self._subscribers: tuple[Callable[[list | None], None], ...] = ()
        self._end_event: list | None = None
        self.appended = 0  # events appended through this recorder: where a live subscriber's view begins
        self.path = path

    def append(self, event: list) -> None:
        self._write(event)
        self.appended += 1
        if self._subscribers:
            self._deliver(event)

    def append_many(self, events: list[list]) -> None:
        """Several events the gateway built itself (well-formed `[t_us, kind, *fields]` lists), in order."""
        self._write_many(events)
        self.appended += len(events)
        if self._subscribers:
            for event in events:
                self._deliver(event)

    def _deliver(self, event: list | None) -> None:
        for deliver in self._subscribers:
            try:
                deliver(event)
            except Exception:  # a viewer's bug must never break the session it watches
                log.exception("live subscriber of %s failed", self.path.name)

    def subscribe(self, deliver: Callable[[list | None], None]) -> tuple[int, Callable[[], None]]:
        """Call `deliver(event)` for every event appended from now on, and `deliver(None)` when the session
        ends. Returns how many events were appended before (so a reader of the file knows where the live
        view begins) and a function that unsubscribes. Call on the gateway's event loop."""

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not deliver)

        if self._end_event is not None:
            deliver(None)
            return self.appended, unsubscribe
        self._subscribers = (*self._subscribers, deliver)
        return self.appended, unsubscribe

    def end_live(self, reason: str) -> None:
        """The session is over: hand subscribers the end event, then None. Call on the event loop, before
        `close` (which writes the same end event)."""
        if self._end_event is None:
            self._end_event = [self.now_us(), "session.end", {"reason": reason}]
            self._deliver(self._end_event)
            self._deliver(None)
            self._subscribers = ()

    def now_us(self) -> int:
        return (time.monotonic_ns() - self._started_ns) // 1000

    @property
    def error(self) -> BaseException | None:
        return self._writer.error

    @property
    def pending_bytes(self) -> int:
        return self._writer.pending_bytes

    def close(self, reason: str) -> None:
        """Blocking (flush, seal, fsync): call from a worker thread."""
        end_event = self._end_event or [self.now_us(), "session.end", {"reason": reason}]
        try:
            self._writer.close(end_event=end_event)
        except Exception:
            log.exception("sealing recording %s failed", self.path)


SQL_CHUNK_BYTES = 64 * 1024
SSH_CHUNK_BYTES = 1024 * 1024
# zstd level 3 compresses about twice as fast as 6 for ~13% more bytes (bench/recordings_bench.py): SSH
# output comes in bulk, and the recorder must keep up with it or the session is slowed to its pace.
SSH_COMPRESSION_LEVEL = 3


def open_session_recorder(gateway: Gateway, session: Session, started_ns: int) -> SessionRecorder:
    """Create and start the session's recording; raises when it cannot (the caller decides strictness)."""
    from recordings.keys import load_or_create_signing_key
    from recordings.writer import DEFAULT_COMPRESSION_LEVEL, RecordingWriter

    settings = gateway.settings
    signing_key = load_or_create_signing_key(settings.state_dir / "keys")
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    directory = settings.recordings_dir / day
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{session.id}.hrec"
    policy = gateway.policies.for_session(session.identity.groups, session.connection)  # masking: no grants
    header: dict[str, Any] = {
        "session_id": session.id,
        "protocol": session.protocol,
        "connection": session.connection,
        "identity": session.identity.subject,
        "issuer": session.identity.issuer,
        "groups": list(session.identity.groups),
        "gateway_id": settings.gateway_id,
        "client_address": session.client_address,
        "client_user": session.client_user,
        "storage_masking": {"entities": sorted(policy.mask_entities) if policy else []},
    }
    if session.terminal_size is not None:
        header["pty"] = True
        header["terminal_size"] = list(session.terminal_size)
    writer = RecordingWriter(
        path,
        header,
        signing_key,
        durability=settings.recording_durability,
        # Screen keyframes for pty sessions: what they show is a screen. Exec output without a pty is a stream
        # (feeding it through a terminal emulator would cap a `cat` at pyte's few MB/s for nothing).
        terminal=session.terminal_size is not None,
        # SSH output comes in bulk (a `cat`, a log tail): 64 KiB chunks meant an fsync per 64 KiB, which
        # capped such a stream at the disk's fsync rate. Chunks still end after a second, whatever their size.
        chunk_max_bytes=SSH_CHUNK_BYTES if session.protocol == "ssh" else SQL_CHUNK_BYTES,
        compression_level=SSH_COMPRESSION_LEVEL if session.protocol == "ssh" else DEFAULT_COMPRESSION_LEVEL,
    )
    writer.start()
    return SessionRecorder(writer, path, started_ns)
