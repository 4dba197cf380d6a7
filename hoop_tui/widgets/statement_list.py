"""The player's list of statements: a virtual list that draws only the lines on screen (Line API).

A recording can hold hundreds of thousands of statements; a DataTable with a row each took seconds to
build, so this list keeps the plain `Statement` tuples and renders one line at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hoop_tui.widgets.base_style import CachedBaseStyle
from hoop_tui.widgets.formatting import one_line, position
from hoop_tui.widgets.recording_index import Statement, StatementColumns

TIME_WIDTH = 9  # " mm:ss.d "


class StatementList(CachedBaseStyle, ScrollView, can_focus=True):
    """Statements with a cursor; moving the cursor posts `StatementList.Highlighted`.

    Lines are cut to the width, so the list never scrolls sideways: left and right stay the player's seek
    keys even when the list has the focus (a virtual width wider than the view would make them scroll it).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"statement-list--cursor", "statement-list--time"}
    DEFAULT_CSS = """
    StatementList > .statement-list--cursor {
        background: $accent;
        color: $text;
        text-style: bold;
    }
    StatementList > .statement-list--time {
        color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False, id="statements.up", tooltip="Previous line"),
        Binding("down", "cursor(1)", "Down", show=False, id="statements.down", tooltip="Next line"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="statements.page_up", tooltip="A page up"),
        Binding(
            "pagedown", "page(1)", "Page down", show=False, id="statements.page_down", tooltip="A page down"
        ),
        Binding("home", "edge(0)", "First", show=False, id="statements.first", tooltip="First statement"),
        Binding("end", "edge(1)", "Last", show=False, id="statements.last", tooltip="Last statement"),
    ]

    class Highlighted(Message):
        """The cursor moved to statement `index`."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.statements = StatementColumns()
        self.cursor_row = 0

    @property
    def row_count(self) -> int:
        return len(self.statements)

    def show(self, statements: Iterable[Statement]) -> None:
        self.statements = StatementColumns(statements)
        self.cursor_row = 0
        self.virtual_size = Size(0, len(self.statements))
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def extend(self, statements: Sequence[Statement]) -> None:
        """More statements at the end (the background scan found them); the cursor stays where it is."""
        if not statements:
            return
        self.statements.extend(statements)
        self.virtual_size = Size(0, len(self.statements))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        if index >= len(self.statements):
            return Strip.blank(width, self.base_style)
        statement = self.statements[index]
        if index == self.cursor_row:
            time_style = text_style = self.get_component_rich_style("statement-list--cursor")
        else:
            time_style = self.get_component_rich_style("statement-list--time")
            text_style = self.base_style
        text = one_line(statement.text, max(width - TIME_WIDTH - 1, 1))
        segments = [
            Segment(f" {position(statement.t_us)} ", time_style),
            Segment(f" {text}".ljust(max(width - TIME_WIDTH, 0)), text_style),
        ]
        return Strip(segments).crop(0, width)

    def move_cursor(self, *, row: int) -> None:
        if not self.statements:
            return
        row = max(0, min(row, len(self.statements) - 1))
        if row == self.cursor_row:
            return
        previous, self.cursor_row = self.cursor_row, row
        self._refresh_index(previous)
        self._refresh_index(row)
        self._keep_in_view(row)
        self.post_message(self.Highlighted(row))

    def _keep_in_view(self, row: int) -> None:
        # By hand: scroll_to_region ignores a region wider than the virtual width, which is 0 here.
        top, height = self.scroll_offset.y, max(self.scrollable_content_region.height, 1)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def _refresh_index(self, index: int) -> None:
        self.refresh(Region(0, index - self.scroll_offset.y, self.size.width, 1))

    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self.move_cursor(row=self.cursor_row + direction * max(self.size.height - 1, 1))

    def action_edge(self, last: int) -> None:
        self.move_cursor(row=len(self.statements) - 1 if last else 0)

    def on_click(self, event: events.Click) -> None:
        self.move_cursor(row=self.scroll_offset.y + event.y)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, len(self.statements))
