"""The player's list of statements: a virtual list that draws only the lines on screen (Line API).

A recording can hold hundreds of thousands of statements; a DataTable with a row each took seconds to
build, so this list keeps the plain `Statement` tuples and renders one line at a time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hoop_tui.widgets.formatting import one_line, position
from hoop_tui.widgets.recording_index import Statement

TIME_WIDTH = 9  # " mm:ss.d "


class StatementList(ScrollView, can_focus=True):
    """Statements with a cursor; moving the cursor posts `StatementList.Highlighted`."""

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
        self.statements: list[Statement] = []
        self.cursor_row = 0

    @property
    def row_count(self) -> int:
        return len(self.statements)

    def show(self, statements: list[Statement]) -> None:
        self.statements = statements
        self.cursor_row = 0
        self.virtual_size = Size(self.size.width, len(statements))
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = self.scroll_offset.y + y
        if index >= len(self.statements):
            return Strip.blank(width, self.rich_style)
        statement = self.statements[index]
        if index == self.cursor_row:
            time_style = text_style = self.get_component_rich_style("statement-list--cursor")
        else:
            time_style = self.get_component_rich_style("statement-list--time")
            text_style = self.rich_style
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
        self.scroll_to_region(Region(0, row, 1, 1), animate=False)
        self.post_message(self.Highlighted(row))

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
        self.virtual_size = Size(self.size.width, len(self.statements))
