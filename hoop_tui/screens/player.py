"""The player for one recording: statements, play/pause, speed, seek, result rows and a verification badge.

Lazy by design: a background scan keeps one small tuple per statement, and a statement's result rows are
decoded only when it is selected (capped); no event is held by a widget.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from hoop_tui.messages import RecordingUnreadable, RecordingVerified, StatementsIndexed
from hoop_tui.widgets.formatting import position
from hoop_tui.widgets.recording_index import Mask, Statement, index_statements, no_mask, read_result
from hoop_tui.widgets.result_rows import ResultRows
from hoop_tui.widgets.statement_list import StatementList
from hoop_tui.widgets.verify_badge import VerifyBadge
from recordings.errors import RecordingError
from recordings.reader import RecordingReader

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SEEK_US = 5_000_000
TICK_SECONDS = 0.1


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
    BINDINGS = [
        Binding("space", "toggle_play", "Play/Pause", id="player.play", tooltip="Start or stop playback"),
        Binding("plus,equals_sign", "faster", "Faster", id="player.faster", tooltip="Double the speed"),
        Binding("minus", "slower", "Slower", id="player.slower", tooltip="Halve the speed"),
        Binding("right", "seek(1)", "+5s", id="player.forward", tooltip="Seek 5 seconds forward"),
        Binding("left", "seek(-1)", "-5s", id="player.back", tooltip="Seek 5 seconds back"),
        Binding("n", "step(1)", "Next", id="player.next", tooltip="Next statement"),
        Binding("p", "step(-1)", "Previous", id="player.previous", tooltip="Previous statement"),
    ]

    def __init__(self, recording: Path, *, mask: Mask = no_mask, autoplay_timer: bool = True) -> None:
        super().__init__()
        self.recording = Path(recording)
        self.mask = mask  # the viewer's render-time masking (see viewer_mask)
        self.autoplay_timer = autoplay_timer
        self.reader: RecordingReader | None = None
        self.duration_us = 0
        self.position_us = 0
        self.speed = 1.0
        self.playing = False
        self.statements: list[Statement] = []
        self._statement_times: list[int] = []
        self.selected: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="player-status-bar"):
            yield VerifyBadge(id="verify-badge")
            yield Static("", id="player-status")
        yield StatementList(id="statement-list")
        yield ResultRows(id="result-rows")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.recording.name
        try:
            self.reader = RecordingReader(self.recording)
        except (OSError, RecordingError) as error:
            self.post_message(RecordingUnreadable(f"cannot read {self.recording.name}: {error}"))
            return
        self.duration_us = self.reader.duration_us
        self._show_status()
        self.scan_statements()
        self.check_integrity()
        if self.autoplay_timer:
            self.set_interval(TICK_SECONDS, lambda: self.advance(TICK_SECONDS))

    def on_unmount(self) -> None:
        if self.reader is not None:
            self.reader.close()

    # -- background work: its own reader, results posted as messages ------------------------------------

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan_statements(self) -> None:
        try:
            with RecordingReader(self.recording) as reader:
                statements = index_statements(reader, self.mask)
        except (OSError, RecordingError) as error:
            self.post_message(RecordingUnreadable(f"cannot read {self.recording.name}: {error}"))
            return
        self.post_message(StatementsIndexed(statements))

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def check_integrity(self) -> None:
        from recordings.verify import verify

        report = verify(self.recording)
        self.post_message(RecordingVerified(report.status, report.summary()))

    @on(StatementsIndexed)
    def indexed(self, message: StatementsIndexed) -> None:
        self.statements = message.statements
        self._statement_times = [item.t_us for item in self.statements]
        self.query_one(StatementList).show(self.statements)
        if self.statements:
            self.select(0)

    @on(RecordingVerified)
    def verified(self, message: RecordingVerified) -> None:
        self.query_one(VerifyBadge).show(message.status, message.detail)

    @on(RecordingUnreadable)
    def unreadable(self, message: RecordingUnreadable) -> None:
        self.query_one(VerifyBadge).show("tampered", message.detail)
        self.notify(message.detail, severity="error", timeout=10)

    # -- selection ----------------------------------------------------------------------------------------

    @on(StatementList.Highlighted)
    def highlighted(self, event: StatementList.Highlighted) -> None:
        if event.index != self.selected:
            self.select(event.index, move_clock=not self.playing)

    def select(self, index: int, *, move_clock: bool = True) -> None:
        """Show statement `index` and its result rows (decoded now, only for it)."""
        if self.reader is None or not self.statements:
            return
        index = max(0, min(index, len(self.statements) - 1))
        self.selected = index
        statement = self.statements[index]
        if move_clock:
            self.position_us = statement.t_us
        following = self.statements[index + 1].event_index if index + 1 < len(self.statements) else None
        end = following if following is not None else self.reader.event_count
        self.query_one(ResultRows).show(read_result(self.reader, statement.event_index, end, self.mask))
        statement_list = self.query_one(StatementList)
        if statement_list.cursor_row != index:
            statement_list.move_cursor(row=index)
        self._show_status()

    def statement_at(self, t_us: int) -> int | None:
        """The last statement at or before `t_us`."""
        found = bisect.bisect_right(self._statement_times, t_us) - 1
        return found if found >= 0 else None

    # -- the clock ----------------------------------------------------------------------------------------

    def advance(self, elapsed_seconds: float) -> None:
        """Move the playback clock by `elapsed_seconds` of wall time (the timer calls this; so can tests)."""
        if not self.playing:
            return
        self.position_us = min(self.duration_us, self.position_us + int(elapsed_seconds * self.speed * 1e6))
        if self.position_us >= self.duration_us:
            self.playing = False
        self._follow_clock()

    def _follow_clock(self) -> None:
        current = self.statement_at(self.position_us)
        if current is not None and current != self.selected:
            self.select(current, move_clock=False)
        self._show_status()

    def _show_status(self) -> None:
        state = "▶" if self.playing else "⏸"
        count = f"statement {self.selected + 1}/{len(self.statements)}" if self.selected is not None else ""
        clock = f"{position(self.position_us)} / {position(self.duration_us)}"
        self.query_one("#player-status", Static).update(f"{state} {clock}  speed {self.speed:g}x  {count}")

    def action_toggle_play(self) -> None:
        if not self.playing and self.position_us >= self.duration_us:
            self.position_us = 0
        self.playing = not self.playing
        self._show_status()

    def action_faster(self) -> None:
        self.speed = SPEEDS[min(SPEEDS.index(self.speed) + 1, len(SPEEDS) - 1)]
        self._show_status()

    def action_slower(self) -> None:
        self.speed = SPEEDS[max(SPEEDS.index(self.speed) - 1, 0)]
        self._show_status()

    def action_seek(self, direction: int) -> None:
        self.position_us = max(0, min(self.duration_us, self.position_us + direction * SEEK_US))
        self._follow_clock()

    def action_step(self, direction: int) -> None:
        if not self.statements:
            return
        if self.selected is None:
            self.select(0)
            return
        self.select(self.selected + direction)
