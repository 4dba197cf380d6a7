"""The bridge from a live session to its recording file: header, non-blocking appends, sealing at the end."""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.gateway import Gateway
    from proxy.sessions import Session
    from recordings.writer import RecordingWriter

log = logging.getLogger("hoop.recorder")


class SessionRecorder:
    """Owns one session's RecordingWriter. `append` is the writer's own O(1) method, bound once."""

    __slots__ = ("_started_ns", "_writer", "append", "path")

    def __init__(self, writer: RecordingWriter, path: Path, started_ns: int) -> None:
        self._writer = writer
        self._started_ns = started_ns
        self.path = path
        self.append = writer.append

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
        try:
            self._writer.close(end_event=[self.now_us(), "session.end", {"reason": reason}])
        except Exception:
            log.exception("sealing recording %s failed", self.path)


def open_session_recorder(gateway: Gateway, session: Session, started_ns: int) -> SessionRecorder:
    """Create and start the session's recording; raises when it cannot (the caller decides strictness)."""
    from recordings.keys import load_or_create_signing_key
    from recordings.writer import RecordingWriter

    settings = gateway.settings
    signing_key = load_or_create_signing_key(settings.state_dir / "keys")
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    directory = settings.recordings_dir / day
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{session.id}.hrec"
    policy = gateway.policy_for(session.identity, session.connection)
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
    writer = RecordingWriter(
        path,
        header,
        signing_key,
        durability=settings.recording_durability,
        terminal=session.protocol == "ssh",
    )
    writer.start()
    return SessionRecorder(writer, path, started_ns)
