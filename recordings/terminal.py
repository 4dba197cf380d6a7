"""Terminal reconstruction for SSH sessions: a pyte screen fed lazily, its keyframes, and rendered frames.

The writer and the reader share :class:`TerminalModel`, so a screen rebuilt from a keyframe plus the output
after it is the screen a full replay from the start would give. Three rules make that hold whatever the
packet, flush and chunk boundaries are:

- A character pyte cannot print is dropped (pyte would stop drawing the rest of that text run instead, which
  makes the picture depend on where the output was split); deleting lines and erasing the display treat
  every row and column alike (pyte's versions depend on which cells its sparse buffer happens to store).
- An escape sequence that fails inside pyte is dropped at the character that failed, and one still open
  after :data:`MAX_SEQUENCE` characters is abandoned at that character.
- A keyframe stores the escape sequence in progress and each stream's undecoded UTF-8 bytes, so the parser
  resumes exactly where it was.

Replaying is the slow part (pyte draws ~1 MB/s), so plain output that scrolls entirely off the screen before
the instant asked for is skipped rather than drawn; see :meth:`TerminalModel._skip_scrolled_off`.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import pyte
from pyte import modes as pyte_modes
from pyte.charsets import LAT1_MAP
from pyte.screens import Char, Cursor, Margins, Savepoint, wcwidth

from recordings import events as ev

DEFAULT_COLS = 80
DEFAULT_ROWS = 24
# A client picks its window size; cap it so a hostile size cannot make keyframes huge.
MAX_COLS = 500
MAX_ROWS = 200
MAX_SEQUENCE = 4096
MAX_SAVEPOINTS = 8

_INTRODUCER_RE = re.compile("[\x1b\x9b\x9d]")
# Characters fed past the last sequence introducer before the rest counts as plain text: long enough for
# every common sequence to finish.
_SEQUENCE_ALLOWANCE = 64
# C0 controls pyte executes immediately while collecting CSI parameters (see pyte.Stream._parser_fsm).
_CONTROLS_EXECUTED_IN_CSI = re.compile("[\x07-\x0d]")

# Builds a Char from a plain tuple without namedtuple's per-call keyword handling.
_new_char = tuple.__new__
_FLAG_NAMES = ("bold", "italics", "underscore", "strikethrough", "reverse", "blink")
_DEFAULT_MODES = frozenset({pyte_modes.DECAWM, pyte_modes.DECTCEM})


def clamp_size(cols: int, rows: int) -> tuple[int, int]:
    return max(1, min(int(cols), MAX_COLS)), max(1, min(int(rows), MAX_ROWS))


def _printable(char: str) -> bool:
    width = wcwidth(char)
    return width > 0 or (width == 0 and unicodedata.combining(char) != 0)


class TerminalScreen(pyte.Screen):
    """pyte's screen, changed so its picture depends only on the bytes drawn: not on how output was split,
    nor on which rows of pyte's sparse buffer happen to exist."""

    def draw(self, data: str) -> None:
        if data.isascii() and data.isprintable():
            if (
                pyte_modes.IRM not in self.mode
                and self.charset == 0
                and self.g0_charset is LAT1_MAP
                and self.cursor.x <= self.columns
            ):
                self._draw_ascii(data)
                return
        else:
            data = "".join(char for char in data if _printable(char))
        super().draw(data)

    def _draw_ascii(self, data: str) -> None:
        """pyte's draw for one-column characters, a run at a time: replaying is the slow part of rendering
        a frame, and pyte builds each cell with ``namedtuple._replace``."""
        cursor = self.cursor
        columns = self.columns
        autowrap = pyte_modes.DECAWM in self.mode
        glyphs = _glyphs_for(tuple(cursor.attrs)[1:])
        position, end = 0, len(data)
        while position < end:
            if cursor.x == columns:
                if autowrap:
                    self.dirty.add(cursor.y)
                    self.carriage_return()
                    self.linefeed()
                else:
                    cursor.x -= 1
            row = self.buffer[cursor.y]
            x = cursor.x
            take = min(columns - x, end - position)
            cells = map(glyphs.__getitem__, data[position : position + take])
            row.update(zip(range(x, x + take), cells, strict=True))
            cursor.x = x + take
            position += take
        self.dirty.add(cursor.y)

    @property
    def display(self) -> list[str]:
        """The visible lines. pyte's own version crashes on a wide character's stub cell left behind when
        the character itself was overwritten; such a stub shows as a blank here."""
        blank = " " * self.columns
        lines = []
        for y in range(self.lines):
            row = self.buffer.get(y)
            if not row:
                lines.append(blank)
                continue
            text = "".join([row[x].data for x in range(self.columns)])
            if len(text) == self.columns and text.isascii():
                lines.append(text)  # one column per character: nothing wide to account for
                continue
            parts = []
            covered = False
            for x in range(self.columns):
                if covered:  # the second column of a wide character
                    covered = False
                    continue
                data = row[x].data or " "
                parts.append(data)
                covered = wcwidth(data[0]) == 2
            lines.append("".join(parts))
        return lines

    def delete_lines(self, count: int | None = None) -> None:
        # pyte leaves a row in place when the row that should move up into it was never written to, so
        # its result depends on which rows happen to exist in its sparse buffer. Move or blank every row.
        count = count or 1
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if not top <= self.cursor.y <= bottom:
            return
        self.dirty.update(range(self.cursor.y, self.lines))
        for y in range(self.cursor.y, bottom + 1):
            source = y + count
            if source <= bottom and source in self.buffer:
                self.buffer[y] = self.buffer.pop(source)
            else:
                self.buffer.pop(y, None)
        self.carriage_return()

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        # pyte recolours only the cells its sparse rows happen to store; erase every column instead.
        if how == 0:
            rows = range(self.cursor.y + 1, self.lines)
        elif how == 1:
            rows = range(self.cursor.y)
        elif how in (2, 3):
            rows = range(self.lines)
        else:
            return
        self.dirty.update(rows)
        for y in rows:
            line = self.buffer[y]
            for x in [x for x in line if x >= self.columns]:
                del line[x]
            for x in range(self.columns):
                line[x] = self.cursor.attrs
        if how in (0, 1):
            self.erase_in_line(how)

    def save_cursor(self) -> None:
        # pyte keeps every DECSC forever; real terminals keep one. A short stack bounds keyframes.
        super().save_cursor()
        del self.savepoints[:-MAX_SAVEPOINTS]


