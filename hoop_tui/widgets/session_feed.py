"""The live session feed: statements, decisions, approvals, rows and errors as they happen (Line API).

Only the lines on screen are built and drawn: entries are placed by their height (cheap to count), and an
entry's lines are made the first time one of them shows, kept until the entry changes. The feed holds at
most `FeedModel.max_entries` entries, so a session that runs for days keeps the widget's memory flat, and
catching up with a long recording costs a pass over its events, not a rendering of each.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hoop_tui.widgets.feed_entries import FeedEntry, FeedModel
from hoop_tui.widgets.feed_lines import entry_height, entry_lines


class _Placed:
    """One entry at one version: its height, and its lines and strips once drawn."""

    __slots__ = ("entry", "height", "lines", "strips", "version")

    def __init__(self, entry: FeedEntry) -> None:
        self.entry = entry
        self.version = entry.version
        self.height = entry_height(entry)
        self.lines: list[Text] | None = None
        self.strips: list[Strip | None] = []

    def line(self, offset: int) -> Text:
        if self.lines is None:
            self.lines = entry_lines(self.entry)
            self.strips = [None] * len(self.lines)
        return self.lines[offset]


class SessionFeed(ScrollView, can_focus=True):
    """Apply a session's events with `apply(events)`; the view follows the newest line unless scrolled up."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False, id="feed.up", tooltip="Scroll up a line"),
        Binding("down", "scroll_down", "Down", show=False, id="feed.down", tooltip="Scroll down a line"),
        Binding("pageup", "page_up", "Page up", show=False, id="feed.page_up", tooltip="A page up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="feed.page_down", tooltip="A page down"),
        Binding("home", "scroll_home", "Top", show=False, id="feed.top", tooltip="The oldest entry kept"),
        Binding("end", "scroll_end", "Follow", id="feed.follow", tooltip="The newest line, and follow it"),
    ]

    def __init__(self, *, max_entries: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = FeedModel(max_entries) if max_entries else FeedModel()
        self._placed: list[_Placed] = []
        self._starts: list[int] = []  # first line of each placed entry
        self._line_count = 0
        self._widest = 0  # of the lines drawn so far: the feed scrolls sideways as far as it has seen

    @property
    def entries(self) -> list[FeedEntry]:
        return list(self.model.entries)

    @property
    def line_count(self) -> int:
        return self._line_count

    def apply(self, events: Iterable[object]) -> None:
        """Fold `events` in and redraw; keeps following the newest line when the view was at the bottom."""
        following = self.is_vertical_scroll_end or self._line_count <= self.size.height
        for event in events:
            self.model.apply(event)
        self._place()
        if following:
            self.scroll_end(animate=False, x_axis=False)

    def _place(self) -> None:
        known = {placed.entry.serial: placed for placed in self._placed}
        placed_now: list[_Placed] = []
        starts: list[int] = []
        line = 0
        for entry in self.model.entries:
            placed = known.get(entry.serial)
            if placed is None or placed.version != entry.version:
                placed = _Placed(entry)
            placed_now.append(placed)
            starts.append(line)
            line += placed.height
        self._placed, self._starts, self._line_count = placed_now, starts, line
        self.virtual_size = Size(max(self._widest, self.size.width), line)
        self.refresh()

    def text_lines(self) -> list[str]:
        """Every line of the feed as plain text, top to bottom (for tests and copy)."""
        return [placed.line(offset).plain for placed in self._placed for offset in range(placed.height)]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        rich_style = self.rich_style
        if index >= self._line_count or not self._placed:
            return Strip.blank(width, rich_style)
        position = bisect.bisect_right(self._starts, index) - 1
        placed = self._placed[position]
        offset = index - self._starts[position]
        text = placed.line(offset)
        strip = placed.strips[offset]
        if strip is None:
            strip = placed.strips[offset] = Strip(text.render(self.app.console), text.cell_len)
            if strip.cell_length > self._widest:
                self._widest = strip.cell_length
                self.call_later(self._widen)
        return strip.apply_style(rich_style).crop_extend(scroll_x, scroll_x + width, rich_style)

    def _widen(self) -> None:
        if self._widest > self.virtual_size.width:
            self.virtual_size = Size(self._widest, self._line_count)
