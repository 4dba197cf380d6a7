"""A live SSH session's terminal: recorded output fed to `TerminalModel`, its screen drawn with colours.

Output is queued cheaply (`TerminalModel` draws lazily); the screen is drawn once per batch of events, not
once per packet, so a chatty session costs one pyte catch-up per refresh.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from hoop_tui.widgets.terminal_style import attributes_style, cell_attributes
from recordings import events as kinds
from recordings.terminal import TerminalModel, apply_terminal_event

CURSOR = Style(reverse=True)
DRAW_INTERVAL = 0.05  # seconds: at most 20 pictures a second


class TerminalView(ScrollView):
    """`apply(events)` feeds output, resizes and keyframes; the picture is the terminal's screen now."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.terminal = TerminalModel()
        self._strips: list[Strip] = []
        self.screen_text: tuple[str, ...] = ()  # the screen as plain lines, for tests and search
        self._next_draw_at = float("-inf")
        self._draw_pending = False

    def apply(self, events: Iterable[object]) -> bool:
        """Feed the terminal events among `events`; True (and a redraw) when the screen may have changed."""
        changed = False
        for event in events:
            if not isinstance(event, (list, tuple)) or len(event) < 2:
                continue
            kind = event[1]
            if kind == kinds.SCREEN_KEYFRAME and isinstance(kinds.event_field(event, 0), dict):
                try:
                    self.terminal = TerminalModel.from_keyframe(kinds.event_field(event, 0))  # type: ignore[arg-type]
                except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                    continue  # a keyframe we cannot read: the output after it still draws
                changed = True
            elif kind in (kinds.SSH_OUTPUT, kinds.SSH_RESIZE):
                changed = apply_terminal_event(self.terminal, event) or changed
        if changed:
            self._draw_soon()
        return changed

    def _draw_soon(self) -> None:
        """Draw now, or once `DRAW_INTERVAL` has passed since the last draw: a big screen costs tens of
        milliseconds to draw, and output can come in hundreds of bursts a second. A slow draw waits twice
        its own time before the next, so drawing never takes over the event loop."""
        wait = self._next_draw_at - time.monotonic()
        if wait <= 0:
            self._draw()
        elif not self._draw_pending:
            self._draw_pending = True
            self.set_timer(wait, self._draw)

    def _draw(self) -> None:
        self._draw_pending = False
        started = time.monotonic()
        frame = self.terminal.frame()
        screen = frame.screen
        strips = []
        for y in range(frame.rows):
            row = screen.buffer.get(y) or {}
            segments = []
            for x in range(frame.cols):
                char = row.get(x) if row else None
                if char is None:
                    text, style = " ", Style.null()
                else:
                    text = char.data or ""
                    if not text:
                        continue  # the second column of a wide character
                    style = attributes_style(cell_attributes(char))
                if not frame.cursor_hidden and (x, y) == (frame.cursor_x, frame.cursor_y):
                    style = style + CURSOR
                segments.append(Segment(text, style))
            strips.append(Strip(Segment.simplify(segments)))
        self._strips = strips
        self.screen_text = frame.lines
        self.virtual_size = Size(frame.cols, frame.rows)
        finished = time.monotonic()
        self._next_draw_at = finished + max(DRAW_INTERVAL, 2 * (finished - started))
        self.styles.height = frame.rows + 2  # the terminal's own height and the border; CSS caps it
        # A shell's action is where its cursor is: keep that row in view when the screen is cut.
        self.scroll_to(y=max(0, frame.cursor_y - self.scrollable_content_region.height + 1), animate=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        index = scroll_y + y
        if index >= len(self._strips):
            return Strip.blank(width, self.rich_style)
        return self._strips[index].apply_style(self.rich_style).crop_extend(scroll_x, scroll_x + width, None)