class TolerantStream(pyte.Stream):
    """pyte's parser, but a sequence that makes pyte raise is dropped at that character instead of aborting
    the rest of the feed (pyte would lose everything after it in the same call)."""

    def _send_to_parser(self, data: str) -> bool | None:
        try:
            return self._parser.send(data)
        except Exception:
            self._initialize_parser()
            return True

    @property
    def in_ground_state(self) -> bool:
        return bool(self._taking_plain_text)

    def abandon_sequence(self) -> None:
        self._initialize_parser()


class _Glyphs(dict):
    """Cells of one pen by character. Cells are immutable tuples, so every cell showing the same character
    in the same pen can be the same object: drawing becomes a dict lookup instead of building a tuple."""

    __slots__ = ("pen",)

    def __init__(self, pen: tuple) -> None:
        super().__init__()
        self.pen = pen

    def __missing__(self, char: str) -> Char:
        glyph = self[char] = _new_char(Char, (char, *self.pen))
        return glyph


_GLYPHS: dict[tuple, _Glyphs] = {}
_MAX_PENS = 256


def _glyphs_for(pen: tuple) -> _Glyphs:
    glyphs = _GLYPHS.get(pen)
    if glyphs is None:
        if len(_GLYPHS) >= _MAX_PENS:  # 24-bit colours could make pens endless; start over
            _GLYPHS.clear()
        glyphs = _GLYPHS[pen] = _Glyphs(pen)
    return glyphs


def _last_introducer(text: str) -> int:
    return max(text.rfind("\x1b"), text.rfind("\x9b"), text.rfind("\x9d"))


def _attrs_key(char: Char) -> tuple[str, str, int]:
    return _pack_attrs(tuple(char)[1:])


