"""Syntax-highlighted SQL and shell commands as rich Text, on whatever background the widget has."""

from __future__ import annotations

import re
from functools import lru_cache

from pygments.lexer import Lexer
from pygments.lexers import BashLexer, PostgresLexer
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text

THEME = "monokai"
_LEXERS: dict[str, Lexer] = {}


def _lexer(language: str) -> Lexer:
    lexer = _LEXERS.get(language)
    if lexer is None:
        # The lexers must keep every line they are given (by default they drop blank lines at either end).
        options = {"stripnl": False, "ensurenl": False}
        lexer = _LEXERS[language] = BashLexer(**options) if language == "shell" else PostgresLexer(**options)
    return lexer


@lru_cache(maxsize=256)
def _foreground(style: Style) -> Style:
    # The theme paints its own background behind every token; the console's background should show.
    return Style(color=style.color, bold=style.bold, italic=style.italic)


# Control characters other than the line break: an agent's SQL must not send escape sequences to the
# operator's terminal.
_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def code_lines(code: str) -> list[str]:
    """`code`'s lines as they are shown: any line break style, no blank lines around it, tabs as spaces,
    other control characters as �."""
    code = code.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _CONTROLS.sub("�", code).strip().split("\n")


def shown_line_count(code: str, max_lines: int = 8) -> int:
    """How many lines `highlighted_lines(code, max_lines=max_lines)` returns, without highlighting."""
    return min(len(code_lines(code)), max_lines)


def highlighted(code: str, language: str = "sql") -> Text:
    """`code` coloured for `language` ("sql" or "shell"), one Text line per line of `code_lines(code)`."""
    code = "\n".join(code_lines(code))
    text = Syntax(code, _lexer(language), theme=THEME, background_color="default").highlight(code)
    extra = len(text.plain) - len(code)
    if extra > 0:
        text.right_crop(extra)  # the newline the highlighter adds at the end
    flat = Text(text.plain, end="")
    for span in text.spans:
        if isinstance(span.style, Style):
            flat.stylize(_foreground(span.style), span.start, span.end)
    return flat


def highlighted_lines(code: str, language: str = "sql", max_lines: int = 8) -> list[Text]:
    """The first `max_lines` lines of `code`, highlighted; a last line says how many more were cut."""
    lines = highlighted(code, language).split("\n", allow_blank=True)
    if len(lines) > max_lines:
        cut = len(lines) - max_lines + 1
        lines = [*lines[: max_lines - 1], Text(f"… {cut} more lines", style="dim")]
    return lines


def highlighted_one_line(code: str, width: int, language: str = "sql") -> Text:
    """`code` flattened to one line (whitespace runs become one space), highlighted, cut at `width`."""
    flat = " ".join(code.split())
    text = highlighted(flat, language)
    if len(flat) > width:
        text.truncate(max(width - 1, 0))
        text.append("…")
    return text
