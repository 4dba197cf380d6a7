"""The sessions screen: live sessions from `watch_sessions` updated in place, and `k` to kill one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from hoop_tui.messages import ControlCallFailed, SessionsChanged, SessionsLoaded, WatchEnded
from hoop_tui.screens.justification import JustificationModal
from hoop_tui.widgets.session_table import SessionTable

if TYPE_CHECKING:
    from proxy.control.api import ControlCalls


class SessionsScreen(Screen[None]):
    BINDINGS = [
        Binding("k", "kill", "Kill", id="sessions.kill", tooltip="End the selected session, with a reason"),
    ]

    def __init__(self, control: ControlCalls, *, interval: float = 2.0) -> None:
        super().__init__()
        self.control = control
        self.interval = interval

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Sessions", classes="section-title")
        yield SessionTable(id="session-table")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "sessions"
        self.watch_gateway_sessions()

    @work(exclusive=True, group="watch-sessions", exit_on_error=False)
    async def watch_gateway_sessions(self) -> None:
        from proxy.control.errors import ControlError

        try:
            stream = await self.control.watch_sessions(interval=self.interval)
        except ControlError as error:
            self.post_message(WatchEnded("sessions", str(error)))
            return
        async with stream:
            self.post_message(SessionsLoaded(list(stream.initial)))
            async for event in stream:
                kind = event.get("type")
                if kind == "snapshot":
                    self.post_message(SessionsLoaded(list(event["sessions"])))
                elif kind == "counters":
                    self.post_message(SessionsChanged(list(event["sessions"])))
                elif "session" in event:
                    self.post_message(SessionsChanged([event["session"]]))
        self.post_message(WatchEnded("sessions", stream.end_reason or "stream ended"))

    @on(SessionsLoaded)
    def loaded(self, message: SessionsLoaded) -> None:
        self.query_one(SessionTable).replace_all(message.sessions)

    @on(SessionsChanged)
    def changed(self, message: SessionsChanged) -> None:
        self.query_one(SessionTable).apply(message.sessions)

    @on(WatchEnded)
    def watch_ended(self, message: WatchEnded) -> None:
        self.notify(f"{message.what} watch ended: {message.reason}", severity="error", timeout=10)

    @on(ControlCallFailed)
    def call_failed(self, message: ControlCallFailed) -> None:
        self.notify(f"{message.action} failed: {message.detail}", severity="error", timeout=10)

    def action_kill(self) -> None:
        session_id = self.query_one(SessionTable).session_under_cursor()
        if session_id is None:
            return

        def killed_because(reason: str | None) -> None:
            if reason:
                self.kill(session_id, reason)

        self.app.push_screen(
            JustificationModal(f"Kill session {session_id}?", "Why? The agent will see this reason."),
            killed_because,
        )

    @work(group="kill", exit_on_error=False)
    async def kill(self, session_id: str, reason: str) -> None:
        from proxy.control.errors import ControlError

        try:
            await self.control.kill_session(session_id, reason)
        except ControlError as error:
            self.post_message(ControlCallFailed("kill", str(error)))
