"""One session's events for a viewer: catch-up from its recording file, then the live tail.

For a session of this process the viewer subscribes to the recorder first and learns how many events were
appended before; the catch-up reads exactly that many from the file (the writer lands them within a chunk
interval), and the live subscription carries on from there, so nothing is missed or shown twice. For a
session of another worker or gateway (recordings on a shared volume) the file itself is followed until it
is sealed.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.control.errors import ControlError
from proxy.control.recording_tail import RecordingTailError, recording_batches
from proxy.control.streams import SESSIONS_INDEX_LIMIT, StreamEnd, Watch
from proxy.control.views import indexed_session_view, live_session_view
from proxy.store.base import SessionIndexRecord, StoreError
from recordings.reader import read_header

if TYPE_CHECKING:
    from proxy.gateway import Gateway
    from proxy.recorder import SessionRecorder
    from proxy.sessions import Session

SESSION_ID = re.compile(r"[0-9a-f]{8,64}")
MAX_LIVE_BACKLOG = 100_000  # events a slow viewer may fall behind a live session before its stream ends
CATCH_UP_IDLE_SECONDS = 5.0  # the writer cuts a chunk every second; this long without one means it failed
ENDED_FILE_IDLE_SECONDS = 2.0  # an unsealed file of an ended session (its gateway crashed) is read to its end


async def open_session_events(gateway: Gateway, session_id: str, *, follow: bool) -> Watch:
    if not SESSION_ID.fullmatch(session_id):
        raise ControlError(f"{session_id!r} is not a session id")
    session = gateway.sessions.get(session_id)
    recorder = gateway.live_recorder(session_id) if session is not None else None
    if session is not None and recorder is not None:
        return await _local(gateway, session, recorder, follow)
    return await _from_file(gateway, session_id, follow)


async def _header(path: Path) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(read_header, path)
    except Exception as error:
        raise ControlError(f"cannot read the recording {path.name}: {error}") from None


async def _local(gateway: Gateway, session: Session, recorder: SessionRecorder, follow: bool) -> Watch:
    backlog: deque[list] = deque()
    wake = asyncio.Event()
    ended = overflowed = False

    def deliver(event: list | None) -> None:  # on the hot path of the session: O(1), never blocks
        nonlocal ended, overflowed
        if event is None:
            ended = True
        elif len(backlog) >= MAX_LIVE_BACKLOG:
            overflowed = True
            unsubscribe()
        else:
            backlog.append(event)
        wake.set()

    appended_before, unsubscribe = recorder.subscribe(deliver)
    try:
        header = await _header(recorder.path)
    except BaseException:
        unsubscribe()
        raise
    initial = {"session": live_session_view(session, gateway.instance_id), "header": header, "live": True}

    async def events() -> AsyncGenerator[Any, None]:
        try:
            batches = recording_batches(
                recorder.path, limit=appended_before, idle_timeout=CATCH_UP_IDLE_SECONDS
            )
            async for event in _flatten(batches):
                yield event
            if not follow:
                yield StreamEnd("caught up with the recording")
                return
            while True:
                while backlog:
                    yield backlog.popleft()
                if overflowed:
                    yield StreamEnd("the viewer fell behind the live session; open it again to catch up")
                    return
                if ended:
                    yield StreamEnd("the session ended")
                    return
                wake.clear()
                await wake.wait()
        finally:
            unsubscribe()

    return Watch(initial, events())


async def _flatten(batches: AsyncGenerator[list[list], None]) -> AsyncGenerator[list, None]:
    try:
        async for batch in batches:
            for event in batch:
                yield event
    except RecordingTailError as error:
        raise ControlError(str(error)) from None
    finally:
        await batches.aclose()


async def _index_record(gateway: Gateway, session_id: str) -> SessionIndexRecord | None:
    try:
        records = await gateway.store.list_sessions(active_only=False, limit=SESSIONS_INDEX_LIMIT)
    except StoreError:
        return None  # the recording may still be found on disk
    return next((record for record in records if record.id == session_id), None)


def _recording_on_disk(recordings_dir: Path, session_id: str) -> Path | None:
    # Recordings live in per-day directories; the id was checked against SESSION_ID, so it is glob-safe.
    found = sorted(recordings_dir.glob(f"*/{session_id}.hrec")) or sorted(
        recordings_dir.glob(f"{session_id}.hrec")
    )
    return found[-1] if found else None


async def _from_file(gateway: Gateway, session_id: str, follow: bool) -> Watch:
    record = await _index_record(gateway, session_id)
    path = Path(record.recording_path) if record is not None and record.recording_path else None
    if path is None or not path.exists():
        path = await asyncio.to_thread(_recording_on_disk, gateway.settings.recordings_dir, session_id)
    if path is None:
        raise ControlError(f"no recording of session {session_id} is reachable from this gateway")
    header = await _header(path)
    active = record is not None and record.ended_at is None
    initial = {
        "session": indexed_session_view(record) if record is not None else None,
        "header": header,
        "live": False,
    }
    idle_timeout = None if active else ENDED_FILE_IDLE_SECONDS

    async def events() -> AsyncGenerator[Any, None]:
        batches = recording_batches(path, idle_timeout=idle_timeout, follow=follow)
        async for event in _flatten(batches):
            yield event
        yield StreamEnd("the recording is complete" if follow else "caught up with the recording")

    return Watch(initial, events())
