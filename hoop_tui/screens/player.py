"""The player for one recording: timeline, statements, result rows or terminal screen, and a verify badge.

Lazy by design: the first frame needs only the header and the seal's chunk index (duration, event count);
a background scan walks the chunks in growing slices and posts statements, holds, denials and idle gaps as
it finds them, so markers and statements appear while the user already scrubs. A statement's result rows
are decoded only when it is selected (capped); a terminal frame only for the instant shown.
"""

from __future__ import annotations

import bisect
import gc
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from hoop_tui.messages import RecordingMarksFound, RecordingUnreadable, RecordingVerified
from hoop_tui.widgets.formatting import position
from hoop_tui.widgets.go_to_time import GoToTime
from hoop_tui.widgets.playback_clock import SPEEDS, PlaybackClock
from hoop_tui.widgets.recording_index import (
    Marks,
    MarkScanner,
    Mask,
    StatementColumns,
    StatementResult,
    TerminalReplay,
    no_mask,
    read_result,
)
from hoop_tui.widgets.result_rows import ResultRows
from hoop_tui.widgets.statement_list import StatementList
from hoop_tui.widgets.terminal_frame import TerminalFrame
from hoop_tui.widgets.timeline import Timeline
from hoop_tui.widgets.verify_badge import VerifyBadge
from recordings.errors import RecordingError
from recordings.reader import RecordingReader

__all__ = ["SPEEDS", "PlayerScreen", "viewer_mask"]

SEEK_US = 5_000_000
TICK_SECONDS = 0.1
FIRST_SLICE_CHUNKS = 4  # the scan's first slice is small so the first markers show at once
SCAN_STEP_CHUNKS = 2  # then it reads this many chunks (a few ms) between pauses...
SCAN_PAUSE_SECONDS = 0.002
POST_INTERVAL_SECONDS = 0.2  # ...and posts what it found at most this often
INTERACTION_QUIET_SECONDS = 0.15  # the scan waits while the user moved the playhead this recently


def viewer_mask(entities: frozenset[str]) -> Mask:
    """What this viewer may not see, masked further at render time (ValueError names an unknown entity)."""
    from proxy.masking.render import viewer_masker

    if not entities:
        return no_mask
    masker = viewer_masker(entities)

    def mask(text: str) -> str:
        return masker.mask_text(text)[0]

    return mask


