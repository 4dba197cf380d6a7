"""The console application: wiring only (screens, global keys, where the control API comes from)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from hoop_tui.messages import ControlCallFailed, WatchEnded
from hoop_tui.palette import ConsoleCommands
from hoop_tui.screens.help import HelpScreen

if TYPE_CHECKING:
    from proxy.control.api import ControlCalls

ControlFactory = Callable[[], Awaitable["ControlCalls"]]
CONSOLE_SCREENS = ("approvals", "sessions")


class HoopApp(App[None]):
    """Approvals and sessions over a control API the factory opens (embedded or remote)."""

    CSS_PATH = "app.tcss"
    TITLE = "hoop-tui"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("1", "show('approvals')", "Approvals", id="app.approvals", tooltip="The approval queue"),
        Binding("2", "show('sessions')", "Sessions", id="app.sessions", tooltip="Live sessions"),
        Binding("3", "show('recordings')", "Recordings", id="app.recordings", tooltip="Recorded sessions"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Keys and screens"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the console"),
    ]

    def __init__(
        self,
        control_factory: ControlFactory,
        *,
        clock: Callable[[], float] = time.time,
        start_on: str = "approvals",
        sessions_interval: float = 2.0,
        recordings_dir: Path | None = None,
    ) -> None:
        if start_on not in CONSOLE_SCREENS:
            raise ValueError(f"start_on must be one of {', '.join(CONSOLE_SCREENS)}, not {start_on!r}")
        super().__init__()
        self.control_factory = control_factory
        self.clock = clock
        self.start_on = start_on
        self.sessions_interval = sessions_interval
        self.recordings_dir = recordings_dir  # the gateway's recordings, when this process can read them
        self.control: ControlCalls | None = None
        self.failure: str | None = None  # why the console could not reach the gateway, for the CLI to print

    def compose(self) -> ComposeResult:
        yield Static("Connecting to the gateway…", id="connecting")

    def on_mount(self) -> None:
        self.connect()

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def connect(self) -> None:
        from proxy.control.errors import ControlError

        try:
            control = await self.control_factory()
        except ControlError as error:
            self.failure = str(error)
            self.exit(return_code=1)
            return
        self.control = control
        render_mask: frozenset[str] = frozenset()
        if self.recordings_dir is not None:
            # The browser reads recording files itself: it masks what this operator's role may not see
            # (the gateway masks session events it sends for the same role).
            try:
                told = (await control.whoami()).get("render_mask")
            except (ControlError, AttributeError) as error:
                self.failure = f"cannot ask the gateway what this operator may see: {error}"
                self.exit(return_code=1)
                return
            if not isinstance(told, list) or not all(isinstance(entity, str) for entity in told):
                # A gateway that does not say (an older one) gets no recordings screen: fail closed.
                self.recordings_dir = None
            else:
                render_mask = frozenset(told)
        self.call_later(self._install_screens, control, render_mask)

    def _install_screens(self, control: ControlCalls, render_mask: frozenset[str] = frozenset()) -> None:
        from hoop_tui.screens.approvals import ApprovalsScreen
        from hoop_tui.screens.sessions import SessionsScreen

        self.install_screen(ApprovalsScreen(control, self.clock), "approvals")
        self.install_screen(SessionsScreen(control, interval=self.sessions_interval), "sessions")
        if self.recordings_dir is not None:
            from hoop_tui.screens.player import viewer_mask
            from hoop_tui.screens.recordings import RecordingsScreen

            screen = RecordingsScreen(self.recordings_dir, mask=viewer_mask(render_mask))
            self.install_screen(screen, "recordings")
        self.push_screen(self.start_on)

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)

    # Every screen's watches and calls end up here (messages bubble from the screen to the app): one place
    # says what went wrong. A screen with more to do for a message handles it itself and stops it.
    @on(WatchEnded)
    def watch_ended(self, message: WatchEnded) -> None:
        self.notify(
            f"{message.what} watch ended: {message.reason}", severity="error", timeout=10, markup=False
        )

    @on(ControlCallFailed)
    def call_failed(self, message: ControlCallFailed) -> None:
        self.notify(f"{message.action} failed: {message.detail}", severity="error", timeout=10, markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show" and parameters == ("recordings",):
            return self.recordings_dir is not None  # no directory, no "3" in the footer
        return True

    def action_show(self, name: str) -> None:
        if self.control is None or not self.is_screen_installed(name):
            return
        if self.screen is self.get_screen(name):
            return
        self.switch_screen(name)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def on_unmount(self) -> None:
        if self.control is not None:
            await self.control.close()


class ReplayApp(App[None]):
    """The player on one recording file, or the recordings browser on a directory, with no gateway."""

    CSS_PATH = "app.tcss"
    TITLE = "hoop-tui replay"
    BINDINGS = [
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Keys and screens"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the player"),
    ]

    def __init__(self, recording: Path, mask_entities: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.recording = recording
        self.mask_entities = mask_entities

    def on_mount(self) -> None:
        from hoop_tui.screens.player import PlayerScreen, viewer_mask

        mask = viewer_mask(self.mask_entities)
        if self.recording.is_dir():
            from hoop_tui.screens.recordings import RecordingsScreen

            self.push_screen(RecordingsScreen(self.recording, mask=mask))
        else:
            self.push_screen(PlayerScreen(self.recording, mask=mask))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)


def report_worker_error(app: App[None], event: Worker.StateChanged) -> None:
    """Workers expect refusals and post them as messages; anything else is a bug, shown, not swallowed."""
    if event.state is WorkerState.ERROR:
        error = event.worker.error
        detail = f"{event.worker.name} failed: {type(error).__name__}: {error}"
        app.notify(detail, severity="error", timeout=15)


def make_app(
    control_factory: ControlFactory,
    *,
    clock: Callable[[], float] = time.time,
    start_on: str = "approvals",
    sessions_interval: float = 2.0,
    recordings_dir: Path | None = None,
) -> HoopApp:
    """The console the CLI runs and the tests drive: `control_factory` opens the control API on the app's
    loop (LocalControl.sign_in for an embedded gateway, ControlClient.connect for a remote one)."""
    return HoopApp(
        control_factory,
        clock=clock,
        start_on=start_on,
        sessions_interval=sessions_interval,
        recordings_dir=recordings_dir,
    )


def make_replay_app(recording: Path, mask_entities: frozenset[str] = frozenset()) -> ReplayApp:
    """The player on `recording` (the recordings browser when it is a directory); `mask_entities` are masked
    further at render time (e.g. {"email"})."""
    return ReplayApp(recording, mask_entities)