def _pack_attrs(attrs: tuple) -> tuple[str, str, int]:
    """``(fg, bg, flag bits)`` from a cell's attributes (everything after its text)."""
    fg, bg, *flags = attrs
    return fg, bg, sum(1 << bit for bit, flag in enumerate(flags) if flag)


def _char_from_attrs(data: str, fg: str, bg: str, flags: int) -> Char:
    return _new_char(Char, (data, fg, bg, *(bool(flags & (1 << bit)) for bit in range(len(_FLAG_NAMES)))))


@dataclass(frozen=True)
class ScreenFrame:
    """The terminal as it looked at one instant."""

    cols: int
    rows: int
    lines: tuple[str, ...]
    cursor_x: int
    cursor_y: int
    cursor_hidden: bool
    title: str
    screen: TerminalScreen = field(repr=False, compare=False)

    @property
    def text(self) -> str:
        """The screen as plain text, trailing blanks trimmed: handy for search and tests."""
        return "\n".join(line.rstrip() for line in self.lines).rstrip("\n")


class TerminalModel:
    """A terminal fed with recorded output; drawing is deferred until the screen is needed."""

    def __init__(self, cols: int = DEFAULT_COLS, rows: int = DEFAULT_ROWS) -> None:
        cols, rows = clamp_size(cols, rows)
        self.screen = TerminalScreen(cols, rows)
        self._stream = TolerantStream(self.screen)
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._pending: list[str] = []
        self._pending_chars = 0
        self._pending_through_introducer = 0
        self._pending_tail_newlines = 0
        self._sequence = ""

    # -- feeding -----------------------------------------------------------------------------------------

    def feed_output(self, data: bytes, stream: str = "stdout") -> None:
        """Queue one ``ssh.output`` payload; cheap (no drawing happens here)."""
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data)
        if not text:
            return
        self._pending.append(text)
        last = _last_introducer(text)
        if last >= 0:
            self._pending_through_introducer = self._pending_chars + last + 1
            self._pending_tail_newlines = text.count("\n", last)
        else:
            self._pending_tail_newlines += text.count("\n")
        self._pending_chars += len(text)

    def resize(self, cols: int, rows: int) -> None:
        cols, rows = clamp_size(cols, rows)
        self.flush()
        self.screen.resize(lines=rows, columns=cols)

    @property
    def replay_cost(self) -> int:
        """Roughly how many characters pyte must draw to catch up with the queued output."""
        tail = self._pending_chars - self._pending_through_introducer
        if self._pending_tail_newlines > 2 * self.screen.lines + 1 and self._margins_are_full():
            tail = min(tail, (2 * self.screen.lines + 2) * self.screen.columns)
        return self._pending_through_introducer + tail

    def flush(self) -> None:
        """Draw everything queued so far."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_chars = self._pending_through_introducer = self._pending_tail_newlines = 0
        self._feed(text)

    def _feed(self, text: str) -> None:
        last = _last_introducer(text)
        if last >= 0:
            cut = min(len(text), last + _SEQUENCE_ALLOWANCE)
            self._feed_tracked(text[:cut])
            text = text[cut:]
            if not text:
                return
        if self._sequence:
            self._feed_tracked(text)
            return
        # From here on ``text`` holds no sequence introducer and the parser is in its ground state.
        self._stream.feed(self._skip_scrolled_off(text))

    def _feed_tracked(self, text: str) -> None:
        """Feed text that may contain escape sequences, remembering any sequence left open at the end."""
        start = 0
        for match in _INTRODUCER_RE.finditer(text, 1):
            self._feed_segment(text[start : match.start()])
            start = match.start()
        self._feed_segment(text[start:])

    def _feed_segment(self, segment: str) -> None:
        # A segment holds at most one introducer, at its start, so an open sequence began either there or
        # in an earlier segment: what is open is ``self._sequence`` plus (part of) this segment.
        if not segment:
            return
        room = MAX_SEQUENCE - len(self._sequence)
        if len(segment) > room:
            self._stream.feed(segment[:room])
            if not self._stream.in_ground_state:
                self._stream.abandon_sequence()
            self._sequence = ""
            self._stream.feed(segment[room:])
            return
        self._stream.feed(segment)
        self._sequence = "" if self._stream.in_ground_state else self._sequence + segment

    def _margins_are_full(self) -> bool:
        margins = self.screen.margins
        return margins is None or (margins.top == 0 and margins.bottom == self.screen.lines - 1)

    def _skip_scrolled_off(self, text: str) -> str:
        """Drop a prefix of plain ``text`` that cannot show on the final screen.

        With the cursor on the screen: after a carriage return the cursor column no longer depends on what
        came before; after a further ``2 * rows`` line feeds (with the scroll region the whole screen) every
        row on the screen was blanked by scrolling and drawn afresh, and the cursor sits on the bottom row.
        Plain text changes no mode, margin, tab stop or pen, so the screen that results from the rest of the
        text alone (from that carriage return on) is the screen the whole text gives.
        """
        needed = 2 * self.screen.lines + 1
        if len(text) < needed * 2 or not self._margins_are_full():
            return text
        if not 0 <= self.screen.cursor.y < self.screen.lines:
            return text  # pyte can leave the cursor below a shrunk screen, drawing into rows that reappear
        position = len(text)
        for _ in range(needed):
            position = text.rfind("\n", 0, position)
            if position < 0:
                return text
        carriage_return = text.rfind("\r", 0, position)
        return text[carriage_return:] if carriage_return > 0 else text

    # -- keyframes ---------------------------------------------------------------------------------------

    def keyframe(self) -> dict[str, Any]:
        """The whole terminal state as a compact msgpack-ready map."""
        self.flush()
        screen = self.screen
        default_key = _attrs_key(screen.default_char)
        default_attrs = tuple(screen.default_char)[1:]
        lines: list[str | list[str]] = []
        styles: list[list[Any]] = []
        # pyte can leave cells (and the cursor) just outside the screen, e.g. after a shrink; they show again
        # when it grows, so a keyframe records every stored row and cell, not just the visible ones.
        height = max(screen.lines, max(screen.buffer, default=-1) + 1)
        for y in range(height):
            row = screen.buffer.get(y)
            if not row:
                lines.append("")
                continue
            width = max(row) + 1
            cells = [row[x] for x in range(width)]
            data = [cell[0] for cell in cells]
            text = "".join(data)
            if len(text) == width and "" not in data:  # every cell holds exactly one character
                lines.append(text.rstrip(" "))
            else:
                while data and data[-1] == " ":
                    data.pop()
                lines.append(data)
            attrs = [cell[1:] for cell in cells]
            if attrs.count(default_attrs) == width:
                continue  # the common case: nothing styled on this row
            attrs.append(default_attrs)
            run_start, run_attrs = 0, default_attrs
            for x, cell_attrs in enumerate(attrs):
                if cell_attrs != run_attrs:
                    if run_attrs != default_attrs:
                        styles.append([y, run_start, x - run_start, *_pack_attrs(run_attrs)])
                    run_start, run_attrs = x, cell_attrs
        while lines and lines[-1] == "":
            lines.pop()
        cursor = screen.cursor
        frame: dict[str, Any] = {
            "cols": screen.columns,
            "rows": screen.lines,
            "lines": lines,
            "cursor": [cursor.x, cursor.y, int(cursor.hidden)],
        }
        if styles:
            frame["styles"] = styles
        if _attrs_key(cursor.attrs) != default_key:
            frame["pen"] = list(_attrs_key(cursor.attrs))
        if set(screen.mode) != _DEFAULT_MODES:
            frame["mode"] = sorted(screen.mode)
        if screen.margins is not None:
            frame["margins"] = [screen.margins.top, screen.margins.bottom]
        if screen.tabstops != set(range(8, screen.columns, 8)):
            frame["tabstops"] = sorted(screen.tabstops)
        if screen.savepoints:
            frame["saved"] = [
                [
                    p.cursor.x,
                    p.cursor.y,
                    int(p.cursor.hidden),
                    *_attrs_key(p.cursor.attrs),
                    int(p.origin),
                    int(p.wrap),
                ]
                for p in screen.savepoints
            ]
        if screen.saved_columns is not None:
            frame["saved_columns"] = screen.saved_columns
        if screen.title:
            frame["title"] = screen.title
        if screen.icon_name:
            frame["icon_name"] = screen.icon_name
        if self._sequence:
            frame["sequence"] = self._sequence
        undecoded = {name: d.getstate()[0] for name, d in self._decoders.items() if d.getstate()[0]}
        if undecoded:
            frame["undecoded"] = undecoded
        return frame

    @classmethod
    def from_keyframe(cls, frame: dict[str, Any]) -> TerminalModel:
        """A model in exactly the state :meth:`keyframe` captured."""
        model = cls(frame["cols"], frame["rows"])
        screen = model.screen
        screen.mode = set(frame.get("mode", _DEFAULT_MODES))
        default = screen.default_char
        glyphs = _glyphs_for(tuple(default)[1:])
        for y, line in enumerate(frame.get("lines", ())):
            if line:
                row = screen.buffer[y]
                row.update((x, glyphs[data]) for x, data in enumerate(line) if data != " ")
        for y, x, count, fg, bg, flags in frame.get("styles", ()):
            row = screen.buffer[y]
            for column in range(x, x + count):
                row[column] = _char_from_attrs(row[column].data, fg, bg, flags)
        x, y, hidden = frame["cursor"]
        screen.cursor.x, screen.cursor.y, screen.cursor.hidden = x, y, bool(hidden)
        if "pen" in frame:
            screen.cursor.attrs = _char_from_attrs(" ", *frame["pen"])
        else:
            screen.cursor.attrs = default
        if "margins" in frame:
            screen.margins = Margins(*frame["margins"])
        if "tabstops" in frame:
            screen.tabstops = set(frame["tabstops"])
        for saved in frame.get("saved", ()):
            sx, sy, shidden, fg, bg, flags, origin, wrap = saved
            cursor = Cursor(sx, sy, _char_from_attrs(" ", fg, bg, flags))
            cursor.hidden = bool(shidden)
            screen.savepoints.append(
                Savepoint(
                    cursor, screen.g0_charset, screen.g1_charset, screen.charset, bool(origin), bool(wrap)
                )
            )
        screen.saved_columns = frame.get("saved_columns")
        screen.title = frame.get("title", "")
        screen.icon_name = frame.get("icon_name", "")
        for name, undecoded in frame.get("undecoded", {}).items():
            decoder = model._decoders[name] = codecs.getincrementaldecoder("utf-8")("replace")
            decoder.setstate((undecoded, 0))
        sequence = frame.get("sequence", "")
        if sequence:
            # Controls inside a CSI already acted on the screen captured above; feeding them again would
            # act twice, and they do not change how the CSI's parameters parse.
            if sequence.startswith(("\x1b[", "\x9b")):
                introducer = 2 if sequence[0] == "\x1b" else 1
                sequence = sequence[:introducer] + _CONTROLS_EXECUTED_IN_CSI.sub("", sequence[introducer:])
            model._stream.feed(sequence)
            model._sequence = frame["sequence"]
        return model

    def frame(self) -> ScreenFrame:
        """The screen now, with everything queued drawn."""
        self.flush()
        screen = self.screen
        return ScreenFrame(
            cols=screen.columns,
            rows=screen.lines,
            lines=tuple(screen.display),
            cursor_x=screen.cursor.x,
            cursor_y=screen.cursor.y,
            cursor_hidden=screen.cursor.hidden,
            title=screen.title,
            screen=screen,
        )


def apply_terminal_event(model: TerminalModel, event: list) -> bool:
    """Feed one recorded event to a terminal model; True when it was output or a resize."""
    kind = event[1]
    if kind == ev.SSH_OUTPUT and len(event) >= 4 and isinstance(event[3], bytes):
        model.feed_output(event[3], event[2] if isinstance(event[2], str) else "stdout")
        return True
    if kind == ev.SSH_RESIZE and len(event) >= 4 and isinstance(event[2], int) and isinstance(event[3], int):
        model.resize(event[2], event[3])
        return True
    return False
