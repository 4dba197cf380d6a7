"""A tiny in-memory control API for snapshots and SSH view tests: fixed sessions, requests and events.

Only for pictures that must not depend on a real gateway's timing; behaviour is proven against the real
gateway in the other tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hoop_tui.app import HoopApp, make_app
from proxy.control.api import ControlCalls, ControlStream
from proxy.control.errors import ControlError
from tests.tui.conftest import FrozenClock


class FakeStream:
    """Yields its events, then stays open (like a live watch) unless `ends` says why it stopped."""

    def __init__(self, initial: Any, events: list[Any], ends: str | None = None) -> None:
        self.initial = initial
        self.end_reason: str | None = None
        self._events = list(events)
        self._ends = ends
        self._closed = asyncio.Event()

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Any:
        if self._events:
            return self._events.pop(0)
        if self._ends is not None:
            self.end_reason = self._ends
            raise StopAsyncIteration
        await self._closed.wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._closed.set()

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class FakeControl(ControlCalls):
    def __init__(
        self,
        *,
        sessions: list[dict[str, Any]] | None = None,
        approvals: list[dict[str, Any]] | None = None,
        session_events: dict[str, list[list]] | None = None,
        ends: dict[str, str] | None = None,
    ) -> None:
        self.sessions = sessions or []
        self.approvals = approvals or []
        self.events = session_events or {}
        self.ends = ends or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def _request(self, op: str, fields: dict[str, Any]) -> Any:
        self.calls.append((op, fields))
        if op == "approvals.decide":
            request = next(item for item in self.approvals if item["id"] == fields["request"])
            state = "approved" if fields["approve"] else "denied"
            return {**request, "state": state, "decider": "you", "justification": fields.get("reason")}
        if op == "sessions.kill":
            return {"id": fields["session"], "killed": True}
        if op == "whoami":
            return {"subject": "you", "groups": ["oncall"], "roles": ["approver"], "render_mask": []}
        raise ControlError(f"the fake control does not answer {op}")

    async def _open_stream(self, op: str, fields: dict[str, Any]) -> ControlStream:
        if op == "sessions.watch":
            return FakeStream(list(self.sessions), [])
        if op == "approvals.watch":
            return FakeStream(list(self.approvals), [])
        if op == "session.events":
            session_id = fields["session"]
            session = next((item for item in self.sessions if item["id"] == session_id), None)
            header = {"protocol": (session or {}).get("protocol", "postgres")}
            initial = {"session": session, "header": header, "live": True}
            return FakeStream(initial, self.events.get(session_id, []), self.ends.get(session_id))
        raise ControlError(f"the fake control has no stream {op}")

    async def close(self) -> None:
        return None


def fake_console(
    control: FakeControl, *, start_on: str = "approvals", clock: FrozenClock | None = None
) -> HoopApp:
    async def signed_in() -> ControlCalls:
        return control

    return make_app(signed_in, clock=clock or FrozenClock(), start_on=start_on, sessions_interval=60.0)
