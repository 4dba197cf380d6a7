"""Messages the console's workers post: past-tense facts about the gateway, handled by the screens."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class ApprovalsLoaded(Message):
    """The pending requests as the watch started."""

    def __init__(self, requests: list[dict[str, Any]]) -> None:
        super().__init__()
        self.requests = requests


class ApprovalChanged(Message):
    """A request was created or decided (the map carries its new state)."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__()
        self.request = request


class SessionsLoaded(Message):
    """A full list of the active sessions (initial, or a snapshot)."""

    def __init__(self, sessions: list[dict[str, Any]]) -> None:
        super().__init__()
        self.sessions = sessions


class SessionsChanged(Message):
    """Sessions started, ended, or their counters moved."""

    def __init__(self, sessions: list[dict[str, Any]]) -> None:
        super().__init__()
        self.sessions = sessions


class WatchEnded(Message):
    """A stream from the gateway stopped; `reason` says why."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__()
        self.what = what
        self.reason = reason


class ControlCallFailed(Message):
    """A call to the gateway was refused or failed; `detail` is its one-line error."""

    def __init__(self, action: str, detail: str) -> None:
        super().__init__()
        self.action = action
        self.detail = detail


class StatementsIndexed(Message):
    """The background scan of a recording found these statements."""

    def __init__(self, statements: list) -> None:
        super().__init__()
        self.statements = statements


class RecordingVerified(Message):
    """The recording verified with `status` (intact / unsealed / tampered); `detail` is the summary."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__()
        self.status = status
        self.detail = detail


class RecordingUnreadable(Message):
    """The recording could not be read; `detail` is one line."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail


class RecordingMarksFound(Message):
    """The background scan of a recording read another slice: its statements, holds, denials, idle gaps."""

    def __init__(self, marks: Any) -> None:
        super().__init__()
        self.marks = marks  # hoop_tui.widgets.recording_index.Marks


class SessionOpened(Message):
    """A session's event stream started: `initial` is {"session", "header", "live"} (see ControlCalls)."""

    def __init__(self, initial: dict[str, Any]) -> None:
        super().__init__()
        self.initial = initial


class SessionEventsArrived(Message):
    """New events of the watched session wait in the screen's inbox (one message per burst, not per event)."""


class RecordingsListed(Message):
    """The browser read a recordings directory's headers (`summaries`: RecordingSummary, newest first)."""

    def __init__(self, summaries: list[Any]) -> None:
        super().__init__()
        self.summaries = summaries


class RecordingCounted(Message):
    """A background pass over one recording: its statement/hold/denial counts (None when too large to count)
    and its verification status."""

    def __init__(self, path: Any, stats: Any, verify_status: str) -> None:
        super().__init__()
        self.path = path
        self.stats = stats  # hoop_tui.widgets.recording_catalog.RecordingStats | None
        self.verify_status = verify_status


class StatementSearchFinished(Message):
    """The statement search for `needle` finished (`outcome`: recording_catalog.SearchOutcome)."""

    def __init__(self, needle: str, outcome: Any) -> None:
        super().__init__()
        self.needle = needle
        self.outcome = outcome
