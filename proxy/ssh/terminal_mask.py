"""Masking of what a terminal *shows*: values split by cursor control in pty output (line editors redrawing).

A pty's output is not plain text. Readline, for one, redraws the line being edited when it reaches the right
margin: "dave@\\r@example.net" paints `dave@example.net` across two screen rows, and no byte sequence of it is
an address. So after the line-buffered masker has masked what is contiguous, each line that carries cursor
control (a CR not ending the line, a backspace, an escape sequence) is read a second time as the screen
would show it: escape sequences dropped, CR and backspace applied as overwrites, a character redrawn right
after a CR taken once. What is found there is masked in the raw line, escapes inside it included.
"""

from __future__ import annotations

import re

from proxy.masking.masker import Counts, Masker

# A line needs the second reading only when it moves the cursor or erases: ESC, backspace, DEL (what a
# terminal's erase key sends in typed input), or CR not before LF.
_CURSOR_CONTROL = re.compile(rb"\x1b|\x08|\x7f|\r(?!\n|$)")
_CSI_FINAL = re.compile(r"[@-~]")
_ESCAPE_MAX = 64  # a longer "sequence" is garbage; stop skipping


def _skip_escape(text: str, index: int) -> int:
    """The index after the escape sequence starting at text[index] (ESC)."""
    if index + 1 >= len(text):
        return index + 1
    kind = text[index + 1]
    if kind == "[":  # CSI: parameters, then one final byte
        found = _CSI_FINAL.search(text, index + 2, index + 2 + _ESCAPE_MAX)
        return found.end() if found else index + 2
    if kind == "]":  # OSC: until BEL or ST
        for end in range(index + 2, min(len(text), index + 2 + _ESCAPE_MAX)):
            if text[end] == "\x07":
                return end + 1
            if text[end] == "\x1b" and end + 1 < len(text) and text[end + 1] == "\\":
                return end + 2
        return index + 2
    return index + 2  # a two-character escape (ESC 7, ESC =, ...)


def visible_text(line: str) -> tuple[str, list[int]]:
    """What `line` paints, left to right, with the index in `line` of each painted character."""
    chars: list[str] = []
    where: list[int] = []
    index = 0
    after_return = False
    length = len(line)
    while index < length:
        char = line[index]
        if char == "\x1b":
            index = _skip_escape(line, index)
            continue
        if char == "\r":
            after_return = index + 1 < length and line[index + 1] != "\n"
            index += 1
            continue
        if char in "\x08\x7f":  # backspace and DEL: the line editor erases the character before
            if chars:
                chars.pop()
                where.pop()
            index += 1
            continue
        if after_return and chars and chars[-1] == char:
            # The redraw of the character at the margin: the screen shows it once.
            after_return = False
            index += 1
            continue
        after_return = False
        chars.append(char)
        where.append(index)
        index += 1
    return "".join(chars), where


class TerminalMasker:
    """The second reading of masked pty output, line by line (see the module docstring)."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker

    def mask(self, data: bytes) -> tuple[bytes, Counts]:
        if not _CURSOR_CONTROL.search(data):
            return data, {}
        counts: Counts = {}
        lines = data.split(b"\n")
        for number, line in enumerate(lines):
            if _CURSOR_CONTROL.search(line):
                lines[number] = self._mask_line(line, counts)
        return b"\n".join(lines), counts

    def _mask_line(self, raw: bytes, counts: Counts) -> bytes:
        line = raw.decode("utf-8", "surrogateescape")
        shown, where = visible_text(line)
        spans = self._masker.find(shown)
        if not spans:
            return raw
        pieces: list[str] = []
        last = 0
        for start, end, entity in spans:
            raw_start, raw_end = where[start], where[end - 1] + 1
            if raw_start < last:
                continue
            replacement = self._masker.replacement(entity, shown[start:end])
            if replacement == shown[start:end]:
                continue
            pieces.append(line[last:raw_start])
            pieces.append(replacement)
            counts[entity] = counts.get(entity, 0) + 1
            last = raw_end
        pieces.append(line[last:])
        return "".join(pieces).encode("utf-8", "surrogateescape")
