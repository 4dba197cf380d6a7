"""The player's timeline scrubber: the whole recording across the width, its markers, and the playhead.

Row 0 marks where statements (╷), holds (◆) and denials (▼) happen, a denial winning over a hold over a
statement in the same column; row 1 is the track with the playhead. Markers arrive in slices from the
background scan (`add_marks`) and are looked up per column by bisection, so painting costs O(width · log n)
whatever the recording's size. A click moves the playhead (`Timeline.Seeked`).
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from hoop_tui.widgets.base_style import CachedBaseStyle

MARK_NONE, MARK_STATEMENT, MARK_HOLD, MARK_DENIAL = range(4)
MARK_GLYPHS = {MARK_NONE: " ", MARK_STATEMENT: "╷", MARK_HOLD: "◆", MARK_DENIAL: "▼"}
PLAYHEAD = "●"


class Timeline(CachedBaseStyle, Widget, can_focus=False):
    """Markers and playhead over `duration_us`; `show_position` moves the playhead."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--statement",
        "timeline--hold",
        "timeline--denial",
        "timeline--played",
        "timeline--unplayed",
        "timeline--playhead",
    }
    DEFAULT_CSS = """
    Timeline {
        height: 2;
        width: 1fr;
    }
    Timeline > .timeline--statement { color: $text-muted; }
    Timeline > .timeline--hold { color: $warning; text-style: bold; }
    Timeline > .timeline--denial { color: $error; text-style: bold; }
    Timeline > .timeline--played { color: $accent; }
    Timeline > .timeline--unplayed { color: $text-disabled; }
    Timeline > .timeline--playhead { color: $accent-lighten-2; text-style: bold; }
    """

    class Seeked(Message):
        """The user clicked the timeline at `t_us`."""

        def __init__(self, t_us: int) -> None:
            super().__init__()
            self.t_us = t_us

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.duration_us = 0
        self.position_us = 0
        self.statement_times = array("q")
        self.hold_times = array("q")
        self.denial_times = array("q")
        self._marker_row: tuple[tuple[int, int, int, int], list[int]] | None = None  # (key, kinds per column)
        # What the screen shows, for tests and the bench: the playhead last painted, and when first painted.
        self.painted_position_us: int | None = None
        self.first_painted_at: float | None = None

    def set_duration(self, duration_us: int) -> None:
        self.duration_us = max(0, duration_us)
        self._marker_row = None
        self.refresh()

    def add_marks(self, statements: Iterable[int], holds: Iterable[int], denials: Iterable[int]) -> None:
        """More marker times (each list in recording order, after those already added)."""
        self.statement_times.extend(statements)
        self.hold_times.extend(holds)
        self.denial_times.extend(denials)
        self._marker_row = None
        self.refresh()

    def show_position(self, t_us: int) -> None:
        if t_us != self.position_us:
            self.position_us = t_us
            self.refresh(self._track_region())

    def _track_region(self) -> Region:
        return Region(0, 1, self.size.width, 1)

    # -- geometry -----------------------------------------------------------------------------------------

    def column_of(self, t_us: int, width: int) -> int:
        if self.duration_us <= 0 or width <= 1:
            return 0
        return min(width - 1, t_us * width // (self.duration_us + 1))

    def time_of(self, column: int, width: int) -> int:
        """The instant a click on `column` means: the start of the span the column covers (rounded up, so
        `column_of` maps it back to the same column)."""
        if width <= 1:
            return 0
        column = max(0, min(column, width))
        return -(-(self.duration_us + 1) * column // width)

    def _has_mark(self, times: array, start: int, end: int) -> bool:
        found = bisect.bisect_left(times, start)
        return found < len(times) and times[found] < end

    def marker_kinds(self, width: int) -> list[int]:
        """The strongest mark in each column (cached until the marks or the width change)."""
        key = (width, len(self.statement_times), len(self.hold_times), len(self.denial_times))
        if self._marker_row is not None and self._marker_row[0] == key:
            return self._marker_row[1]
        row: list[int] = []
        for column in range(width):
            start = self.time_of(column, width)
            end = self.time_of(column + 1, width) if column + 1 < width else self.duration_us + 1
            if self._has_mark(self.denial_times, start, end):
                row.append(MARK_DENIAL)
            elif self._has_mark(self.hold_times, start, end):
                row.append(MARK_HOLD)
            elif self._has_mark(self.statement_times, start, end):
                row.append(MARK_STATEMENT)
            else:
                row.append(MARK_NONE)
        self._marker_row = (key, row)
        return row

    # -- painting -----------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._marker_strip(width)
        if y == 1:
            return self._track_strip(width)
        return Strip.blank(width, self.base_style)

    def _marker_strip(self, width: int) -> Strip:
        styles = {
            MARK_NONE: self.base_style,
            MARK_STATEMENT: self.get_component_rich_style("timeline--statement"),
            MARK_HOLD: self.get_component_rich_style("timeline--hold"),
            MARK_DENIAL: self.get_component_rich_style("timeline--denial"),
        }
        segments: list[Segment] = []
        run_kind, run_length = MARK_NONE, 0
        for kind in self.marker_kinds(width):
            if kind != run_kind and run_length:
                segments.append(Segment(MARK_GLYPHS[run_kind] * run_length, styles[run_kind]))
                run_length = 0
            run_kind = kind
            run_length += 1
        if run_length:
            segments.append(Segment(MARK_GLYPHS[run_kind] * run_length, styles[run_kind]))
        return Strip(segments, width)

    def _track_strip(self, width: int) -> Strip:
        if width <= 0:
            return Strip.blank(0)
        head = self.column_of(self.position_us, width)
        played: Style = self.get_component_rich_style("timeline--played")
        unplayed: Style = self.get_component_rich_style("timeline--unplayed")
        playhead: Style = self.get_component_rich_style("timeline--playhead")
        self.painted_position_us = self.position_us
        if self.first_painted_at is None and self.duration_us > 0:
            self.first_painted_at = time.perf_counter()
        return Strip(
            [
                Segment("━" * head, played),
                Segment(PLAYHEAD, playhead),
                Segment("─" * (width - head - 1), unplayed),
            ],
            width,
        )

    def on_click(self, event: events.Click) -> None:
        if self.duration_us > 0:
            self.post_message(self.Seeked(self.time_of(event.x, self.size.width)))
