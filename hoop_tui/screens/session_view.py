"""The live view of one session: recorded events caught up, then followed; `k` kills it, escape goes back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from hoop_tui.messages import ControlCallFailed, SessionEventsArrived, SessionOpened, WatchEnded
from hoop_tui.screens.justification import JustificationModal
from hoop_tui.widgets.session_feed import SessionFeed
from hoop_tui.widgets.terminal_view import TerminalView

if TYPE_CHECKING:
    from proxy.control.api import ControlCalls

INBOX_CAPACITY = 10_000  # events received and not yet shown before the watch waits for the screen


class EventInbox:
    """Events the watch has received and the screen has not shown yet.

    The watch worker and the screen's handlers run on the same event loop, so a plain list is safe; `put`
    says when the screen needs waking, which makes one message per burst instead of one per event. A full
    inbox makes the worker wait for the screen (a recording read faster than it is shown stays on disk).
    """

    def __init__(self, capacity: int = INBOX_CAPACITY) -> None:
        self.events: list[Any] = []
        self.waiting = False
        self.capacity = capacity
        self._room = asyncio.Event()
        self._room.set()

    def put(self, event: Any) -> bool:
        self.events.append(event)
        if len(self.events) >= self.capacity:
            self._room.clear()
        if self.waiting:
            return False
        self.waiting = True
        return True

    async def room(self) -> None:
        """Returns once the inbox is below capacity."""
        await self._room.wait()

    def take(self) -> list[Any]:
        events, self.events = self.events, []
        self.waiting = False
        self._room.set()
        return events


def ask_to_kill(screen: Screen[Any], control: ControlCalls, session_id: str) -> None:
    """Ask for a reason, then end the session; a refusal comes back to `screen` as ControlCallFailed."""

    async def kill(reason: str) -> None:
        from proxy.control.errors import ControlError

        try:
            await control.kill_session(session_id, reason)
        except ControlError as error:
            screen.post_message(ControlCallFailed("kill", str(error)))

    def killed_because(reason: str | None) -> None:
        if reason:
            screen.run_worker(kill(reason), group="kill", exit_on_error=False)

    screen.app.push_screen(
        JustificationModal(f"Kill session {session_id}?", "Why? The agent will see this reason."),
        killed_because,
    )


def session_summary(session: dict[str, Any], state: str) -> str:
    who = session.get("identity") or "?"
    where = session.get("connection") or "?"
    protocol = session.get("protocol") or "?"
    return f"{who} on {where} ({protocol}) · session {session.get('id')} · {state}"


class SessionViewScreen(Screen[None]):
    """Statements with their decisions, approvals, masked rows and errors; SSH sessions add a terminal."""

    CSS_PATH = "session_view.tcss"
    BINDINGS = [
        Binding("k", "kill", "Kill", id="session.kill", tooltip="End this session, with a reason"),
        Binding("escape", "back", "Back", id="session.back", tooltip="Back to the sessions list"),
    ]

    def __init__(self, control: ControlCalls, session: dict[str, Any]) -> None:
        super().__init__()
        self.control = control
        self.session = dict(session)
        self.session_id = str(session["id"])
        self.inbox = EventInbox()
        self.state = "connecting"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(self._summary(), id="session-summary", classes="section-title")
        yield TerminalView(id="terminal-view")
        yield SessionFeed(id="session-feed")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "session"
        self._show_protocol(self.session.get("protocol"))
        self.query_one(SessionFeed).focus()
        self.follow_session()

    def _show_protocol(self, protocol: object) -> None:
        self.query_one(TerminalView).display = protocol == "ssh"

    def _show_state(self, state: str) -> None:
        self.state = state
        self.query_one("#session-summary", Label).update(self._summary())

    def _summary(self) -> Text:
        return Text(session_summary(self.session, self.state))  # Text: names and reasons are not markup

    @work(exclusive=True, group="session-events", exit_on_error=False)
    async def follow_session(self) -> None:
        """Posts what the gateway sends; never touches widgets (the handlers below do)."""
        from proxy.control.errors import ControlError

        try:
            stream = await self.control.session_events(self.session_id, follow=True)
        except ControlError as error:
            self.post_message(WatchEnded("session", str(error)))
            return
        async with stream:
            self.post_message(SessionOpened(dict(stream.initial or {})))
            try:
                async for event in stream:
                    if self.inbox.put(event):
                        self.post_message(SessionEventsArrived())
                    await self.inbox.room()
            except ControlError as error:
                self.post_message(WatchEnded("session", str(error)))
                return
        self.post_message(WatchEnded("session", stream.end_reason or "stream ended"))

    @on(SessionOpened)
    def opened(self, message: SessionOpened) -> None:
        initial = message.initial
        known = initial.get("session") or {}
        header = initial.get("header") or {}
        self.session.update({key: value for key, value in known.items() if value is not None})
        self.session.setdefault("protocol", header.get("protocol"))
        self._show_protocol(self.session.get("protocol") or header.get("protocol"))
        self._show_state("live" if initial.get("live") else "from its recording")

    @on(SessionEventsArrived)
    def arrived(self, message: SessionEventsArrived) -> None:
        self._show_waiting_events()

    def _show_waiting_events(self) -> None:
        events = self.inbox.take()
        if not events:
            return
        terminal = self.query_one(TerminalView)
        if terminal.apply(events) and not terminal.display:
            terminal.display = True  # output from a session whose protocol we did not know yet
        feed = self.query_one(SessionFeed)
        feed.apply(events)
        if feed.model.ended is not None:
            self._show_state(f"ended: {feed.model.ended}")

    @on(WatchEnded)
    def watch_ended(self, message: WatchEnded) -> None:
        message.stop()  # this screen says it itself, in its state line
        self._show_waiting_events()  # what came in just before the end
        ended = self.query_one(SessionFeed).model.ended
        if ended is not None:
            self._show_state(f"ended: {ended}")
            return
        self._show_state(f"not followed: {message.reason}")
        self.notify(f"session watch ended: {message.reason}", severity="warning", timeout=10, markup=False)

    def action_kill(self) -> None:
        ask_to_kill(self, self.control, self.session_id)

    def action_back(self) -> None:
        self.app.switch_screen("sessions")
