"""The terminal screen of an SSH recording at the playhead: one `ScreenFrame`, drawn in colour."""

from __future__ import annotations

from typing import Any, ClassVar

from pyte.screens import wcwidth
from rich.segment import Segment
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hoop_tui.widgets.base_style import CachedBaseStyle
from hoop_tui.widgets.recording_index import Mask, no_mask
from hoop_tui.widgets.terminal_style import Attributes, attributes_style, cell_attributes
from recordings.terminal import ScreenFrame

Row = tuple[tuple[str, Attributes | None], ...]  # runs of text and their attributes (None: plain)


def styled_row(frame: ScreenFrame, y: int, text: str) -> Row:
    """Row `y` of the frame as runs of equal attributes; `text` is the row as the frame shows it, which the
    runs add up to (a wide character's second cell is skipped, as in `ScreenFrame.lines`)."""
    row = frame.screen.buffer.get(y)
    if not row:
        return ((text, None),)
    runs: list[tuple[str, Attributes | None]] = []
    run_chars: list[str] = []
    run_attributes: Attributes | None = None
    covered = False
    for x in range(frame.cols):
        if covered:
            covered = False
            continue
        char = row[x]
        data = char.data or " "
        covered = wcwidth(data[0]) == 2
        attributes = cell_attributes(char)
        if attributes != run_attributes and run_chars:
            runs.append(("".join(run_chars), run_attributes))
            run_chars = []
        run_attributes = attributes
        run_chars.append(data)
    if run_chars:
        runs.append(("".join(run_chars), run_attributes))
    if "".join(part for part, _ in runs) != text:
        return ((text, None),)  # should not happen; never show text other than the frame's own
    return tuple(runs)


class TerminalFrame(CachedBaseStyle, ScrollView, can_focus=False):
    """Shows the lines of a frame with their colours and the cursor cell highlighted.

    A line the viewer's mask changes is shown masked and plain (its colours belonged to the unmasked text).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"terminal-frame--cursor"}
    DEFAULT_CSS = """
    TerminalFrame {
        background: $background;
    }
    TerminalFrame > .terminal-frame--cursor {
        text-style: reverse;
    }
    """

    def __init__(self, mask: Mask = no_mask, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask = mask
        self.lines: tuple[str, ...] = ()
        self.rows: tuple[Row, ...] = ()
        self.cursor: tuple[int, int] | None = None

    @property
    def text(self) -> str:
        """What the frame shows, trailing blanks trimmed (for tests and search)."""
        return "\n".join(line.rstrip() for line in self.lines).rstrip("\n")

    def show(self, frame: ScreenFrame) -> None:
        lines: list[str] = []
        rows: list[Row] = []
        for y, line in enumerate(frame.lines):
            masked = self.mask(line)
            lines.append(masked)
            rows.append(styled_row(frame, y, line) if masked == line else ((masked, None),))
        cursor = None if frame.cursor_hidden else (frame.cursor_x, frame.cursor_y)
        if tuple(rows) == self.rows and cursor == self.cursor:
            return
        previous_rows, previous_cursor = self.rows, self.cursor
        self.lines, self.rows, self.cursor = tuple(lines), tuple(rows), cursor
        size = Size(max((len(line) for line in lines), default=0), len(lines))
        if size != self.virtual_size or len(previous_rows) != len(rows):
            self.virtual_size = size
            self.refresh()
            return
        # A scrub step usually changes a few rows: repaint those, and the rows the cursor left and entered.
        changed = {y for y, (old, new) in enumerate(zip(previous_rows, rows, strict=True)) if old != new}
        changed.update(position[1] for position in (previous_cursor, cursor) if position is not None)
        scroll_y = self.scroll_offset.y
        for y in changed:
            self.refresh(Region(0, y - scroll_y, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        row_index = scroll_y + y
        if row_index >= len(self.rows):
            return Strip.blank(width, self.base_style)
        base = self.base_style
        segments = [
            Segment(text, base + attributes_style(attributes) if attributes is not None else base)
            for text, attributes in self.rows[row_index]
        ]
        strip = Strip(segments)
        if self.cursor is not None and self.cursor[1] == row_index:
            strip = self._with_cursor(strip, self.cursor[0])
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _with_cursor(self, strip: Strip, column: int) -> Strip:
        strip = strip.extend_cell_length(column + 1, self.base_style)
        before, cell, after = strip.divide([column, column + 1, strip.cell_length])
        cursor_style = self.get_component_rich_style("terminal-frame--cursor")
        cell = cell.apply_style(cursor_style)
        return Strip.join([before, cell, after])
