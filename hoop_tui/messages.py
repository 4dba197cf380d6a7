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
