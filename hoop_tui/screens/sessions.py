"""The sessions screen: live sessions from `watch_sessions` updated in place; `enter` opens one, `k` kills."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from hoop_tui.messages import SessionsChanged, SessionsLoaded, WatchEnded
from hoop_tui.screens.session_view import SessionViewScreen, ask_to_kill
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

    @on(DataTable.RowSelected)
    def row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_session()

    def action_open_session(self) -> None:
        session = self.query_one(SessionTable).session_map_under_cursor()
        if session is not None:
            # In place of this screen, not over it: the number keys switch the top screen, and a view left
            # on the stack under another screen would stay open, following its session, unseen.
            self.app.switch_screen(SessionViewScreen(self.control, session))

    def action_kill(self) -> None:
        session_id = self.query_one(SessionTable).session_under_cursor()
        if session_id is not None:
            ask_to_kill(self, self.control, session_id)