class PlayerScreen(Screen[None]):
    CSS_PATH = "player.tcss"
    BINDINGS = [
        Binding("space", "toggle_play", "Play/Pause", id="player.play", tooltip="Start or stop playback"),
        Binding("plus,equals_sign", "faster", "Faster", id="player.faster", tooltip="Double the speed"),
        Binding("minus", "slower", "Slower", id="player.slower", tooltip="Halve the speed"),
        # Priority: the statement list (a ScrollView) binds left/right too, and would shadow these.
        Binding("right", "seek(1)", "+5s", id="player.forward", tooltip="Seek 5 s forward", priority=True),
        Binding("left", "seek(-1)", "-5s", id="player.back", tooltip="Seek 5 s back", priority=True),
        Binding("n", "step(1)", "Next", id="player.next", tooltip="Next statement or command"),
        Binding("p", "step(-1)", "Previous", id="player.previous", tooltip="Previous statement or command"),
        Binding("g", "go_to_time", "Go to", id="player.go_to", tooltip="Jump to a time (mm:ss or seconds)"),
        Binding(
            "i", "skip_idle", "Skip idle", id="player.skip_idle", tooltip="Jump over pauses while playing"
        ),
        Binding("escape", "close", "Back", id="player.close", tooltip="Back to the recordings"),
    ]

    def __init__(
        self,
        recording: Path,
        *,
        mask: Mask = no_mask,
        autoplay_timer: bool = True,
        closable: bool = False,
        start_us: int | None = None,
    ) -> None:
        super().__init__()
        self.start_us = start_us  # where the playhead starts (e.g. a search hit), else the beginning
        self.recording = Path(recording)
        self.mask = mask  # the viewer's render-time masking (see viewer_mask)
        self.autoplay_timer = autoplay_timer
        self.closable = closable  # opened from the browser: escape returns to it
        self.reader: RecordingReader | None = None
        self.clock = PlaybackClock(0)
        self.statements = StatementColumns()
        self.selected: int | None = None
        self.terminal = False
        self.terminal_replay: TerminalReplay | None = None
        self.scan_progress = 0.0
        self.scan_finished_at: float | None = None  # perf_counter() when the last slice arrived (the bench)
        self.interaction_at = 0.0  # monotonic() of the user's last move of the playhead (read by the scan)

    # The clock's state, under the names tests and the bench read.
    @property
    def position_us(self) -> int:
        return self.clock.position_us

    @position_us.setter
    def position_us(self, t_us: int) -> None:
        self.clock.seek(t_us)

    @property
    def duration_us(self) -> int:
        return self.clock.duration_us

    @property
    def speed(self) -> float:
        return self.clock.speed

    @property
    def playing(self) -> bool:
        return self.clock.playing

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="player-status-bar"):
            yield VerifyBadge(id="verify-badge")
            yield Static("", id="player-status")
        yield Timeline(id="timeline")
        with Container(id="player-body"):
            yield StatementList(id="statement-list")
            yield ResultRows(id="result-rows")
            yield TerminalFrame(self.mask, id="terminal-frame")
        yield GoToTime(id="go-to-time")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.recording.name
        try:
            self.reader = RecordingReader(self.recording)
        except (OSError, RecordingError) as error:
            self.post_message(RecordingUnreadable(f"cannot read {self.recording.name}: {error}"))
            return
        self.clock = PlaybackClock(self.reader.duration_us)
        if self.start_us is not None:
            self.clock.seek(self.start_us)
        self.query_one(Timeline).set_duration(self.reader.duration_us)
        if self.reader.terminal or self.reader.header.get("protocol") == "ssh":
            self._use_terminal()
        self._moved()
        self.scan_marks()
        self.check_integrity()
        if self.autoplay_timer:
            self.set_interval(TICK_SECONDS, lambda: self.advance(TICK_SECONDS))
        self.call_after_refresh(self._freeze_startup_objects)

    def _freeze_startup_objects(self) -> None:
        # A full garbage collection walks every object Textual built (~70k: widgets, CSS, caches) and took
        # 20-60 ms, so a scrub step that met one missed the 50 ms budget. Freezing them while the player is
        # open leaves collections only the objects made since (~2 ms); on_unmount hands them back.
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()
        if self.reader is not None:
            self.reader.close()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close":
            return self.closable
        if action == "seek":
            return not isinstance(self.focused, Input)  # arrows move the go-to-time input's cursor there
        return True

    # -- background work: its own reader, results posted as messages ------------------------------------

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan_marks(self) -> None:
        worker = get_current_worker()
        try:
            with RecordingReader(self.recording) as reader:
                scanner = MarkScanner(reader, self.mask)
                pending = scanner.scan(FIRST_SLICE_CHUNKS)
                posted_at = time.monotonic()
                self.post_message(RecordingMarksFound(pending))
                pending = Marks()
                while not scanner.done and not worker.is_cancelled:
                    while time.monotonic() - self.interaction_at < INTERACTION_QUIET_SECONDS:
                        time.sleep(INTERACTION_QUIET_SECONDS / 4)  # the user is scrubbing: the UI goes first
                    pending.absorb(scanner.scan(SCAN_STEP_CHUNKS))
                    # The scan holds the GIL while it runs; pausing after each step lets the UI thread take
                    # it at once when a key arrives, instead of waiting out a switch interval per wake-up.
                    time.sleep(SCAN_PAUSE_SECONDS)
                    if scanner.done or time.monotonic() - posted_at >= POST_INTERVAL_SECONDS:
                        self.post_message(RecordingMarksFound(pending))
                        pending = Marks()
                        posted_at = time.monotonic()
        except (OSError, RecordingError) as error:
            self.post_message(RecordingUnreadable(f"cannot read {self.recording.name}: {error}"))

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def check_integrity(self) -> None:
        from recordings.verify import verify

        report = verify(self.recording)
        self.post_message(RecordingVerified(report.status, report.summary()))

    @on(RecordingMarksFound)
    def marks_found(self, message: RecordingMarksFound) -> None:
        marks = message.marks
        self.statements.extend(marks.statements)
        self.clock.add_idle_gaps(marks.idle_gaps)
        self.query_one(Timeline).add_marks(marks.statements.times, marks.holds, marks.denials)
        self.query_one(StatementList).extend(marks.statements)
        self.scan_progress = marks.scanned_chunks / marks.total_chunks if marks.total_chunks else 1.0
        if self.scan_progress >= 1.0 and self.scan_finished_at is None:
            self.scan_finished_at = time.perf_counter()
        if marks.terminal_output and not self.terminal:
            self._use_terminal()
        if self.selected is None and self.statements:
            current = self.statement_at(self.position_us)
            self.select(current if current is not None else 0, move_clock=False)
        self._show_status()

    @on(RecordingVerified)
    def verified(self, message: RecordingVerified) -> None:
        self.query_one(VerifyBadge).show(message.status, message.detail)

    @on(RecordingUnreadable)
    def unreadable(self, message: RecordingUnreadable) -> None:
        self.query_one(VerifyBadge).show("tampered", message.detail)
        self.notify(message.detail, severity="error", timeout=10)

    def _use_terminal(self) -> None:
        if self.reader is None:
            return
        self.terminal = True
        self.terminal_replay = TerminalReplay(self.reader)
        self.add_class("-terminal")
        self._show_terminal()

    # -- selection ----------------------------------------------------------------------------------------

    @on(StatementList.Highlighted)
    def highlighted(self, event: StatementList.Highlighted) -> None:
        if event.index != self.selected:  # the user moved the list's cursor (select() moves it too)
            self.interaction_at = time.monotonic()
            self.select(event.index, move_clock=not self.playing)

    def select(self, index: int, *, move_clock: bool = True) -> None:
        """Show statement `index` and its result rows (decoded now, only for it)."""
        if self.reader is None or not self.statements:
            return
        index = max(0, min(index, len(self.statements) - 1))
        self.selected = index
        statement = self.statements[index]
        statement_list = self.query_one(StatementList)
        if statement_list.cursor_row != index:
            statement_list.move_cursor(row=index)
        if not self.terminal:
            following = self.statements[index + 1].event_index if index + 1 < len(self.statements) else None
            end = following if following is not None else self.reader.event_count
            try:
                result = read_result(self.reader, statement.event_index, end, self.mask)
            except RecordingError as error:  # a damaged chunk: say so where the rows would be
                result = StatementResult(outcome=f"cannot read this result: {error}")
            self.query_one(ResultRows).show(result)
        if move_clock:
            self.clock.seek(statement.t_us)
            self._moved(follow_statements=False)
        else:
            self._show_status()

    def statement_at(self, t_us: int) -> int | None:
        """The last statement at or before `t_us`."""
        found = bisect.bisect_right(self.statements.times, t_us) - 1
        return found if found >= 0 else None

    # -- the clock ----------------------------------------------------------------------------------------

    def advance(self, elapsed_seconds: float) -> None:
        """Move the playback clock by `elapsed_seconds` of wall time (the timer calls this; so can tests)."""
        was_playing = self.clock.playing
        if self.clock.advance(elapsed_seconds) or (was_playing and not self.clock.playing):
            self._moved()  # paused, the timer's ticks cost nothing

    def _moved(self, *, follow_statements: bool = True) -> None:
        """The playhead moved: everything that shows it follows."""
        self.query_one(Timeline).show_position(self.position_us)
        if follow_statements:
            current = self.statement_at(self.position_us)
            if current is not None and current != self.selected:
                self.select(current, move_clock=False)
        if self.terminal:
            self._show_terminal()
        self._show_status()

    def _show_terminal(self) -> None:
        if self.terminal_replay is None:
            return
        try:
            frame = self.terminal_replay.screen_at(self.position_us)
        except RecordingError as error:
            self.post_message(RecordingUnreadable(f"cannot draw the terminal: {error}"))
            self.terminal_replay = None
            return
        self.query_one(TerminalFrame).show(frame)

    def _show_status(self) -> None:
        state = "▶" if self.playing else "⏸"
        count = f"statement {self.selected + 1}/{len(self.statements)}" if self.selected is not None else ""
        clock = f"{position(self.position_us)} / {position(self.duration_us)}"
        parts = [f"{state} {clock}", f"speed {self.speed:g}x", count]
        if self.clock.skip_idle:
            parts.append("skip idle")
        if self.scan_progress < 1.0 and self.reader is not None:
            parts.append(f"indexing {self.scan_progress:.0%}")
        # layout=False: the status line's size never changes, and a layout pass per scrub step is costly.
        self.query_one("#player-status", Static).update(
            "  ".join(part for part in parts if part), layout=False
        )

    def action_toggle_play(self) -> None:
        self.clock.toggle()
        self._moved()

    def action_faster(self) -> None:
        self.clock.change_speed(1)
        self._show_status()

    def action_slower(self) -> None:
        self.clock.change_speed(-1)
        self._show_status()

    def action_skip_idle(self) -> None:
        self.clock.skip_idle = not self.clock.skip_idle
        self._show_status()

    def action_seek(self, direction: int) -> None:
        self.interaction_at = time.monotonic()
        self.clock.seek(self.position_us + direction * SEEK_US)
        self._moved()

    def seek_to(self, t_us: int) -> None:
        self.interaction_at = time.monotonic()
        self.clock.seek(t_us)
        self._moved()

    def action_step(self, direction: int) -> None:
        self.interaction_at = time.monotonic()
        if not self.statements:
            return
        if self.selected is None:
            self.select(0)
            return
        self.select(self.selected + direction)

    def action_go_to_time(self) -> None:
        self.query_one(GoToTime).ask()

    def action_close(self) -> None:
        if self.closable:
            self.dismiss()

    @on(GoToTime.Chosen)
    def go_to_chosen(self, message: GoToTime.Chosen) -> None:
        self.seek_to(message.t_us)

    @on(Timeline.Seeked)
    def timeline_clicked(self, message: Timeline.Seeked) -> None:
        self.seek_to(message.t_us)
